"""The config file is parsed once while it is unchanged, and every change is seen."""

from __future__ import annotations

import os
import time

import yaml

from skyhop_core import paths


def test_an_unchanged_config_is_parsed_once_and_every_change_is_seen(tmp_path, monkeypatch):
    config = tmp_path / "config.yaml"
    monkeypatch.setenv("SKYHOP_CONFIG", str(config))
    parses = []
    real = yaml.safe_load
    monkeypatch.setattr(yaml, "safe_load", lambda text: parses.append(1) or real(text))
    assert paths.load_config() == {}
    config.write_text("api_server: {endpoint: 'http://a:1'}\n")
    old = time.time() - 10
    os.utime(config, (old, old))
    for _ in range(5):
        assert paths.load_config()["api_server"]["endpoint"] == "http://a:1"
    assert len(parses) == 1, "an unchanged file was parsed again"
    paths.load_config()["api_server"]["endpoint"] = "mutated"  # callers get their own copy
    assert paths.load_config()["api_server"]["endpoint"] == "http://a:1"
    # Rewritten in place, same size, at once: seen (the file is newer than a second).
    config.write_text("api_server: {endpoint: 'http://b:2'}\n")
    assert paths.load_config()["api_server"]["endpoint"] == "http://b:2"
    config.write_text("api_server: {endpoint: 'http://c:3'}\n")
    assert paths.load_config()["api_server"]["endpoint"] == "http://c:3"
    config.unlink()
    assert paths.load_config() == {}
