"""`python -m stream_worker`."""

from stream_worker.main import main

raise SystemExit(main())
