"""fakegce: a fake Google Compute Engine API for the GCP backend's tests.

Its routes, parameters and request bodies come from Google's ``compute.v1`` discovery
document (:mod:`fakegce.discovery`); instances, firewalls and operations move through
their states over time (:mod:`fakegce.world`); each running instance is a real sshd host
in a network namespace (:mod:`fakegce.hosts`); OAuth tokens are issued for service-account
JWTs signed by google-auth (:mod:`fakegce.server`). Run as ``python -m fakegce CONFIG``.
"""
