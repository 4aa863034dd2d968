"""`python -m rental_platform` is `rental-platform`."""

from .cli import main

raise SystemExit(main())
