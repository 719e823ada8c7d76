"""The ``kubernetes`` backend: pods on Kubernetes clusters, reached through the API server.

Its SDK (lightkube) is the ``kubernetes`` pip extra and is imported only inside this
package's hooks, never when the plugin is loaded. Modules: :mod:`.plugin` (the hooks),
:mod:`.kube` (contexts, credentials, clients), :mod:`.manifests`, :mod:`.gpus`,
:mod:`.provisioner`, :mod:`.pods` (watches), :mod:`.runner` and :mod:`.sync` (exec),
:mod:`.runtime` and :mod:`.relay` / :mod:`.relay_node` (the agent between pods).
"""
