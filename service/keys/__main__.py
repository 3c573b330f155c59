"""`python -m service.keys`: see service.keys.cli."""

import sys

from .cli import main

sys.exit(main())
