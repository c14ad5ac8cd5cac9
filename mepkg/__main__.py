"""``python -m mepkg``: the ``mepkg`` command."""

import sys

from mepkg.cli import main

sys.exit(main())
