"""Testing helpers for skyhop backends: the conformance suite (a pytest plugin).

:mod:`skyhop_core.testing.conformance` is registered with pytest through the ``pytest11``
entry point; it provides :class:`~skyhop_core.testing.conformance.BackendConformance`,
which a backend's test module subclasses to run the shared lifecycle tests.
"""
