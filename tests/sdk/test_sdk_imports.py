"""The CLI starts fast: ``--help`` and ``status`` never import the server stack."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

SERVER_STACK = ("trio", "hypercorn", "starlette", "sqlalchemy", "skyhop_core.server")


def imported_modules(stderr: str) -> set[str]:
    """Module names from ``python -X importtime`` output."""
    names = set()
    for line in stderr.splitlines():
        if line.startswith("import time:") and "|" in line:
            names.add(line.rsplit("|", 1)[1].strip())
    return names


def run_python(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SKYHOP_API_SERVER_ENDPOINT": "http://192.0.2.1:9"}
    return subprocess.run(
        [sys.executable, "-X", "importtime", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )


def test_importing_the_cli_imports_neither_httpx_nor_the_server():
    proc = run_python("-c", "import skyhop.cli")
    assert proc.returncode == 0, proc.stderr
    modules = imported_modules(proc.stderr)
    assert "skyhop.cli" in modules
    for name in (*SERVER_STACK, "httpx", "skyhop.sdk", "skyhop_core.wire"):
        assert name not in modules, f"import skyhop.cli imported {name}"


def test_help_imports_neither_httpx_nor_the_server():
    proc = run_python("-m", "skyhop.cli", "--help")
    assert proc.returncode == 0
    assert "Usage: skyhop" in proc.stdout or "Usage: python -m skyhop.cli" in proc.stdout
    modules = imported_modules(proc.stderr)
    for name in (*SERVER_STACK, "httpx"):
        assert name not in modules, f"skyhop --help imported {name}"


def test_import_skyhop_is_lazy():
    proc = run_python("-c", "import skyhop")
    modules = imported_modules(proc.stderr)
    assert "skyhop.sdk" not in modules and "httpx" not in modules


def test_status_command_does_not_import_the_server_stack():
    script = f"SERVER_STACK = {SERVER_STACK!r}\n" + textwrap.dedent(
        """
        import sys
        import httpx
        from skyhop.client import ApiClient, using
        from skyhop.cli import cli

        def handler(request):
            path = request.url.path
            if path == "/api/health":
                return httpx.Response(200, json={"api_version": "1.0"})
            if path == "/api/v1/status":
                return httpx.Response(202, json={"request_id": "r-1"})
            return httpx.Response(200, json={"request_id": "r-1", "name": "status",
                                             "status": "SUCCEEDED", "result": [], "error": None})

        with using(ApiClient("http://127.0.0.1:1", transport=httpx.MockTransport(handler))):
            try:
                cli.main(["status"], prog_name="skyhop")
            except SystemExit as exc:
                assert not exc.code, exc.code
        loaded = [m for m in SERVER_STACK if m in sys.modules]
        print("LOADED", loaded)
        """
    )
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == 0, proc.stderr
    assert "No existing clusters." in proc.stdout
    assert "LOADED []" in proc.stdout


def test_the_public_names_are_the_lazy_table() -> None:
    import skyhop

    assert sorted(skyhop.__all__) == sorted(skyhop._LAZY)


def test_dir_lists_the_public_names_only() -> None:
    import skyhop

    public = [name for name in dir(skyhop) if not name.startswith("__")]
    assert public == sorted(skyhop.__all__)
    for leaked in ("Any", "TYPE_CHECKING", "annotations", "importlib"):
        assert leaked not in dir(skyhop)
