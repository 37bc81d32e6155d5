"""``python -m bot.admin …``: the maintainers' command line (``bot.admin.cli``)."""

import sys

from bot.admin.cli import main

sys.exit(main())
