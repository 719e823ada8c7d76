"""The node agent: the job queue that runs on a cluster's head node.

This package is copied to remote nodes that have nothing but ``python3``, so it uses the
standard library only and imports its own modules relatively. It is driven through its
CLI (``python -m skyhop_core.agent --root RUNTIME_DIR <command>``, see :mod:`.cli`) and a
detached scheduler daemon (:mod:`.daemon`).

Layout of the runtime directory (``--root``) on the head node::

    cluster.json        the cluster description written by setup_runtime (see .cluster)
    agent.db            SQLite: the jobs table and a little metadata
    jobs/<id>/run.log   one log per job (setup and run, every node, prefixed by rank)
    daemon.pid          the scheduler daemon's pid
    daemon.lock         held (flock) by the live daemon
    daemon.log          the daemon's own stderr
"""
