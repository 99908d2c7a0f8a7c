"""Escape probes: what a container must stop, as data.

Each probe is one subcommand of the static helper csrc/probe.c, run inside a
container (or a VM: the comparison command reuses this list for its Isolation
row). The helper exits 0 when the attempt got through (ESCAPED), 1 when it was
blocked, 2 when it does not apply on this kernel (the feature is missing).

Every probe has a positive control: the same attempt with the protection
turned off (``control`` options for `minirun run`, or on the host itself), which
must succeed, so a probe that could never succeed does not pass for a
protection. ``host_check``, when given, is a harmless run of the helper on the
host: if the host itself cannot do it (this host's kernel or sandbox forbids
it), the control is skipped with that reason instead of failing.

Fields of ``argv``/``host_check`` in braces come from the test's context:
``probe`` (the helper's path inside the container), ``marker`` (a string in a
host process's command line), ``host_file`` (absolute path of a file that
exists only on the host), ``host_file_rel`` (the same, relative to the root
device's root), ``root_major``/``root_minor``/``root_fstype`` (the host's root
device), ``port`` (a TCP listener on the host's 127.0.0.1), ``host_probe``
(the helper's path on the host).
"""

from __future__ import annotations

from dataclasses import dataclass

ESCAPED, BLOCKED, NOT_APPLICABLE = 0, 1, 2
PROBE_DIR = "/.minirun-probe"  # where the tests mount the helper inside the container


@dataclass(frozen=True)
class Probe:
    name: str
    escape: str                      # what a success would mean
    argv: tuple[str, ...]            # inside the container
    control: tuple[str, ...] = ("--privileged",)  # `minirun run` options that turn the protection off
    options: tuple[str, ...] = ()    # options of the protected run as well (e.g. --read-only)
    control_on_host: str = ""        # "host": run argv on the host; "chroot": in a chroot on the host
    host_check: tuple[str, ...] = ()  # harmless host run that must succeed for the control to mean anything

    def render(self, argv: tuple[str, ...], **context) -> list[str]:
        return [a.format(**context) for a in argv]


P = "{probe}"

PROBES = (
    Probe("host-processes", "see and signal a host process", (P, "find-proc", "{marker}"), control=(),
          control_on_host="host"),
    Probe("host-block-device", "mount the host's root block device and read the host's files",
          (P, "mount-device", "{root_major}", "{root_minor}", "{root_fstype}", "{host_file_rel}"),
          host_check=("{host_probe}", "open-device", "b", "{root_major}", "{root_minor}")),
    Probe("proc-sys-write", "write a kernel setting through /proc/sys",
          (P, "rewrite", "/proc/sys/vm/overcommit_ratio")),
    Probe("sysrq-trigger", "write /proc/sysrq-trigger ('h' only prints the help)",
          (P, "write", "/proc/sysrq-trigger", "h"), host_check=("test", "-e", "/proc/sysrq-trigger")),
    Probe("module-load", "load a kernel module (init_module)", (P, "init-module")),
    Probe("module-remove", "remove a kernel module (delete_module)", (P, "delete-module")),
    Probe("reboot", "reboot the machine (reboot(2), stopped before it acts by a wrong magic)", (P, "reboot")),
    Probe("hostname", "change the hostname (the host's stays unchanged in any case: UTS namespace)",
          (P, "sethostname")),
    Probe("host-network", "reach a listener in the host's network namespace",
          (P, "connect", "127.0.0.1", "{port}"), control=("--network", "host")),
    Probe("dev-mem", "read physical memory through /dev/mem (mknod c 1 1)", (P, "open-device", "c", "1", "1"),
          host_check=("{host_probe}", "open-device", "c", "1", "1")),
    Probe("kcore", "read kernel memory through /proc/kcore", (P, "read", "/proc/kcore"),
          host_check=("test", "-e", "/proc/kcore")),
    Probe("ptrace-outside", "ptrace a process outside COMMAND's privilege (the container's init)",
          (P, "ptrace", "1")),
    Probe("chroot-escape", "walk out of the root with the chroot trick and see a host file",
          (P, "chroot-escape", "{host_file}"), control=(), control_on_host="chroot"),
    Probe("remount-root-rw", "remount / read-write under --read-only", (P, "remount-root-rw"),
          options=("--read-only",), control=("--read-only", "--privileged")),
    Probe("mknod-block-device", "mknod the host's root block device and open it",
          (P, "open-device", "b", "{root_major}", "{root_minor}"),
          host_check=("{host_probe}", "open-device", "b", "{root_major}", "{root_minor}")),
    Probe("raw-socket", "open a raw socket after --cap-drop NET_RAW", (P, "raw-socket"),
          options=("--cap-drop", "NET_RAW"), control=()),
    Probe("raise-rlimit", "raise a hard resource limit", (P, "raise-rlimit"),
          host_check=("{host_probe}", "raise-rlimit")),
    Probe("kernel-keyring", "use the kernel keyring, which is not namespaced (add_key)", (P, "keyctl")),
    Probe("new-user-namespace", "create a user namespace (a door to more kernel surface)", (P, "userns")),
)

BY_NAME = {p.name: p for p in PROBES}


def root_device() -> tuple[int, int, str]:
    """The host root's block device (major, minor, fstype), or (0, 0, "") if / is not a plain mount."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            if fields[4] == "/" and fields[3] == "/":
                major, minor = fields[2].split(":")
                return int(major), int(minor), fields[fields.index("-") + 1]
    return 0, 0, ""

