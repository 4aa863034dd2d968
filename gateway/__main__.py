"""`python -m gateway`: the same as the `gateway` command (the supervisor starts parts so)."""

import sys

from gateway.cli import main

sys.exit(main())
