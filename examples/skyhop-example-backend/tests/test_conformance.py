"""The example backend passes skyhop's backend conformance suite.

Run it after installing the package (``pip install -e .``): the backend is found through
its ``skyhop.plugins`` entry point, exactly as skyhop will find it.
"""

from typing import Any

import pytest

from skyhop_core.context import BackendContext
from skyhop_core.models.resources import Resources
from skyhop_core.testing.conformance import BackendConformance, Simulation


class TestExampleBackend(BackendConformance):
    backend_name = "example"

    @pytest.fixture
    def conformance_config(self) -> dict[str, Any]:
        # Two regions, one with two zones: a refusal has somewhere to fail over to.
        return {"regions": {"east": ["east-a", "east-b"], "west": ["west-a"]}}

    @pytest.fixture
    def conformance_resources(self) -> Resources:
        return Resources(infra="example", cpus="1+")

    @pytest.fixture
    def conformance_simulation(self, conformance_ctx: BackendContext) -> Simulation:
        # The backend's faults file plays the cloud running out of capacity or quota.
        from skyhop_example_backend import plugin

        state = conformance_ctx.state_dir

        def refuse(kind: str, offer: Any) -> None:
            if kind == "capacity":
                plugin.refuse(state, capacity=[offer.zone or offer.region])
            else:
                plugin.refuse(state, quota=[offer.region])

        return Simulation(
            refuse=refuse,
            lift=lambda: plugin.refuse(state),
            leftovers=lambda name: plugin.leftovers(state, name),
        )
