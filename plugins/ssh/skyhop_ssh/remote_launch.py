"""Runs one node's share of a job from the head, over SSH (copied to the head; stdlib only).

The head's agent calls ``python3 skyhop_ssh_launch.py RUNTIME ssh OPTS... DEST CMD`` with
the job's script on stdin. The remote side records its pid, so when the agent kills this
process group (cancel, a failed gang member, ``down``) the remote process group is killed
over SSH too: closing an SSH channel alone does not stop a remote command.

When ``ssh`` fails with 255 and the host no longer answers, the host died under the job:
the job is marked FAILED_DRIVER in the agent's database (before the agent marks it FAILED).
"""

import contextlib
import os
import re
import shlex
import signal
import subprocess
import sys
import uuid

KILL = (
    "import os, signal, sys, time\n"
    "try:\n"
    "    pgid = os.getpgid(int(open(sys.argv[1]).read()))\n"
    "except (OSError, ValueError):\n"
    "    sys.exit(0)\n"
    "for sig in (signal.SIGTERM, signal.SIGKILL):\n"
    "    try:\n"
    "        os.killpg(pgid, sig)\n"
    "    except OSError:\n"
    "        break\n"
    "    time.sleep(0.5)\n"
)


def mark_failed_driver(runtime, script):
    """Mark the job whose script this is FAILED_DRIVER (if it is still active)."""
    found = re.search(rb'\\?"job_id\\?": (\d+)', script)
    if not found:
        return
    sys.path.insert(0, os.path.join(runtime, "pkg"))
    from skyhop_core.agent import db  # noqa: PLC0415

    with db.connect(os.path.join(runtime, "agent.db")) as conn:
        db.transition(conn, int(found.group(1)), db.FAILED_DRIVER, only_from=db.ACTIVE)


def main():
    runtime, ssh_argv, command = sys.argv[1], sys.argv[2:-1], sys.argv[-1]
    script = sys.stdin.buffer.read()
    pidfile = f"/tmp/.skyhop-job-{uuid.uuid4().hex}.pid"
    inner = f"echo $$ > {pidfile}; {command}; rc=$?; rm -f {pidfile}; exit $rc"
    proc = subprocess.Popen(ssh_argv + ["sh -c " + shlex.quote(inner)], stdin=subprocess.PIPE)
    assert proc.stdin is not None
    with contextlib.suppress(BrokenPipeError):
        proc.stdin.write(script)
        proc.stdin.close()
    stopping = []

    def on_signal(signum, frame):
        stopping.append(signum)
        kill = ssh_argv[:-1] + ["-n", ssh_argv[-1], f"python3 -c {shlex.quote(KILL)} {pidfile}"]
        killer = subprocess.Popen(
            kill, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        with contextlib.suppress(subprocess.TimeoutExpired):
            killer.wait(timeout=5)
        proc.terminate()
        sys.exit(128 + signum)

    for sig in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, on_signal)
    code = proc.wait()
    if code == 255 and not stopping:
        probe = subprocess.run(
            ssh_argv[:-1] + ["-n", ssh_argv[-1], "true"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        if probe.returncode != 0:
            sys.stderr.write(f"skyhop: lost the connection to the node ({ssh_argv[-1]})\n")
            mark_failed_driver(runtime, script)
    sys.exit(code)


if __name__ == "__main__":
    main()
