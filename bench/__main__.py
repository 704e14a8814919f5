"""``python -m bench`` is the ``shieldbench`` command."""

import sys

from bench.cli.main import main

sys.exit(main())
