"""The command runner of an EC2 node: the ssh backend's OpenSSH runner, as every cloud VM
backend uses it (:func:`skyhop_ssh.vmsetup.make_runner`)."""

from skyhop_ssh.vmsetup import known_hosts_file, make_runner

__all__ = ["known_hosts_file", "make_runner"]
