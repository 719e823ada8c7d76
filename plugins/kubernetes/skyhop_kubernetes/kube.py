"""Reaching a Kubernetes API: kubeconfig contexts as regions, credentials, the client.

Each kubeconfig context is a region (``infra: k8s/<context>``). Which contexts skyhop may
use comes from the config (``kubernetes: allowed_contexts: [...]``; default: the
current context only); the namespace from ``kubernetes: namespace`` or the context (else
``default``). Inside a pod with no kubeconfig, the service account is used (region
``in-cluster``).

A lightkube ``AsyncClient`` is made for every hook call and closed after it: clients are
bound to the event loop they were made in, and each request of the server (and each
conformance test) may be its own ``trio.run``.

lightkube runs exec-credential plugins (what GKE and EKS kubeconfigs use) with asyncio's
subprocess API, which fails under trio; :func:`client_for` runs the plugin itself with
``trio.run_process`` and hands lightkube the token it printed (cached until it expires).
"""

from __future__ import annotations

import contextlib
import datetime
import json
import os
from collections.abc import AsyncIterator, Mapping
from pathlib import Path
from typing import Any

import trio

from skyhop_core.context import BackendContext
from skyhop_core.exceptions import CredentialsError

IN_CLUSTER = "in-cluster"
SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"
#: Tokens from exec-credential plugins: (command, args, env) -> (token, expiry or None).
_TOKENS: dict[tuple[Any, ...], tuple[str, datetime.datetime | None]] = {}


def kubeconfig_path(config: Mapping[str, Any]) -> str:
    """The kubeconfig file: ``kubernetes: kubeconfig``, else $KUBECONFIG, else ~/.kube/config."""
    path = config.get("kubeconfig") or os.environ.get("KUBECONFIG", "").split(os.pathsep)[0]
    return os.path.expanduser(str(path or "~/.kube/config"))


def load(config: Mapping[str, Any]) -> Any:
    """The parsed kubeconfig (a lightkube ``KubeConfig``), or None when in-cluster."""
    from lightkube import KubeConfig

    path = kubeconfig_path(config)
    if not os.path.exists(path):
        if os.path.exists(os.path.join(SERVICE_ACCOUNT, "token")):
            return None
        raise CredentialsError(
            f"No kubeconfig at {path}. Set `kubernetes: kubeconfig:` in the skyhop config, "
            "or KUBECONFIG, to a kubeconfig file with the contexts to use."
        )
    try:
        return KubeConfig.from_file(path)
    except Exception as exc:
        raise CredentialsError(f"The kubeconfig {path} cannot be read: {exc}") from exc


def contexts(config: Mapping[str, Any]) -> list[str]:
    """The contexts (regions) skyhop may use, in the order failover tries them."""
    kube = load(config)
    if kube is None:
        return [IN_CLUSTER]
    allowed = config.get("allowed_contexts")
    if allowed:
        missing = [c for c in allowed if c not in kube.contexts]
        if missing:
            raise CredentialsError(
                f"kubernetes.allowed_contexts names {missing}, which the kubeconfig "
                f"{kubeconfig_path(config)} does not have (it has {sorted(kube.contexts)})."
            )
        return [str(c) for c in allowed]
    if kube.current_context:
        return [kube.current_context]
    return sorted(kube.contexts)[:1]


def namespace(config: Mapping[str, Any], context: str) -> str:
    if config.get("namespace"):
        return str(config["namespace"])
    if context == IN_CLUSTER:
        path = Path(SERVICE_ACCOUNT) / "namespace"
        return path.read_text().strip() if path.exists() else "default"
    kube = load(config)
    ctx = kube.contexts.get(context) if kube is not None else None
    return (ctx.namespace if ctx is not None else None) or "default"


async def _exec_token(user_exec: Any) -> str:
    """Run a kubeconfig ``exec`` credential plugin under trio; return its bearer token."""
    env = dict(os.environ)
    for item in user_exec.env or []:
        env[item.name] = item.value
    argv = [user_exec.command, *(user_exec.args or [])]
    key = (tuple(argv), tuple(sorted((e.name, e.value) for e in user_exec.env or [])))
    cached = _TOKENS.get(key)
    now = datetime.datetime.now(datetime.UTC)
    if cached and (cached[1] is None or cached[1] - now > datetime.timedelta(seconds=60)):
        return cached[0]
    env.setdefault("KUBERNETES_EXEC_INFO", json.dumps({
        "apiVersion": user_exec.apiVersion, "kind": "ExecCredential",
        "spec": {"interactive": False}}))  # fmt: skip
    try:
        with trio.fail_after(60):
            done = await trio.run_process(argv, env=env, capture_stdout=True,
                                          capture_stderr=True, check=False)  # fmt: skip
    except (OSError, trio.TooSlowError) as exc:
        raise CredentialsError(
            f"The kubeconfig's credential plugin {argv[0]!r} failed: {exc}"
        ) from exc
    if done.returncode != 0:
        raise CredentialsError(
            f"The kubeconfig's credential plugin {argv[0]!r} exited with {done.returncode}: "
            f"{done.stderr.decode(errors='replace').strip()[-500:]}"
        )
    try:
        status = json.loads(done.stdout)["status"]
        token = str(status["token"])
    except (ValueError, KeyError, TypeError) as exc:
        raise CredentialsError(
            f"The credential plugin {argv[0]!r} printed no ExecCredential token ({exc})."
        ) from None
    expiry = None
    if status.get("expirationTimestamp"):
        expiry = datetime.datetime.fromisoformat(
            status["expirationTimestamp"].replace("Z", "+00:00")
        )
    _TOKENS[key] = (token, expiry)
    return token


async def single_config(config: Mapping[str, Any], context: str) -> Any:
    """The lightkube ``SingleConfig`` for ``context``, exec credentials resolved."""
    import msgspec.structs
    from lightkube import KubeConfig
    from lightkube.config.kubeconfig import SingleConfig

    kube = load(config)
    if kube is None or context == IN_CLUSTER:
        return KubeConfig.from_service_account(SERVICE_ACCOUNT).get()
    single = kube.get(context)
    if single is None:
        raise CredentialsError(f"The kubeconfig has no context {context!r}.")
    if single.user is not None and single.user.exec is not None:
        token = await _exec_token(single.user.exec)
        user = msgspec.structs.replace(single.user, exec=None, token=token)
        single = SingleConfig(context_name=single.context_name, context=single.context,
                              cluster=single.cluster, user=user, fname=single.fname)  # fmt: skip
    return single


@contextlib.asynccontextmanager
async def client_for(ctx: BackendContext, context: str) -> AsyncIterator[Any]:
    """A lightkube ``AsyncClient`` for ``context`` in its namespace, closed afterwards."""
    import httpx2
    from lightkube import AsyncClient

    single = await single_config(ctx.config, context)
    timeout = float(ctx.config.get("request_timeout", 30))
    client = AsyncClient(config=single, namespace=namespace(ctx.config, context),
                         timeout=httpx2.Timeout(timeout), field_manager="skyhop")  # fmt: skip
    try:
        yield client
    finally:
        with trio.CancelScope(shield=True):
            await client.close()
