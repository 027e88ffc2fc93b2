"""``python -m observatoire``."""

import sys

from observatoire.cli import main

sys.exit(main())
