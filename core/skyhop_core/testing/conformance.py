"""The backend conformance suite: the same lifecycle tests for every backend, as a pytest plugin.

skyhop registers this module with pytest (entry point ``pytest11``:
``skyhop_conformance``). Registering it changes nothing in a test session that does not
use it: it adds no autouse fixture and no command-line option, only the marker
``skyhop_conformance`` and the base class below. A backend's author runs the suite by
subclassing :class:`BackendConformance` in a test module::

    import pytest
    from skyhop_core.models.resources import Resources
    from skyhop_core.testing.conformance import BackendConformance

    import my_backend.plugin


    class TestMyBackend(BackendConformance):
        backend_name = "mybackend"

        @pytest.fixture
        def conformance_plugins(self):
            # Plugins to register besides the installed entry points (optional).
            return [my_backend.plugin]

        @pytest.fixture
        def conformance_resources(self):
            # What to provision (optional; the default asks for 1+ vCPUs).
            return Resources(infra="mybackend", cpus="1+")

Every test provisions its own small cluster (named ``conf-<test>-<random>``) and tears it
down when it ends, passed or failed. The hooks are called exactly as the core calls them,
through :meth:`skyhop_core.plugins.Backends.call`, each under a deadline (class attribute
:attr:`BackendConformance.timeouts`). A failure names the hook and says what it returned
and what the contract (``docs/plugin_hooks.md``) expects.

Other fixtures a subclass may override: ``conformance_config`` (the backend's section of
the config file, ``backends: {NAME: ...}``), ``conformance_entry_points`` (``False`` to
load only ``conformance_plugins``), ``conformance_persistent_path`` (where state goes; a
temporary directory by default) and ``conformance_simulation`` (what the backend can
simulate for the failure-path tests: refusing capacity or quota somewhere, listing what
is left of a cluster; see :class:`~skyhop_core.testing.failure_paths.Simulation`).

The failure-path tests (:mod:`skyhop_core.testing.failure_paths`) cancel
``skyhop_provision`` right away, mid-way and just before it returns and check that
``skyhop_down`` of the returned, previous or a node-less handle leaves nothing; refuse a
place and check that the core's failover blocks it and does not ask for it again; down a
handle without nodes; and repeat provision, stop and down.
"""

from __future__ import annotations

import functools
import tempfile
from collections.abc import Callable, Coroutine, Iterator
from typing import TYPE_CHECKING, Any, ClassVar

import pytest

from skyhop_core.testing.failure_paths import FailurePathTests, Simulation

if TYPE_CHECKING:
    from skyhop_core.context import BackendContext
    from skyhop_core.plugins import Backends
    from skyhop_core.testing.harness import BackendHarness, Timeouts

MARKER = "skyhop_conformance"
__all__ = ["MARKER", "BackendConformance", "Simulation"]


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", f"{MARKER}: a skyhop backend conformance test")


