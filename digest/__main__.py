"""`python -m digest` runs the command-line interface."""

import sys

from digest.cli import main

sys.exit(main())
