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


def test_a_state_root_of_its_own_has_a_cgroup_parent_of_its_own():
    """MINIRUN_STATE_ROOT set alone: gc and rm in that root would otherwise meet, under the
    shared parent, the cgroups of another root's containers (and a failed start's record,
    removed, destroy its namesake's)."""
    import os
    import subprocess
    import sys

    def parent(**env):
        clean = {k: v for k, v in os.environ.items() if not k.startswith("MINIRUN_")}
        out = subprocess.run([sys.executable, "-c", "from minirun import settings; print(settings.CGROUP_PARENT)"],
                             env={**clean, **env}, capture_output=True, text=True, check=True)
        return out.stdout.strip()

    assert parent() == parent(MINIRUN_STATE_ROOT="/run/minirun") == "minirun"
    assert parent(MINIRUN_STATE_ROOT="/run/other") == "minirun-run-other"
    assert parent(MINIRUN_STATE_ROOT="/run/other", MINIRUN_CGROUP_PARENT="mine") == "mine"
    settings_with_it = parent(MINIRUN_STATE_ROOT="/srv/a/b")
    assert "/" not in settings_with_it and settings_with_it != "minirun"
