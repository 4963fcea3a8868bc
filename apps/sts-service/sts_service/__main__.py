"""`python -m sts_service`: run the service (see `sts_service.main`)."""

from sts_service.main import main

raise SystemExit(main())
