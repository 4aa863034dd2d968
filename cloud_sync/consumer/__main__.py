"""`python -m cloud_sync.consumer` is `rental-platform`."""

from .cli import main

raise SystemExit(main())
