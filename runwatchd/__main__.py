"""`python -m runwatchd` runs the CLI."""

import sys

from runwatchd.cli import main

sys.exit(main())
