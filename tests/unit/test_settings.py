"""minirun/settings.py: the MINIRUN_* names are checked before they name a cgroup or a link."""

from __future__ import annotations

import pytest

from minirun import settings


@pytest.mark.parametrize("parent", ["../x", "a/b", ".", ".."])
def test_a_cgroup_parent_is_one_directory_name(monkeypatch, parent):
    monkeypatch.setattr(settings, "CGROUP_PARENT", parent)
    assert settings.check_names().startswith("MINIRUN_CGROUP_PARENT")


@pytest.mark.parametrize("bridge", ["x" * 16, "a/b", "a:b", "a b"])
def test_a_bridge_name_is_an_interface_name(monkeypatch, bridge):
    monkeypatch.setattr(settings, "BRIDGE", bridge)
    assert settings.check_names().startswith("MINIRUN_BRIDGE")


def test_the_defaults_and_a_test_sessions_names_pass(monkeypatch):
    monkeypatch.setattr(settings, "CGROUP_PARENT", "minirun-t123")
    monkeypatch.setattr(settings, "BRIDGE", "mrt-4194304")
    assert settings.check_names() is None
