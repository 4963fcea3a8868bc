"""sts-service: speech -> text -> speech over HTTP, with an offline echo pipeline."""
