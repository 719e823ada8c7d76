"""One module per dashboard page (see :mod:`skyhop_core.dashboard.registry`)."""
