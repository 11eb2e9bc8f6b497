"""``python -m unfold`` = the ``unfold`` command."""

import sys

from .cli import main

sys.exit(main())
