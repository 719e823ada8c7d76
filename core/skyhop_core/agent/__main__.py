"""``python -m skyhop_core.agent``: the agent CLI."""

import sys

from .cli import main

sys.exit(main())
