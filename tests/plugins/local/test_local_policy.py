"""On a deployed server the local backend is off unless the administrator turns it on,
and then jobs run as the unprivileged user the administrator names."""

from __future__ import annotations

import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import attrs
import pytest
from test_local_backend import Local, processes_under, trio_test

from skyhop_core.exceptions import NotSupportedError
from skyhop_core.models.records import JobSpec
from skyhop_core.models.status import JobStatus
from skyhop_local import sandbox

SUPPORT = sandbox.detect()
needs_sandbox = pytest.mark.skipif(not SUPPORT.sandboxed, reason=SUPPORT.reason)
JOB_USER = "nobody"


@pytest.fixture
def deployed() -> Iterator[Local]:
    # A private (0700) directory above the persistent path, like /root above
    # /root/.skyhop: the job's user must still reach its node's home.
    root = Path(tempfile.mkdtemp(prefix="skyhop-policy-"))
    backend = Local(root / "state")
    backend.ctx = attrs.evolve(backend.ctx, deployed=True)
    yield backend
    leftovers = processes_under(root)
    for pid in leftovers:
        os.kill(pid, 9)
    shutil.rmtree(root, ignore_errors=True)
    assert not leftovers, f"processes outlived the test: {leftovers}"


@trio_test
async def test_off_on_a_deployed_server_by_default(deployed: Local) -> None:
    check = await deployed.call("skyhop_check")
    assert not check.enabled and "deployed server" in check.reason
    assert "allow_on_deployed_server" in check.fix and "run_as" in check.fix
    with pytest.raises(NotSupportedError, match="not enabled.*deployed server"):
        await deployed.provision("nope", 1)
    assert not Path(deployed.ctx.state_dir, "clusters", "nope").exists()


@trio_test
async def test_enabling_needs_an_unprivileged_run_as_user(deployed: Local) -> None:
    for config, expected in (
        ({"allow_on_deployed_server": True}, "run_as is not set"),
        ({"allow_on_deployed_server": True, "run_as": "root"}, "'root' is root"),
        ({"allow_on_deployed_server": True, "run_as": "no-such-user-x"}, "no user"),
    ):
        deployed.ctx = attrs.evolve(deployed.ctx, config=config)
        check = await deployed.call("skyhop_check")
        assert not check.enabled and expected in check.reason, check


@needs_sandbox
@trio_test
async def test_enabled_jobs_run_as_the_named_user(deployed: Local, tmp_path: Path) -> None:
    config = {"allow_on_deployed_server": True, "run_as": JOB_USER}
    deployed.ctx = attrs.evolve(deployed.ctx, config=config)
    assert (await deployed.call("skyhop_check")).enabled
    handle = await deployed.provision("shared", 1)
    await deployed.call("skyhop_setup_runtime", handle=handle)
    private = Path(deployed.ctx.persistent_path).parent
    (private / "root-only.txt").write_text("not for the job's user")
    source = tmp_path / "workdir"
    source.mkdir()
    (source / "train.py").write_text("print('training')\n")
    runner = deployed.ctx.runner_factory(handle, handle.head)  # type: ignore[misc]
    await runner.upload(str(source), "~/sky_workdir")
    probe = (
        "id -un; cd ~/sky_workdir && python3 train.py && echo ok > made-here && cat made-here; "
        "touch /etc/skyhop-should-fail 2>/dev/null || echo cannot-write-etc; "
        f"ls -A {private} 2>&1 | grep -c ."
    )
    job = JobSpec(name="probe", run=probe)
    job_id = await deployed.call("skyhop_submit_job", handle=handle, job=job)
    status, text = await deployed.tail(handle, job_id)
    assert status is JobStatus.SUCCEEDED, text
    # The private directory above the persistent path shows nothing but the way home.
    assert text.splitlines() == [JOB_USER, "training", "ok", "cannot-write-etc", "1"]
    made = Path(handle.head.home) / "sky_workdir" / "made-here"
    assert made.stat().st_uid == pwd.getpwnam(JOB_USER).pw_uid
    await deployed.call("skyhop_down", handle=handle)
