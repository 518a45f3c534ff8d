"""``python -m faceqan``: the faceqan command."""

import sys

from .cli import main

sys.exit(main())
