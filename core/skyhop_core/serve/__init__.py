"""Services (``skyhop serve``): replicas (ordinary clusters ``<service>-<id>``) behind a
load balancer, probed for readiness, scaled on load, updated by version — all inside the
API server as trio tasks, all state in the store.

Modules: :mod:`.state` (rows), :mod:`.service` (leases, the nursery, settings, restarting
failed controllers), :mod:`.controller` (one service's life: its rounds), :mod:`.versions`
(a version's task and what a new one changes), :mod:`.reconcile` (launching and
terminating toward the target, spot/on-demand splits, updates, ``serve down``),
:mod:`.replicas` (launching and tearing down a replica), :mod:`.prober` (readiness
probes), :mod:`.autoscaler` (how many replicas), :mod:`.policies` (which replica gets a
request), :mod:`.load_balancer` (the proxy), :mod:`.websocket` (WebSocket pass-through),
:mod:`.tls` (the load balancer's certificate).
"""
