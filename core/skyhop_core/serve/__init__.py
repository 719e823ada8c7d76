"""Services (``skyhop serve``): replicas (ordinary clusters ``<service>-<id>``) behind a
load balancer, probed for readiness, scaled on load, updated by version — all inside the
API server as trio tasks, all state in the store.

Modules: :mod:`.state` (rows), :mod:`.service` (leases, the nursery, settings),
:mod:`.controller` (one service's life), :mod:`.replicas` (launching and tearing down
a replica), :mod:`.prober` (readiness probes), :mod:`.autoscaler` (how many replicas),
:mod:`.policies` (which replica gets a request), :mod:`.load_balancer` (the proxy),
:mod:`.websocket` (WebSocket pass-through).
"""
