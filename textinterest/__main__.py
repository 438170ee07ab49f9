"""``python -m textinterest`` runs the command line."""

import sys

from textinterest.cli import main

sys.exit(main())
