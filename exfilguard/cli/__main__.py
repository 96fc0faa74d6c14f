"""``python -m exfilguard.cli``: the same command as the ``exfilguard`` script."""

import sys

from exfilguard.cli.main import main

sys.exit(main())
