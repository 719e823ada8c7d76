"""The AWS backend passes the conformance suite on moto, twice.

``TestAwsOnMoto``: the plain plugin on moto. The tests that run commands on the nodes
(the command runner, jobs, stop/start and re-provision, which run a job) are skipped
there: moto's instances are records, not machines, so nothing answers SSH on them.

``TestAwsOnFakeHosts``: the whole suite, with every handle the plugin returns pointed at
real sshd hosts in network namespaces (``aws_on_fake_hosts``). EC2 is still moto; the
node agent's installation over SSH, the jobs, logs and cancellation are the plugin's real
code. Skipped, like the ssh backend tests, where namespaces cannot be created. What still
needs a real account: real AMIs booting, cloud-init and the security group letting SSH in.
"""

from __future__ import annotations

from typing import Any

import pytest

from skyhop_core.models.resources import Resources
from skyhop_core.testing.conformance import BackendConformance
from skyhop_core.testing.harness import Timeouts

NO_COMMANDS = (
    "moto's EC2 instances cannot run commands; TestAwsOnFakeHosts runs this test with the "
    "instances mapped onto sshd hosts in network namespaces"
)


class TestAwsOnMoto(BackendConformance):
    backend_name = "aws"
    timeouts = Timeouts(call=60, provision=120, teardown=120, job=60)

    @pytest.fixture
    def conformance_plugins(self, aws_env: str) -> list[object]:
        from skyhop_aws.plugin import AwsPlugin

        return [AwsPlugin()]

    @pytest.fixture
    def conformance_entry_points(self) -> bool:
        return False

    @pytest.fixture
    def conformance_config(self, aws_env: str) -> dict[str, Any]:
        return {"poll_interval": 0.05}

    @pytest.fixture
    def conformance_resources(self) -> Any:
        return Resources(infra="aws/us-east-1", instance_type="t3.medium")

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_command_runner_runs_and_uploads(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_provision_two_nodes(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_job_runs_logs_and_is_queued(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_long_job_is_cancelled(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_tilde_is_the_nodes_home(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_stop_and_start(self) -> None:
        pass

    @pytest.mark.skip(reason=NO_COMMANDS)
    def test_provision_after_down(self) -> None:
        pass


class TestAwsOnFakeHosts(BackendConformance):
    backend_name = "aws"
    timeouts = Timeouts(call=60, provision=120, teardown=120, job=60)

    @pytest.fixture
    def conformance_plugins(self, aws_env: str, ec2_hosts: Any) -> list[object]:
        from aws_on_fake_hosts import FakeHostsAwsPlugin

        return [FakeHostsAwsPlugin(ec2_hosts)]

    @pytest.fixture
    def conformance_entry_points(self) -> bool:
        return False

    @pytest.fixture
    def conformance_config(self, aws_env: str) -> dict[str, Any]:
        return {"poll_interval": 0.05, "ssh_wait_seconds": 60}

    @pytest.fixture
    def conformance_resources(self) -> Any:
        return Resources(infra="aws/us-east-1", instance_type="t3.medium")
