"""The default policies a container gets, as plain data: capabilities, masked and
read-only paths (the default seccomp profile is seccomp_default.py's).

Kept apart from security.py, which applies them, so that the spec (pure data,
minirun/spec.py) can name its defaults without importing how they are enforced.
"""

# Docker's default set (moby oci/caps/defaults.go).
DEFAULT_CAPS = ("CAP_CHOWN", "CAP_DAC_OVERRIDE", "CAP_FSETID", "CAP_FOWNER", "CAP_MKNOD", "CAP_NET_RAW",
                "CAP_SETGID", "CAP_SETUID", "CAP_SETFCAP", "CAP_SETPCAP", "CAP_NET_BIND_SERVICE",
                "CAP_SYS_CHROOT", "CAP_KILL", "CAP_AUDIT_WRITE")
DEFAULT_CAP_MASK = 0xA80425FB  # == cap_mask(DEFAULT_CAPS), asserted in the unit tests

# runc / Docker: hidden behind /dev/null (files) or an empty read-only tmpfs (directories).
DEFAULT_MASKED_PATHS = (
    "/proc/acpi", "/proc/asound", "/proc/interrupts", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
# ... and bound onto themselves read-only.
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")
