"""The ``gcp`` backend: google Cloud Compute Engine instances.

Its SDK (google-auth, google-api-python-client) is the ``gcp`` pip extra and is imported only
inside this package, never when the plugin is loaded. This release ships a placeholder:
the backend is registered and reports itself disabled.
"""
