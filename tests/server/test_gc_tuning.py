"""The server's garbage-collector settings (``skyhop_core.server.main.tune_gc``)."""

from __future__ import annotations

import gc
import weakref

import pytest

from skyhop_core.server.main import GC_YOUNG_THRESHOLD, tune_gc


@pytest.fixture
def restore_gc():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


class _Node:
    def __init__(self) -> None:
        self.me = self  # a reference cycle: only the cyclic collector frees it


def test_tuning_freezes_start_up_and_still_frees_cycles(restore_gc):
    assert tune_gc({}) is True
    assert gc.get_freeze_count() > 1000  # the modules and objects start-up made
    assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
    freed: list[int] = []
    first = _Node()
    weakref.finalize(first, freed.append, 1)
    del first
    for _ in range(3 * GC_YOUNG_THRESHOLD):  # garbage cycles, as requests leave behind
        _Node()
    assert freed == [1], "a young collection ran without anyone calling gc.collect()"


def test_skyhop_gc_tuning_0_keeps_the_defaults(restore_gc):
    before = gc.get_threshold()
    assert tune_gc({"SKYHOP_GC_TUNING": "0"}) is False
    assert gc.get_threshold() == before
