"""The command runner of a pod: the API server's exec (websocket channel protocol).

``run`` sends stdin and collects stdout, stderr and the exit code from the final status
(``v5.channel.k8s.io``, which can close stdin); ``stream`` forwards output as it comes;
``upload`` is a tar stream over exec stdin unpacked by the pod's ``python3`` (no SSH
server, no ``kubectl cp`` needed). Every call has a deadline
(``kubernetes: exec_timeout``, default 1800 s; ``stream`` follows until the command
ends). A runner connects (makes its API client) on each call, never when it is made.

A command whose exec stream is cut (the caller was cancelled) may keep running in the
container on a real cluster, so ``stream`` records the command's pid and kills it.
"""

from __future__ import annotations

import json
import secrets
import shlex
from collections.abc import Mapping, Sequence
from typing import Any

import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CommandError, CredentialsError
from skyhop_core.models.records import NodeInfo
from skyhop_core.runner import CommandRunner, CompletedCommand, OutputCallback
from skyhop_kubernetes import kube, sync
from skyhop_kubernetes.errors import typed

DEFAULT_EXEC_TIMEOUT = 1800.0
PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"]


def _with_env(argv: Sequence[str], env: Mapping[str, str] | None, cwd: str | None) -> list[str]:
    argv = list(argv)
    if env:
        argv = ["env", *(f"{k}={v}" for k, v in env.items()), *argv]
    if cwd:
        argv = ["sh", "-c", 'cd "$1" && shift && exec "$@"', "sh", cwd, *argv]
    return argv


def exit_code_of(status: dict[str, Any]) -> int:
    """The exit code in an exec's final ``Status`` (channel 3)."""
    if status.get("status") == "Success":
        return 0
    for cause in (status.get("details") or {}).get("causes") or []:
        if cause.get("reason") == "ExitCode":
            return int(cause.get("message", 1))
    message = str(status.get("message", ""))
    return 127 if "not found" in message or "no such file" in message.lower() else 126


