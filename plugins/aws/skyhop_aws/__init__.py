"""The ``aws`` backend: amazon Web Services EC2 instances.

Its SDK (boto3) is the ``aws`` pip extra and is imported only
inside this package, never when the plugin is loaded. This release ships a placeholder:
the backend is registered and reports itself disabled.
"""