def _trio_test(fn: Callable[..., Coroutine[Any, Any, None]]) -> Callable[..., None]:
    """Run an ``async def`` test under ``trio.run`` (no pytest-trio needed)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> None:
        import trio

        trio.run(functools.partial(fn, *args, **kwargs))

    return wrapper


@pytest.mark.skyhop_conformance
class BackendConformance(FailurePathTests):
    """Lifecycle tests every backend must pass. Subclass it as ``Test<Something>`` and set
    :attr:`backend_name`."""

    #: The backend under test: the ``name`` its ``skyhop_backend_info`` declares.
    backend_name: ClassVar[str | None] = None
    #: Deadlines for hook calls; raise them for slow clouds (``Timeouts(provision=900)``).
    timeouts: ClassVar[Timeouts | None] = None

    # --- fixtures a subclass may override ----------------------------------------

    @pytest.fixture
    def conformance_plugins(self) -> list[object]:
        """Plugin objects (modules) to register besides the entry points."""
        return []

    @pytest.fixture
    def conformance_entry_points(self) -> bool:
        """Whether to load the plugins installed under ``skyhop.plugins`` too."""
        return True

    @pytest.fixture
    def conformance_config(self) -> dict[str, Any]:
        """The backend's section of the user's config file (``BackendContext.config``)."""
        return {}

    @pytest.fixture
    def conformance_resources(self) -> Any:
        """The resources every test provisions; must fit at least one of its offers."""
        from skyhop_core.models.resources import Resources

        return Resources(infra=self._name(), cpus="1+")

    @pytest.fixture
    def conformance_persistent_path(self) -> Iterator[str]:
        """The persistent path for the test (a fresh temporary directory).

        Short on purpose (``/tmp/skyhop-conf-…``): node agents put Unix sockets under it,
        and those paths are limited to about 100 characters.
        """
        with tempfile.TemporaryDirectory(prefix="skyhop-conf-") as path:
            yield path

    # --- fixtures the tests use ---------------------------------------------------

    @pytest.fixture
    def conformance_backends(
        self, conformance_plugins: list[object], conformance_entry_points: bool
    ) -> Backends:
        from skyhop_core.plugins import load_backends

        backends = load_backends(entry_points=conformance_entry_points)
        # A plugin that is also installed (its entry point already loaded it) must not be
        # registered twice: pluggy refuses that.
        extra = [p for p in conformance_plugins if not backends.pm.is_registered(p)]
        if extra:
            backends = load_backends(extra, entry_points=conformance_entry_points)
        name = self._name()
        if name not in backends.names():
            broken = "".join(f"\n  - {b.name}: {b.error}" for b in backends.broken)
            pytest.fail(
                f"No plugin declares backend {name!r} (declared: {backends.names()}). Register "
                "your plugin under the entry point group 'skyhop.plugins', or return it from "
                "the `conformance_plugins` fixture."
                + (f"\nPlugins that failed to load:{broken}" if broken else ""),
                pytrace=False,
            )
        return backends

    @pytest.fixture
    def conformance_ctx(
        self,
        conformance_backends: Backends,
        conformance_persistent_path: str,
        conformance_config: dict[str, Any],
    ) -> BackendContext:
        from skyhop_core.testing.harness import make_context

        return make_context(
            conformance_backends,
            self._name(),
            conformance_persistent_path,
            config=conformance_config,
            log=lambda line: print(f"[{self._name()}] {line}", flush=True),
        )

    @pytest.fixture
    def conformance(
        self,
        conformance_backends: Backends,
        conformance_ctx: BackendContext,
        conformance_resources: Any,
    ) -> BackendHarness:
        """The harness: calls the backend's hooks and checks their answers."""
        from skyhop_core.testing.harness import BackendHarness, Timeouts

        return BackendHarness(
            conformance_backends,
            self._name(),
            conformance_ctx,
            conformance_resources,
            self.timeouts or Timeouts(),
        )

    def _name(self) -> str:
        if not self.backend_name:
            pytest.fail(
                f"{type(self).__name__} must set `backend_name` to the backend under test.",
                pytrace=False,
            )
        return self.backend_name

    # --- declaring the backend -----------------------------------------------------

    def test_backend_info_declares_name_and_features(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.records import BackendInfo, Feature

        declared = [
            info
            for info in conformance.backends.pm.hook.skyhop_backend_info()
            if isinstance(info, BackendInfo) and info.name == self._name()
        ]
        assert len(declared) == 1, (
            f"skyhop_backend_info: {len(declared)} plugins declare backend {self._name()!r}; "
            "exactly one must (a later one is ignored)."
        )
        info = declared[0]
        assert info.display_name, "skyhop_backend_info: set BackendInfo.display_name."
        assert isinstance(info.features, frozenset) and all(
            isinstance(f, Feature) for f in info.features
        ), f"skyhop_backend_info: features must be a frozenset of Feature, got {info.features!r}."
        required = ["skyhop_check", "skyhop_offers", "skyhop_provision", "skyhop_down"]
        required += ["skyhop_query", "skyhop_command_runner"]
        if Feature.STOP in info.features:
            required += ["skyhop_stop", "skyhop_start"]
        if Feature.OPEN_PORTS in info.features:
            required += ["skyhop_open_ports"]
        missing = [h for h in required if not conformance.backends.implements(self._name(), h)]
        assert not missing, (
            f"backend {self._name()!r} declares features "
            f"{sorted(f.value for f in info.features)} but does not implement {missing}."
        )

    @_trio_test
    async def test_check_reports_enabled(self, conformance: BackendHarness) -> None:
        result = await conformance.check()
        assert result.enabled, (
            f"skyhop_check: the backend reports itself disabled: {result.reason!r} "
            f"(fix: {result.fix!r}). The suite needs a usable backend: install its SDK and "
            "credentials, or pass its settings through the `conformance_config` fixture."
        )

    @_trio_test
    async def test_offers_fit_the_resources(self, conformance: BackendHarness) -> None:
        offers = await conformance.offers()
        assert offers, f"skyhop_offers: no offers for {conformance.resources}."
        for offer in offers:
            assert offer.backend == self._name(), (
                f"skyhop_offers: {offer!r} has backend {offer.backend!r}, "
                f"expected {self._name()!r}."
            )
            assert offer.instance_type and offer.cpus > 0 and offer.memory_gb > 0, (
                f"skyhop_offers: {offer!r} needs an instance_type, cpus > 0 and memory_gb > 0."
            )
            assert offer.price >= 0, f"skyhop_offers: {offer!r} has a negative price."
            assert conformance.resources.fits(offer, pooled=True), (
                f"skyhop_offers: {offer!r} does not fit {conformance.resources}; return only "
                "offers that satisfy the request."
            )

    @_trio_test
    async def test_impossible_request_has_no_offers(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.resources import Resources

        impossible = Resources(infra=self._name(), cpus="100000+")
        offers = await conformance.offers(impossible)
        assert offers == [], (
            f"skyhop_offers: {len(offers)} offers for {impossible} (e.g. {offers[0]!r}); "
            "filter by cpus, memory, accelerators, region and zone, and return [] when "
            "nothing fits."
        )

    def test_unknown_backend_raises(self, conformance: BackendHarness) -> None:
        from skyhop_core.plugins import UnknownBackendError

        with pytest.raises(UnknownBackendError, match=self._name()):
            conformance.backends.call(
                "no-such-backend", "skyhop_provision", ctx=conformance.ctx, request=None
            )

    # --- cluster lifecycle ---------------------------------------------------------

    @_trio_test
    async def test_provision_query_and_down_one_node(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.records import NodeState

        async with conformance.cleanup():
            name = conformance.cluster_name("one")
            handle = await conformance.provision(name, 1)
            await conformance.wait_for_nodes(handle, NodeState.RUNNING)
            again = await conformance.provision(name, 1)
            assert [n.instance_id for n in again.nodes] == [n.instance_id for n in handle.nodes], (
                "skyhop_provision: provisioning an existing cluster (request.previous set) "
                f"must reuse its nodes; got {again.nodes!r} after {handle.nodes!r}."
            )
            await conformance.down(again)
            await conformance.wait_for_nodes(again, NodeState.TERMINATED, gone_ok=True)
            await conformance.down(again)  # idempotent: downing a gone cluster succeeds

    @_trio_test
    async def test_command_runner_runs_and_uploads(
        self, conformance: BackendHarness, tmp_path: Any
    ) -> None:
        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("run"), 1)
            runner = conformance.runner(handle, handle.head)
            done = await runner.run([*runner.python(), "-c", "print(6 * 7)"])
            assert done.returncode == 0 and done.stdout.strip() == b"42", (
                f"skyhop_command_runner: running python on the head gave {done!r}."
            )
            failed = await runner.run(["sh", "-c", "echo oops >&2; exit 3"])
            assert failed.returncode == 3 and b"oops" in failed.stderr, (
                "skyhop_command_runner: a failing command must return its exit code and "
                f"stderr, not raise; got {failed!r}."
            )
            source = tmp_path / "upload"
            source.mkdir()
            (source / "hello.txt").write_text("conformance upload\n")
            await runner.upload(str(source), "~/conformance-upload")
            shown = await runner.run(["cat", runner.resolve("~/conformance-upload/hello.txt")])
            assert shown.stdout == b"conformance upload\n", (
                "skyhop_command_runner: upload of a directory to ~/conformance-upload did not "
                f"produce hello.txt there; cat gave {shown!r}."
            )

    @_trio_test
    async def test_provision_two_nodes(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.records import Feature

        if not conformance.info.supports(Feature.MULTI_NODE):
            pytest.skip("the backend does not declare Feature.MULTI_NODE")
        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("two"), 2)
            await conformance.setup_runtime(handle)
            await conformance.run_echo_job(handle, num_nodes=2)

    # --- jobs ----------------------------------------------------------------------

    @_trio_test
    async def test_job_runs_logs_and_is_queued(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.status import JobStatus
        from skyhop_core.testing.harness import ECHO_RUN

        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("job"), 1)
            await conformance.setup_runtime(handle)
            job_id = await conformance.submit(handle, ECHO_RUN)
            status, text = await conformance.tail(handle, job_id, follow=True)
            assert status is JobStatus.SUCCEEDED and "conformance-0" in text, (
                f"skyhop_tail_logs: following job {job_id} returned {status} with log "
                f"{text!r}; expected SUCCEEDED and 'conformance-0'."
            )
            record = await conformance.job(handle, job_id)
            assert record.status is JobStatus.SUCCEEDED, (
                f"skyhop_queue: job {job_id} is {record.status.value} after it succeeded."
            )
            latest, text = await conformance.tail(handle, None, follow=False)
            assert latest is JobStatus.SUCCEEDED and "conformance-0" in text, (
                "skyhop_tail_logs: job_id=None must stream the latest job; got "
                f"{latest} and {text!r}."
            )
            missing, _ = await conformance.tail(handle, job_id + 1000, follow=False)
            assert missing is None, (
                f"skyhop_tail_logs: a job that does not exist must return None, got {missing}."
            )
            unfinished = await conformance.queue(handle, skip_finished=True)
            assert job_id not in [j.job_id for j in unfinished], (
                "skyhop_queue: skip_finished=True still lists the finished job."
            )

    @_trio_test
    async def test_tilde_is_the_nodes_home(self, conformance: BackendHarness) -> None:
        import shlex

        from skyhop_core.models.status import JobStatus

        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("home"), 1)
            await conformance.setup_runtime(handle)
            home = shlex.quote(handle.head.home)
            run = (
                f'a=$(cd ~ && pwd -P); b=$(cd {home} && pwd -P); '
                'if [ "$a" = "$b" ]; then echo home-ok; else echo "home-differs: ~=$a"; fi'
            )
            job_id = await conformance.submit(handle, run)
            status, text = await conformance.tail(handle, job_id, follow=True)
            assert status is JobStatus.SUCCEEDED and "home-ok" in text, (
                f"`~` in a job must be the node's home {handle.head.home} "
                f"(NodeInfo.home); the job printed {text!r} ({status})."
            )

    @_trio_test
    async def test_long_job_is_cancelled(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.status import JobStatus
        from skyhop_core.testing.harness import SLEEP_RUN

        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("cancel"), 1)
            await conformance.setup_runtime(handle)
            job_id = await conformance.submit(handle, SLEEP_RUN)
            await conformance.wait_for_job(handle, job_id, {JobStatus.RUNNING})
            health = await conformance.runtime_health(handle)
            assert health.healthy and job_id not in health.failed_jobs, (
                f"skyhop_runtime_health: {health} while job {job_id} runs on a working "
                "cluster; expected healthy."
            )
            idle = await conformance.idle_seconds(handle)
            assert idle == 0, f"skyhop_idle_seconds: {idle} while job {job_id} runs; expected 0."
            cancelled = await conformance.cancel(handle, [job_id])
            assert cancelled == [job_id], (
                f"skyhop_cancel_jobs: cancelling job {job_id} returned {cancelled}."
            )
            record = await conformance.wait_for_job(handle, job_id, {JobStatus.CANCELLED})
            assert record.end_at is not None, f"skyhop_queue: cancelled job has no end_at: {record}"
            status, _ = await conformance.tail(handle, job_id, follow=True)
            assert status is JobStatus.CANCELLED, (
                f"skyhop_tail_logs: the cancelled job {job_id} ended with {status}."
            )
            assert await conformance.cancel(handle, None) == [], (
                "skyhop_cancel_jobs: with nothing unfinished, cancelling all must return []."
            )
            await conformance.idle_seconds(handle)

    # --- stop, start, down, ports ----------------------------------------------------

    @_trio_test
    async def test_stop_and_start(self, conformance: BackendHarness) -> None:
        from skyhop_core.exceptions import NotSupportedError
        from skyhop_core.models.records import Feature, NodeState

        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("stop"), 1)
            if not conformance.info.supports(Feature.STOP):
                with pytest.raises(NotSupportedError):
                    await conformance.stop(handle)
                return
            await conformance.setup_runtime(handle)
            await conformance.run_echo_job(handle)
            await conformance.stop(handle)
            await conformance.wait_for_nodes(handle, NodeState.STOPPED)
            started = await conformance.start(handle)
            await conformance.wait_for_nodes(started, NodeState.RUNNING)
            await conformance.setup_runtime(started)
            await conformance.run_echo_job(started)

    @_trio_test
    async def test_provision_after_down(self, conformance: BackendHarness) -> None:
        from skyhop_core.models.records import NodeState

        async with conformance.cleanup():
            name = conformance.cluster_name("again")
            first = await conformance.provision(name, 1)
            await conformance.setup_runtime(first)
            await conformance.down(first)
            await conformance.down(first)
            await conformance.wait_for_nodes(first, NodeState.TERMINATED, gone_ok=True)
            second = await conformance.provision(name, 1)
            await conformance.setup_runtime(second)
            await conformance.run_echo_job(second)

    @_trio_test
    async def test_open_ports(self, conformance: BackendHarness) -> None:
        from skyhop_core.exceptions import NotSupportedError
        from skyhop_core.models.records import Feature

        async with conformance.cleanup():
            handle = await conformance.provision(conformance.cluster_name("ports"), 1)
            if not conformance.info.supports(Feature.OPEN_PORTS):
                with pytest.raises(NotSupportedError):
                    await conformance.open_ports(handle, [8080])
                return
            opened = await conformance.open_ports(handle, [8080])
            assert 8080 in opened.ports and opened.ports[8080], (
                "skyhop_open_ports: the returned handle must map port 8080 to where it is "
                f"reachable (host:port); got ports={opened.ports!r}."
            )
