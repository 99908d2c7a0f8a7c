"""The top-level Vagrantfile parses (`vagrant validate`) where vagrant is installed."""

from __future__ import annotations

import os
import shutil
import subprocess

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_vagrant_validate():
    if not shutil.which("vagrant"):
        pytest.skip("vagrant not installed (Debian package vagrant)")
    # Checks the provider blocks too (a misspelt libvirt setting fails), without a box being present.
    proc = subprocess.run(["vagrant", "validate"], cwd=ROOT, capture_output=True, text=True, timeout=180,
                          env=dict(os.environ, VAGRANT_CHECKPOINT_DISABLE="1"))
    assert proc.returncode == 0, proc.stdout + proc.stderr
