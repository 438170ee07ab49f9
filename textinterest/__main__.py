"""``python -m textinterest`` runs the command line."""

import sys

from textinterest.apps.cli import main

sys.exit(main())
