"""A backend installed as a separate distribution works with no change to the core.

The example package in ``examples/skyhop-example-backend`` is built and installed with
pip into a temporary ``--target`` directory (never into this environment), and a
subprocess with that directory on its ``PYTHONPATH`` finds the backend through its
entry point and drives a whole cluster through it; then the package's own conformance
test runs there, the way its author would run it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import NamedTuple

import pytest

REPO = Path(__file__).resolve().parents[2]
EXAMPLE = REPO / "examples" / "skyhop-example-backend"
#: Build with this environment's setuptools, fetch nothing, install nothing else.
PIP_OFFLINE = (
    "--quiet",
    "--no-deps",
    "--no-index",
    "--no-build-isolation",
    "--disable-pip-version-check",
)

CYCLE = textwrap.dedent(
    """
    import importlib.metadata, sys, tempfile
    import trio
    from skyhop_core.models.resources import Resources
    from skyhop_core.plugins import load_backends
    from skyhop_core.testing.harness import BackendHarness, make_context

    dist = importlib.metadata.distribution("skyhop-example-backend")
    print("installed at", dist.locate_file(""))
    backends = load_backends()
    assert "example" in backends.names(), backends.names()
    assert not backends.broken, backends.broken


    async def cycle(root):
        ctx = make_context(backends, "example", root)
        harness = BackendHarness(backends, "example", ctx, Resources(infra="example"))
        async with harness.cleanup():
            assert (await harness.check()).enabled
            handle = await harness.provision("oot", 2)
            await harness.setup_runtime(handle)
            print(await harness.run_echo_job(handle, num_nodes=2))
            await harness.down(handle)
            print("states after down:", await harness.query(handle))


    with tempfile.TemporaryDirectory(prefix="skyhop-oot-") as root:
        trio.run(cycle, root)
    print("OUT-OF-TREE-OK")
    """
)


class Installed(NamedTuple):
    source: Path  #: a copy of the example package's source tree (with its tests)
    site: Path  #: the directory pip installed it into


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The example backend installed with pip into a private directory."""
    work = tmp_path_factory.mktemp("oot")
    source = work / "src"
    # Build from a copy so that setuptools' build/ and egg-info stay out of the repo.
    shutil.copytree(EXAMPLE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info"))
    target = work / "site"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "install",
            *PIP_OFFLINE,
            "--target",
            str(target),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, f"pip install failed:\n{done.stdout}\n{done.stderr}"
    return Installed(source, target)


def run_with(site: Path, argv: list[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join([str(site), os.environ.get("PYTHONPATH", "")]),
    }
    return subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=180)


def test_example_backend_is_not_installed_here() -> None:
    from skyhop_core.plugins import load_backends

    assert "example" not in load_backends().names(), (
        "skyhop-example-backend is installed in the test environment; this test must "
        "prove that an install elsewhere is enough."
    )


def test_installed_backend_is_found_and_runs_a_cluster(
    installed: Installed, tmp_path: Path
) -> None:
    done = run_with(installed.site, [sys.executable, "-c", CYCLE], tmp_path)
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert str(installed.site) in done.stdout
    assert "conformance-0" in done.stdout and "conformance-1" in done.stdout
    assert "OUT-OF-TREE-OK" in done.stdout


def test_example_backend_passes_its_own_conformance_test(
    installed: Installed, tmp_path: Path
) -> None:
    # Run from the copy: the example's pyproject.toml is its pytest config, as for its author.
    tests = installed.source / "tests"
    done = run_with(
        installed.site,
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(tests)],
        tmp_path,
    )
    assert done.returncode == 0, f"stdout:\n{done.stdout}\nstderr:\n{done.stderr}"
    assert " passed" in done.stdout and "failed" not in done.stdout
