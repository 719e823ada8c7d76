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
from skyhop_core.testing.conformance import BackendConformance, Simulation
from skyhop_core.testing.harness import Timeouts


class RefusingEc2:
    """A boto3 client factory whose RunInstances fails the way EC2 does where the test
    says so (moto never runs out): ``InsufficientInstanceCapacity`` in a refused zone,
    ``VcpuLimitExceeded`` in a refused region. The plugin's own error mapping turns them
    into CapacityError/QuotaError, which is what the conformance suite checks."""

    def __init__(self) -> None:
        self.zones: set[str] = set()
        self.regions: set[str] = set()

    def __call__(self, service: str, region: str) -> Any:
        from botocore.exceptions import ClientError

        from skyhop_aws.aws import default_client_factory

        client = default_client_factory(service, region)

        def refuse(params: dict[str, Any], **_: Any) -> None:
            zone = params.get("Placement", {}).get("AvailabilityZone")
            if region in self.regions:
                error = {"Code": "VcpuLimitExceeded", "Message": f"vCPU limit in {region}."}
                raise ClientError({"Error": error}, "RunInstances")
            if zone in self.zones:
                error = {"Code": "InsufficientInstanceCapacity", "Message": f"No capacity in {zone}."}
                raise ClientError({"Error": error}, "RunInstances")

        client.meta.events.register("before-parameter-build.ec2.RunInstances", refuse)
        return client

    def simulation(self) -> Simulation:
        def refuse(kind: str, offer: Any) -> None:
            if kind == "capacity":
                self.zones.add(offer.zone)
            else:
                self.regions.add(offer.region)

        def lift() -> None:
            self.zones.clear()
            self.regions.clear()

        def leftovers(name: str) -> list[str]:
            from skyhop_aws import ec2

            client = self("ec2", "us-east-1")
            left = [f"instance {i['InstanceId']} ({i['State']['Name']})"
                    for i in ec2.cluster_instances(client, name)]  # fmt: skip
            groups = client.describe_security_groups(
                Filters=[{"Name": "group-name", "Values": [ec2.group_name(name)]}]
            )["SecurityGroups"]
            return left + [f"security group {g['GroupId']}" for g in groups]

        return Simulation(refuse=refuse, lift=lift, leftovers=leftovers)

NO_COMMANDS = (
    "moto's EC2 instances cannot run commands; TestAwsOnFakeHosts runs this test with the "
    "instances mapped onto sshd hosts in network namespaces"
)


class TestAwsOnMoto(BackendConformance):
    backend_name = "aws"
    timeouts = Timeouts(call=60, provision=120, teardown=120, job=60)

    @pytest.fixture
    def refusing(self, aws_env: str) -> RefusingEc2:
        return RefusingEc2()

    @pytest.fixture
    def conformance_plugins(self, refusing: RefusingEc2) -> list[object]:
        from skyhop_aws.plugin import AwsPlugin

        return [AwsPlugin(refusing)]

    @pytest.fixture
    def conformance_simulation(self, refusing: RefusingEc2) -> Simulation:
        return refusing.simulation()

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
