"""What a local node's sandbox adds to exec-to-first-output, against a plain node.

Two servers of their own (not the suite's warm server), started side by side: one whose
local nodes are sandboxes (overlay root, own mount and network namespace on a bridge and
subnet of the benchmark's own, no egress), one with ``SKYHOP_LOCAL_SANDBOX=off`` and
``SKYHOP_LOCAL_NETWORK=off`` (nodes are plain directories: the path before sandboxes).
A 1-node cluster is launched on each; then ``exec`` of an ``echo`` is timed on both,
alternating, the way ``bench.jobs`` times it (submit, get the job ID, follow the log
until the line arrives). Where the host cannot make sandboxes (not root, no overlayfs)
the figure is reported as skipped with the reason. The bridge is removed at the end.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
from typing import Any

import yaml

from bench.jobs import _first_output, task
from bench.report import Figure, Target
from bench.servers import ApiServer
from bench.util import Run, environment, summary

NAME = "exec to first output (sandboxed local node)"
BASELINE = "same, plain node (no sandbox)"
CLUSTER = "bench-sandbox"


def _unavailable() -> str | None:
    try:
        from skyhop_local import sandbox
    except ImportError as exc:
        return f"the local plugin is not installed ({exc})"
    support = sandbox.detect()
    return None if support.sandboxed else support.reason


def _network_config(root: Any) -> dict[str, Any]:
    bridge = f"skb{os.getpid() % 100000}"
    return {"backends": {"local": {"network": {
        "enabled": "on", "bridge": bridge, "subnet": f"10.150.{os.getpid() % 250}.0/24",
        "registry": str(root / "addresses"), "egress": "none",
    }}}}  # fmt: skip


def exec_first_output_sandbox(run: Run) -> list[Figure]:
    import skyhop as sky

    reason = _unavailable()
    if reason:
        return [Figure("sandbox", NAME, "ms", skipped=f"no sandboxes here: {reason}")]
    boxed = plain = None
    bridge = None
    try:
        boxed, plain = ApiServer(), ApiServer()
        config = _network_config(boxed.root)
        bridge = config["backends"]["local"]["network"]["bridge"]
        (boxed.root / "config.yaml").write_text(yaml.safe_dump(config))
        boxed.env["SKYHOP_LOCAL_NETWORK"] = "on"
        plain.env.update({"SKYHOP_LOCAL_SANDBOX": "off", "SKYHOP_LOCAL_NETWORK": "off"})
        boxed.start()
        plain.start()
        for server in (boxed, plain):
            with environment(server.env):
                sky.get(sky.launch(task(), cluster_name=CLUSTER))
        runs = run.reps(5, 20)
        samples, base = [], []
        for i in range(runs + 1):
            pair = []
            for server in (boxed, plain):
                with environment(server.env):
                    pair.append(
                        _first_output(
                            lambda cmd: sky.exec(task(cmd), cluster_name=CLUSTER), CLUSTER
                        )
                    )
            if i:  # the first pair is a warm-up
                samples.append(pair[0])
                base.append(pair[1])
        s, b = summary(samples, 1000), summary(base, 1000)
        return [
            Figure(
                "sandbox",
                NAME,
                "ms",
                s["p50"],
                s["p99"],
                BASELINE,
                b["p50"],
                b["p99"],
                Target("<", 150),
                f"{runs} alternating pairs after 1 warm-up: sky.exec + get + logs "
                "--follow until the echo arrives; sandbox = overlay root + own mount "
                "and network namespace (nsenter per command); own servers",
            )
        ]
    finally:
        for server in (boxed, plain):
            if server is None:
                continue
            with contextlib.suppress(Exception), environment(server.env):
                sky.get(sky.down(CLUSTER))
            server.cleanup()
        if bridge:
            subprocess.run(["ip", "link", "del", bridge], capture_output=True)
