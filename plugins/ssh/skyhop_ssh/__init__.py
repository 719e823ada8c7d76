"""The ``ssh`` backend: run clusters on machines you list in named SSH node pools.

See :mod:`skyhop_ssh.plugin` for the hooks and :mod:`skyhop_ssh.pools` for the pool format.
"""