class KubernetesCommandRunner(CommandRunner):
    """Runs commands in the pod ``node.extra["pod"]`` through the API server's exec."""

    def __init__(self, ctx: BackendContext, node: NodeInfo) -> None:
        super().__init__(node)
        self.ctx = ctx
        self.pod = node.extra.get("pod", node.instance_id)
        self.context = node.extra.get("context", "")
        self.timeout = float(ctx.config.get("exec_timeout", DEFAULT_EXEC_TIMEOUT))

    def agent_command(self) -> list[str]:
        from skyhop_core.agent.daemon import boot_argv

        runtime = self.node.runtime_dir
        return [*boot_argv(self.python()[0], f"{runtime}/pkg"), "--root", runtime]

    def _where(self) -> str:
        return f"pod {self.pod} (context {self.context!r})"

    async def _session(self, argv: Sequence[str], stdin: bytes | None,
                       on_output: OutputCallback | None) -> CompletedCommand:  # fmt: skip
        """One exec, its failures to connect as typed errors naming the pod."""
        from httpx2.websockets import WebSocketDisconnect, WebSocketUpgradeError

        try:
            return await self._exec(argv, stdin, on_output)
        except WebSocketUpgradeError as exc:
            raise self._refused(exc.response) from None
        except WebSocketDisconnect as exc:
            raise CommandError(
                f"The exec stream to {self._where()} was cut ({exc}); is the pod still running?",
                command=shlex.join(argv)[:200],
            ) from None

    def _refused(self, response: Any) -> Exception:
        """The error for an exec the API server refused (the pod is gone, RBAC, ...)."""
        try:
            message = json.loads(response.content).get("message", "")
        except Exception:
            message = ""
        code = response.status_code
        if code in (401, 403):
            return CredentialsError(f"Kubernetes context {self.context!r} refused exec into "
                                    f"pod {self.pod} ({code}): {message or 'forbidden'} — the "
                                    "user needs create on pods/exec.")  # fmt: skip
        detail = f": {message}" if message else ""
        if code == 404:
            return CommandError(f"The {self._where()} does not exist (deleted or evicted?)"
                                f"{detail}; run `skyhop status --refresh`.")  # fmt: skip
        return CommandError(f"Exec into {self._where()} failed ({code}){detail}.")

    async def _exec(self, argv: Sequence[str], stdin: bytes | None,
                    on_output: OutputCallback | None) -> CompletedCommand:  # fmt: skip
        """One exec: send ``stdin`` (then close it), collect or forward the output."""
        from lightkube.resources.core_v1 import Pod

        out, err = bytearray(), bytearray()
        async with kube.client_for(self.ctx, self.context) as client:
            with typed(self.context):
                params = {"command": list(argv), "stdout": True, "stderr": True,
                          "stdin": stdin is not None, "container": None}  # fmt: skip
                params = {k: v for k, v in params.items() if v is not None}
                br = client._client.prepare_request(  # lightkube has no streaming exec API
                    "exec", Pod, None, self.pod, client.namespace, params=params
                )
                http = client._client._client
                async with http.websocket(br.url, subprotocols=PROTOCOLS,
                                          params=br.params) as ws:  # fmt: skip
                    if stdin is not None:
                        if ws.subprotocol != PROTOCOLS[0]:
                            raise CommandError(
                                f"The API server of context {self.context!r} does not speak "
                                f"{PROTOCOLS[0]} (Kubernetes >= 1.30), needed to send stdin."
                            )
                        view = memoryview(stdin)
                        for i in range(0, len(view), 256 * 1024):
                            await ws.send_bytes(b"\x00" + bytes(view[i : i + 256 * 1024]))
                        await ws.send_bytes(b"\xff\x00")
                    while True:
                        message = await ws.receive_bytes()
                        channel, data = message[0], message[1:]
                        if channel in (1, 2):
                            if on_output is not None:
                                await on_output(data)
                            else:
                                (out if channel == 1 else err).extend(data)
                        elif channel == 3:
                            code = exit_code_of(json.loads(data or b"{}"))
                            if code in (126, 127) and b"status" in data and not err:
                                err.extend(json.loads(data).get("message", "").encode())
                            return CompletedCommand(code, bytes(out), bytes(err))

    async def run(self, argv: Sequence[str], *, input: bytes | None = None,
                  env: Mapping[str, str] | None = None,
                  cwd: str | None = None) -> CompletedCommand:  # fmt: skip
        command = _with_env(argv, env, cwd)
        try:
            with trio.fail_after(self.timeout):
                return await self._session(command, input, None)
        except trio.TooSlowError:
            raise CommandError(
                f"{shlex.join(command)[:200]} on {self._where()} did not finish within "
                f"{self.timeout:g}s (kubernetes: exec_timeout).",
                command=shlex.join(command),
            ) from None

    async def stream(self, argv: Sequence[str], on_output: OutputCallback, *,
                     env: Mapping[str, str] | None = None) -> int:  # fmt: skip
        pidfile = f"/tmp/.skyhop-exec-{secrets.token_hex(6)}"
        # Record the pid so a cancelled stream can kill the command it leaves behind.
        wrapped = ["sh", "-c", f'echo $$ > {pidfile}; exec "$@"', "sh",
                   *_with_env(argv, env, None)]  # fmt: skip
        try:
            result = await self._session(wrapped, None, on_output)
        except BaseException:
            with trio.CancelScope(shield=True), trio.move_on_after(15):
                kill = f"kill -TERM $(cat {pidfile}) 2>/dev/null; rm -f {pidfile}"
                await self._session(["sh", "-c", kill], None, None)
            raise
        with trio.CancelScope(shield=True), trio.move_on_after(15):
            await self._session(["rm", "-f", pidfile], None, None)
        return result.returncode

    async def upload(self, local_path: str, remote_path: str, *,
                     excludes: Sequence[str] = ()) -> None:  # fmt: skip
        await sync.upload(self, local_path, remote_path, excludes=excludes)
