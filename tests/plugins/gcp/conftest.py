"""The fake Compute API for the GCP backend's tests, once per session.

``fake_gce`` runs ``fakegce`` with four host slots (sshd hosts in network namespaces; see
``fakegce/hosts.py``) or, where namespaces cannot be made, without hosts (instances
change state but nothing answers SSH; tests that run commands skip). ``gcp_env`` gives
each test a fresh world and the standard Google environment pointing at it: the
service-account key file in ``GOOGLE_APPLICATION_CREDENTIALS`` (its ``token_uri`` is the
fake), ``SKYHOP_GCP_COMPUTE_ENDPOINT`` and ``SKYHOP_GCP_STORAGE_ENDPOINT`` (the fake's Cloud
Storage JSON API, :mod:`fakegce.gcs`).
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("google.auth", reason="the gcp extra (google-auth) is not installed")
pytest.importorskip("googleapiclient", reason="google-api-python-client (discovery) is missing")
sys.path.insert(0, str(Path(__file__).parent))

from fakegce_proc import FakeGceProcess  # noqa: E402

_running: list[FakeGceProcess] = []  # the session's fake, for failure reports


def _hosts_unavailable() -> str | None:
    from fakegce.hosts import ssh_netns

    return ssh_netns.unavailable()


@pytest.fixture(scope="session")
def fake_gce(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FakeGceProcess]:
    reason = _hosts_unavailable()
    fake = FakeGceProcess(Path(tmp_path_factory.mktemp("fakegce")), slots=0 if reason else 4)
    fake.hosts_unavailable = reason  # type: ignore[attr-defined]
    _running.append(fake)
    try:
        yield fake
    finally:
        _running.remove(fake)
        fake.close()


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> object:
    """A failed test that used the fake shows the end of the fake's log (its steps, hosts
    that did not boot, tracebacks), which CI keeps no other copy of."""
    report = yield
    if report.failed and _running and "fake_gce" in getattr(item, "fixturenames", ()):
        report.sections.append(("fakegce log (last 5,000 characters)", _running[0].log_text()))
    return report


@pytest.fixture
def gcp_env(
    fake_gce: FakeGceProcess, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> FakeGceProcess:
    fake_gce.control("reset", {})
    monkeypatch.setenv("GOOGLE_APPLICATION_CREDENTIALS", str(fake_gce.credentials))
    monkeypatch.setenv("SKYHOP_GCP_COMPUTE_ENDPOINT", fake_gce.compute_endpoint)
    monkeypatch.setenv("SKYHOP_GCP_STORAGE_ENDPOINT", fake_gce.storage_endpoint)
    monkeypatch.setenv("CLOUDSDK_CONFIG", str(tmp_path / "gcloud"))  # no gcloud ADC file
    for key in ("GOOGLE_CLOUD_PROJECT", "CLOUDSDK_CORE_PROJECT", "GCE_METADATA_HOST"):
        monkeypatch.delenv(key, raising=False)
    return fake_gce


@pytest.fixture
def gce_hosts(gcp_env: FakeGceProcess) -> FakeGceProcess:
    """``gcp_env`` where instances are real sshd hosts; skips where they cannot be."""
    reason = getattr(gcp_env, "hosts_unavailable", None)
    if reason:
        pytest.skip(f"GCP tests that run commands need fake hosts: {reason}")
    return gcp_env
