"""`minirun-oci spec` (the config.json `runc spec` writes) and `features` (features.md)."""

from __future__ import annotations

import json
import os

from ..errors import SpecError
from .bundle import MOUNT_FLAGS, NAMESPACES, PROPAGATION
from .store import OCI_VERSION

# runc 1.1's template, as `runc spec` writes it: rootfs "rootfs", a terminal, `sh`.
DEFAULT_SPEC = json.loads("""
{
    "ociVersion": "1.0.2",
    "process": {
        "terminal": true,
        "user": {
            "uid": 0,
            "gid": 0
        },
        "args": [
            "sh"
        ],
        "env": [
            "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "TERM=xterm"
        ],
        "cwd": "/",
        "capabilities": {
            "bounding": [
                "CAP_AUDIT_WRITE",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE"
            ],
            "effective": [
                "CAP_AUDIT_WRITE",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE"
            ],
            "permitted": [
                "CAP_AUDIT_WRITE",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE"
            ],
            "ambient": [
                "CAP_AUDIT_WRITE",
                "CAP_KILL",
                "CAP_NET_BIND_SERVICE"
            ]
        },
        "rlimits": [
            {
                "type": "RLIMIT_NOFILE",
                "hard": 1024,
                "soft": 1024
            }
        ],
        "noNewPrivileges": true
    },
    "root": {
        "path": "rootfs",
        "readonly": true
    },
    "hostname": "runc",
    "mounts": [
        {
            "destination": "/proc",
            "type": "proc",
            "source": "proc"
        },
        {
            "destination": "/dev",
            "type": "tmpfs",
            "source": "tmpfs",
            "options": [
                "nosuid",
                "strictatime",
                "mode=755",
                "size=65536k"
            ]
        },
        {
            "destination": "/dev/pts",
            "type": "devpts",
            "source": "devpts",
            "options": [
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5"
            ]
        },
        {
            "destination": "/dev/shm",
            "type": "tmpfs",
            "source": "shm",
            "options": [
                "nosuid",
                "noexec",
                "nodev",
                "mode=1777",
                "size=65536k"
            ]
        },
        {
            "destination": "/dev/mqueue",
            "type": "mqueue",
            "source": "mqueue",
            "options": [
                "nosuid",
                "noexec",
                "nodev"
            ]
        },
        {
            "destination": "/sys",
            "type": "sysfs",
            "source": "sysfs",
            "options": [
                "nosuid",
                "noexec",
                "nodev",
                "ro"
            ]
        },
        {
            "destination": "/sys/fs/cgroup",
            "type": "cgroup",
            "source": "cgroup",
            "options": [
                "nosuid",
                "noexec",
                "nodev",
                "relatime",
                "ro"
            ]
        }
    ],
    "linux": {
        "resources": {
            "devices": [
                {
                    "allow": false,
                    "access": "rwm"
                }
            ]
        },
        "namespaces": [
            {
                "type": "pid"
            },
            {
                "type": "network"
            },
            {
                "type": "ipc"
            },
            {
                "type": "uts"
            },
            {
                "type": "mount"
            }
        ],
        "maskedPaths": [
            "/proc/acpi",
            "/proc/asound",
            "/proc/kcore",
            "/proc/keys",
            "/proc/latency_stats",
            "/proc/timer_list",
            "/proc/timer_stats",
            "/proc/sched_debug",
            "/sys/firmware",
            "/proc/scsi"
        ],
        "readonlyPaths": [
            "/proc/bus",
            "/proc/fs",
            "/proc/irq",
            "/proc/sys",
            "/proc/sysrq-trigger"
        ]
    }
}
""")


def with_minirun_defaults(config: dict) -> dict:
    """``config`` (a config.json, e.g. `runc spec`'s) with the security of minirun's default container, in fields
    every OCI runtime reads: Docker's capability set (bounding, effective, permitted; inheritable too for root,
    none ambient), no_new_privs, minirun's masked and read-only paths, and its default seccomp profile resolved
    for those capabilities (seccomp_build.to_oci). A peer runtime run on it applies what `minirun run` applies
    (minirun compare's runc column; tests/compare/test_compare_runc_settings.py checks it)."""
    from ..policy import DEFAULT_CAPS, DEFAULT_MASKED_PATHS, DEFAULT_READONLY_PATHS
    from ..seccomp_build import to_oci

    out = json.loads(json.dumps(config))
    process, linux = out.setdefault("process", {}), out.setdefault("linux", {})
    caps = list(DEFAULT_CAPS)
    root = int((process.get("user") or {}).get("uid", 0)) == 0
    # minirun: the inheritable set is the set for root, empty for others (security.native_args)
    process["capabilities"] = {"bounding": caps, "effective": caps, "permitted": caps,
                               "inheritable": caps if root else [], "ambient": []}
    process["noNewPrivileges"] = True
    linux["maskedPaths"] = list(DEFAULT_MASKED_PATHS)
    linux["readonlyPaths"] = list(DEFAULT_READONLY_PATHS)
    linux["seccomp"] = to_oci("default", caps)
    return out


def write_spec(bundle: str) -> None:
    path = os.path.join(bundle, "config.json")
    try:
        with open(path, "x") as f:
            json.dump(DEFAULT_SPEC, f, indent=4)
    except FileExistsError:
        raise SpecError(f"{path} already exists: remove it first") from None


def features() -> dict:
    from ..security import ALL_CAPS

    return {
        "ociVersionMin": "1.0.0", "ociVersionMax": OCI_VERSION,
        "hooks": ["prestart", "createRuntime", "createContainer", "startContainer", "poststart", "poststop"],
        "mountOptions": sorted(set(MOUNT_FLAGS) | set(PROPAGATION)),
        "linux": {
            "namespaces": sorted(NAMESPACES.keys() - {"user"}),
            "capabilities": list(ALL_CAPS),
            "cgroup": {"v1": True, "v2": True, "systemd": False, "systemdUser": False},
            "seccomp": {"enabled": True, "actions": ["SCMP_ACT_ALLOW", "SCMP_ACT_ERRNO", "SCMP_ACT_KILL"]},
            "apparmor": {"enabled": False}, "selinux": {"enabled": False},
        },
        "annotations": {"org.opencontainers.runc.version": "minirun-oci"},
    }
