"""The fake's kubelet: run each scheduled pod's container as real local processes.

Each pod gets a network namespace on the fake cluster's bridge (so its IP is real and
distinct, and pods reach each other) and a private ``/root`` and ``/tmp`` through
bubblewrap, so two pods never see each other's files, like containers. The image is not
pulled: the container's command runs with this machine's programs (its ``python3``).
Exec sessions run in the same namespaces. Deleting a pod kills every process in its
namespace (``ip netns pids``), then removes the namespace. Needs root, ``ip`` and ``bwrap``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import trio

from .store import Store, now


def unavailable() -> str | None:
    if os.geteuid() != 0:
        return "the fake kubelet needs root (network namespaces)"
    for tool in ("ip", "bwrap"):
        if shutil.which(tool) is None:
            return f"{tool} is not installed (apt-get install iproute2 bubblewrap)"
    return None


def _ip(*args: str, check: bool = True) -> None:
    subprocess.run(["ip", *args], capture_output=True, text=True, check=check)


class Kubelet:
    """Pods of one fake cluster: namespaces ``fk<tag>p<n>`` on bridge ``fkbr<tag>``."""

    def __init__(self, store: Store, root: Path, tag: str, subnet: int) -> None:
        self.store, self.root, self.tag, self.subnet = store, root, tag, subnet
        self.bridge = f"fkbr{tag}"
        self.next_ip = 10
        self.netns: dict[str, str] = {}  # pod uid -> namespace name
        self.procs: dict[str, trio.Process] = {}
        #: The host's address on the bridge: what "node" and load-balancer addresses are.
        self.gateway = f"10.214.{subnet}.1"

    def setup(self) -> None:
        _ip("link", "add", self.bridge, "type", "bridge")
        _ip("addr", "add", f"10.214.{self.subnet}.1/24", "dev", self.bridge)
        _ip("link", "set", self.bridge, "up")

    def close(self) -> None:
        for uid in list(self.netns):
            self._kill_namespace(uid)
        _ip("link", "del", self.bridge, check=False)

    # --- namespaces and processes ------------------------------------------------

    def pod_dir(self, pod: dict[str, Any]) -> Path:
        return self.root / "pods" / pod["metadata"]["uid"]

    def _make_namespace(self, uid: str) -> str:
        n = self.next_ip
        self.next_ip += 1
        ns, veth = f"fk{self.tag}p{n}", f"fkv{self.tag}{n}"
        _ip("netns", "add", ns)
        self.netns[uid] = ns
        _ip("link", "add", veth, "type", "veth", "peer", "name", f"{veth}p")
        _ip("link", "set", f"{veth}p", "netns", ns)
        _ip("link", "set", veth, "master", self.bridge)
        _ip("link", "set", veth, "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        _ip("-n", ns, "link", "set", f"{veth}p", "name", "eth0")
        _ip("-n", ns, "addr", "add", f"10.214.{self.subnet}.{n}/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        # Pods talk to each other on the bridge; the default route only lets them reach the
        # host side (best effort: the bridge's link may still be settling).
        _ip("-n", ns, "route", "add", "default", "via", f"10.214.{self.subnet}.1", check=False)
        return f"10.214.{self.subnet}.{n}"

    def _kill_namespace(self, uid: str) -> None:
        ns = self.netns.pop(uid, None)
        if ns is None:
            return
        for sig in (signal.SIGKILL,):
            out = subprocess.run(["ip", "netns", "pids", ns], capture_output=True, text=True)
            for pid in out.stdout.split():
                with contextlib.suppress(OSError):
                    os.kill(int(pid), sig)
        _ip("netns", "del", ns, check=False)

    def argv_in_pod(self, pod: dict[str, Any], argv: list[str], env: dict[str, str],
                    workdir: str | None = None) -> list[str]:  # fmt: skip
        """``argv`` wrapped to run in the pod's namespace with its private /root and /tmp."""
        ns = self.netns[pod["metadata"]["uid"]]
        d = self.pod_dir(pod)
        wrapped = ["ip", "netns", "exec", ns, "bwrap", "--dev-bind", "/", "/",
                   "--bind", str(d / "root"), "/root", "--bind", str(d / "tmp"), "/tmp",
                   "--chdir", workdir or "/root", "--setenv", "HOME", "/root",
                   "--unshare-uts", "--hostname", pod["metadata"]["name"],
                   "--setenv", "HOSTNAME", pod["metadata"]["name"]]  # fmt: skip
        for key, value in env.items():
            wrapped += ["--setenv", key, value]
        return [*wrapped, "--", *argv]

    def container_env(self, pod: dict[str, Any]) -> dict[str, str]:
        container = pod["spec"]["containers"][0]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"),
               "KUBERNETES_SERVICE_HOST": "fake"}  # fmt: skip
        for item in container.get("env") or []:
            env[item["name"]] = str(item.get("value", ""))
        return env

    # --- pod lifecycle --------------------------------------------------------------

    async def run_pod(self, pod: dict[str, Any]) -> None:
        """Run the pod; a failure to start it marks the pod Failed (never the server)."""
        try:
            await self._run_pod(pod)
        except Exception as exc:
            if pod["metadata"].get("deletionTimestamp"):
                return  # deleted while it was starting: its namespace went away under it
            print(f"pod {pod['metadata']['name']} failed to start: {exc!r}", flush=True)
            pod["status"].update(phase="Failed", reason="StartError", message=repr(exc))
            self.store.update("pods", pod)

    async def _run_pod(self, pod: dict[str, Any]) -> None:
        uid = pod["metadata"]["uid"]
        d = self.pod_dir(pod)
        (d / "root").mkdir(parents=True, exist_ok=True)
        (d / "tmp").mkdir(exist_ok=True)
        ip = await trio.to_thread.run_sync(self._make_namespace, uid)
        container = pod["spec"]["containers"][0]
        argv = [*(container.get("command") or []), *(container.get("args") or [])]
        if not argv:
            argv = ["sleep", "infinity"]
        log = open(d / "log", "wb")  # noqa: SIM115
        try:
            proc = await trio.lowlevel.open_process(
                self.argv_in_pod(pod, argv, self.container_env(pod), container.get("workingDir")),
                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                start_new_session=True,
            )  # fmt: skip
        finally:
            log.close()
        self.procs[uid] = proc
        status = pod["status"]
        status.update(phase="Running", podIP=ip, podIPs=[{"ip": ip}], hostIP="10.214.0.1",
                      startTime=now())  # fmt: skip
        status["conditions"] = [
            {"type": t, "status": "True", "lastTransitionTime": now()}
            for t in ("PodScheduled", "Initialized", "ContainersReady", "Ready")
        ]
        status["containerStatuses"] = [{
            "name": container["name"], "image": container.get("image", ""), "ready": True,
            "restartCount": 0, "started": True, "imageID": "", "containerID": f"fake://{uid}",
            "state": {"running": {"startedAt": now()}}, "lastState": {},
        }]  # fmt: skip
        self.store.update("pods", pod)
        code = await proc.wait()
        if pod["metadata"].get("deletionTimestamp"):
            return
        status["phase"] = "Succeeded" if code == 0 else "Failed"
        status["containerStatuses"][0]["ready"] = False
        status["containerStatuses"][0]["state"] = {"terminated": {
            "exitCode": code, "reason": "Completed" if code == 0 else "Error",
            "startedAt": status["startTime"], "finishedAt": now()}}  # fmt: skip
        for cond in status["conditions"]:
            if cond["type"] in ("Ready", "ContainersReady"):
                cond["status"] = "False"
        self.store.update("pods", pod)

    async def delete_pod(self, pod: dict[str, Any]) -> None:
        """Kill the pod's processes, then remove it from the store."""
        uid = pod["metadata"]["uid"]
        proc = self.procs.pop(uid, None)
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGTERM)
            with trio.move_on_after(2):
                await proc.wait()
        await trio.to_thread.run_sync(self._kill_namespace, uid)
        if proc is not None:
            with trio.move_on_after(2):
                await proc.wait()
        await trio.to_thread.run_sync(shutil.rmtree, self.pod_dir(pod), True)
        meta = pod["metadata"]
        with contextlib.suppress(Exception):
            self.store.delete("pods", meta["namespace"], meta["name"])
