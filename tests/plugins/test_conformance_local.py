"""The built-in ``local`` backend passes the backend conformance suite.

The suite itself lives in :mod:`skyhop_core.testing.conformance`; the backend is found
through its ``skyhop.plugins`` entry point, as every other backend is.
"""

from skyhop_core.testing.conformance import BackendConformance


class TestLocalBackend(BackendConformance):
    backend_name = "local"
