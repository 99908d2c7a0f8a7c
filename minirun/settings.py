"""Where minirun keeps its host-wide things, read from the environment in this one place.

    MINIRUN_STATE_ROOT     container state of root (/run/minirun); VMs use it with "-vm"
                           appended. A rootless user's is its own runtime directory.
    MINIRUN_OCI_ROOT       minirun-oci's state when no --root is given (/run/minirun-oci)
    MINIRUN_CGROUP_PARENT  the cgroup directory containers go below, in every
                           hierarchy (minirun; with another MINIRUN_STATE_ROOT, one of
                           its own: minirun-run-x for /run/x); minirun-oci's default is
                           it + "-oci"
    MINIRUN_LOG_ROOT       detached containers' data directories, their logs and writable
                           layers (/var/lib/minirun/containers as root; a rootless user's
                           data directory, or beside its state when it has no home of its
                           own): on disk, not under /run (a tmpfs: a chatty or writing
                           container would fill the host's RAM)
    MINIRUN_NETWORK_DIR    the bridge's address book (/var/lib/minirun/network)
    MINIRUN_BRIDGE         the bridge's name (minirun0)
    MINIRUN_SUBNET         the bridge's subnet (10.88.0.0/24)

They let two tenants of one host (two copies of the test suite, say) keep apart:
every minirun, minirun-oci, shim and finish step of one run sees the same values
because they inherit one environment. Only os here: every start reads this module.
"""

from __future__ import annotations

import os

_env = os.environ.get

TMP_PARENT = f"/tmp/minirun-{os.geteuid()}"  # rootless state without XDG_RUNTIME_DIR (state.check_root)
STATE_ROOT = (_env("MINIRUN_STATE_ROOT") or "/run/minirun") if os.geteuid() == 0 else os.path.join(
    _env("XDG_RUNTIME_DIR") or TMP_PARENT, "minirun")
VM_STATE_ROOT = STATE_ROOT + "-vm"


def _rootless_log_root() -> str:
    """$XDG_DATA_HOME/minirun/containers, else ~/.local/share's if $HOME is ours; a user
    without a home of their own (nobody) keeps logs beside the state (checked as it is)."""
    data = _env("XDG_DATA_HOME")
    if not data:
        home = _env("HOME", "")
        try:
            if home and os.stat(home).st_uid == os.geteuid():
                data = os.path.join(home, ".local", "share")
        except OSError:
            pass
    return os.path.join(data, "minirun", "containers") if data else STATE_ROOT + "-logs"


LOG_ROOT = _env("MINIRUN_LOG_ROOT") or ("/var/lib/minirun/containers" if os.geteuid() == 0 else _rootless_log_root())
OCI_ROOT = _env("MINIRUN_OCI_ROOT") or "/run/minirun-oci"
# A state root of its own has a cgroup parent of its own: gc and rm in one root must never
# meet another root's containers' cgroups (MINIRUN_STATE_ROOT set alone).
CGROUP_PARENT = _env("MINIRUN_CGROUP_PARENT") or (
    "minirun" if STATE_ROOT == "/run/minirun" or os.geteuid() != 0 else "minirun" + STATE_ROOT.replace("/", "-"))
OCI_CGROUP_PARENT = CGROUP_PARENT + "-oci"
NETWORK_DIR = _env("MINIRUN_NETWORK_DIR") or "/var/lib/minirun/network"
DEFAULT_BRIDGE = "minirun0"
BRIDGE = _env("MINIRUN_BRIDGE") or DEFAULT_BRIDGE
SUBNET = _env("MINIRUN_SUBNET") or "10.88.0.0/24"


def check_names() -> str | None:
    """What is wrong with the names above, or None: a cgroup parent is one path
    component, a bridge name a valid interface name (IFNAMSIZ)."""
    if CGROUP_PARENT in (".", "..") or "/" in CGROUP_PARENT:
        return f"MINIRUN_CGROUP_PARENT {CGROUP_PARENT!r}: must be one directory name (no '/', not '.' or '..')"
    if len(BRIDGE) > 15 or any(c in BRIDGE for c in "/: \t\n") or BRIDGE in (".", ".."):
        return f"MINIRUN_BRIDGE {BRIDGE!r}: must be an interface name of at most 15 characters, no '/', ':' or spaces"
    return None
