"""Managed jobs (``skyhop jobs``): each job gets its own cluster, a controller that
recovers it from preemption and failure, and a scheduler that bounds how many launch
and run at once — all inside the API server, all state in the store.

Modules: :mod:`.state` (rows), :mod:`.controller` (one job's life), :mod:`.launching`
(launch and recovery strategies), :mod:`.service` (scheduler, leases, the nursery),
:mod:`.output` (saved job output).
"""
