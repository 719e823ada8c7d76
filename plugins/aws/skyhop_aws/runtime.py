"""The node agent on EC2 instances: the shared cloud-VM bring-up of :mod:`skyhop_ssh.vmsetup`
(wait for SSH, install the agent over OpenSSH, start it on the head), re-exported here."""

from skyhop_ssh.vmsetup import (
    DEFAULT_SSH_WAIT,
    INSTALL_TIMEOUT,
    SSH_RETRY_INTERVAL,
    head_keys,
    launcher_target,
    setup_runtime,
    ssh_wait_seconds,
    wait_for_ssh,
    with_launchers,
)

__all__ = [
    "DEFAULT_SSH_WAIT", "INSTALL_TIMEOUT", "SSH_RETRY_INTERVAL", "head_keys", "launcher_target",
    "setup_runtime", "ssh_wait_seconds", "wait_for_ssh", "with_launchers",
]  # fmt: skip
