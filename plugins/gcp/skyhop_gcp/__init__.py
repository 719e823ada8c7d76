"""The ``gcp`` backend: Google Compute Engine VMs, reached over SSH.

Its one SDK, google-auth (credentials), is the ``gcp`` pip extra and is imported only
inside functions of this package, never when the plugin is loaded; the Compute REST API
is our own httpx client. Modules: :mod:`~skyhop_gcp.catalog` (machine types and prices),
:mod:`~skyhop_gcp.auth` (credentials, project, tokens), :mod:`~skyhop_gcp.compute` (the
REST client and operations), :mod:`~skyhop_gcp.errors` (API errors -> typed errors),
:mod:`~skyhop_gcp.gce` (names, labels, request bodies), :mod:`~skyhop_gcp.provisioner`
(the lifecycle), :mod:`~skyhop_gcp.plugin` (the hooks).
"""
