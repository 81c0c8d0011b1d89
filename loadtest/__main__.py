"""`python -m loadtest ...`: the same as `vqueue loadtest ...`."""

from __future__ import annotations

import sys

from loadtest.cli import main

sys.exit(main(sys.argv[1:]))
