# The dev loop (make dev / stop / logs / dev-local / demo). Included by the root Makefile.
