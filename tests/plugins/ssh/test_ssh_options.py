"""The ssh command line's liveness settings: the environment overrides, and bad values."""

from __future__ import annotations

import pytest

from skyhop_ssh.sshcmd import Target, ssh_options


def _option(opts: list[str], name: str) -> str:
    return next(o.split("=", 1)[1] for o in opts if o.startswith(f"{name}="))


def test_keep_alive_and_connect_timeout_follow_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SKYHOP_SSH_ALIVE_INTERVAL", raising=False)
    monkeypatch.delenv("SKYHOP_SSH_CONNECT_TIMEOUT", raising=False)
    opts = ssh_options(Target(ip="10.0.0.1"), "/dev/null")
    assert (_option(opts, "ServerAliveInterval"), _option(opts, "ConnectTimeout")) == ("5", "10")
    monkeypatch.setenv("SKYHOP_SSH_ALIVE_INTERVAL", "2")
    monkeypatch.setenv("SKYHOP_SSH_CONNECT_TIMEOUT", "3")
    opts = ssh_options(Target(ip="10.0.0.1"), "/dev/null")
    assert (_option(opts, "ServerAliveInterval"), _option(opts, "ConnectTimeout")) == ("2", "3")


def test_a_bad_value_names_the_variable_and_what_to_do(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKYHOP_SSH_ALIVE_INTERVAL", "soon")
    with pytest.raises(ValueError, match="SKYHOP_SSH_ALIVE_INTERVAL='soon' .* set it to one"):
        ssh_options(Target(ip="10.0.0.1"), "/dev/null")
