"""The ``kubernetes`` backend: pods on a Kubernetes cluster.

Its SDK (lightkube) is the ``kubernetes`` pip extra and is imported only
inside this package, never when the plugin is loaded. This release ships a placeholder:
the backend is registered and reports itself disabled.
"""
