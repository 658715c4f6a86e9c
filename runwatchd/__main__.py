"""`python -m runwatchd` runs the CLI."""

import sys

from runwatchd.cli.main import main

sys.exit(main())
