"""The example backend passes skyhop's backend conformance suite.

Run it after installing the package (``pip install -e .``): the backend is found through
its ``skyhop.plugins`` entry point, exactly as skyhop will find it.
"""

import pytest

from skyhop_core.models.resources import Resources
from skyhop_core.testing.conformance import BackendConformance


class TestExampleBackend(BackendConformance):
    backend_name = "example"

    @pytest.fixture
    def conformance_resources(self) -> Resources:
        return Resources(infra="example", cpus="1+")
