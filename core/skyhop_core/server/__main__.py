"""``python -m skyhop_core.server``."""

import sys

from skyhop_core.server.main import main

sys.exit(main())
