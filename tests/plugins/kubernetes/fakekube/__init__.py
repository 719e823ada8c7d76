"""A fake Kubernetes API server for the kubernetes backend's tests (test-side only).

It speaks the real protocol for what the backend (and ``kubectl``) uses: namespaces,
pods, services and nodes under ``/api/v1``, label and field selectors, resourceVersion
and ``watch=true`` streams, pod logs, and exec over ``v5.channel.k8s.io`` /
``v4.channel.k8s.io`` websockets. A scheduler places pods on the configured nodes by
their requests, node selectors/affinity and taints (or leaves them Pending with
``PodScheduled=False`` and kube-scheduler's message), and a "kubelet" runs each pod's
container command as a real process in its own network namespace (a real, distinct pod
IP) with a private ``/root`` and ``/tmp`` (bubblewrap), writing status and logs back.

Modules: :mod:`.store` (objects, versions, watches, selectors), :mod:`.schedule`,
:mod:`.kubelet`, :mod:`.execws` (the channel protocol), :mod:`.app` (the HTTP routes),
:mod:`.__main__` (``python -m fakekube --config cfg.json``).
"""
