"""``python -m bench`` is the ``shieldbench`` command."""

import sys

from bench.cli import main

sys.exit(main())
