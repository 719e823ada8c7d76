"""An example third-party skyhop backend, ``example``: each node is a directory here.

It shows the least a backend needs — declare itself, check, offer, provision, query,
down and a command runner — while the core's node agent provides jobs, logs and
cancellation through that runner. See ``README.md``.
"""

__version__ = "0.1.0"
