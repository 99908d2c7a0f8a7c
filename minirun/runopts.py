"""The options of `minirun run` and `minirun vm run`, declared once.

The click commands (cli.py, vm/cli.py) are built from these tables, and the same
tables drive ``parse_fast``: a click-free parser for the plain cases (``--opt value``,
``--opt=value``, flags), because importing click costs more than a whole
container start (~20 ms against ~5 ms measured here), and a VM run waits for it
before QEMU can start. Anything it does not recognise (``--help``, an unknown or
malformed option, a value outside ``choices``) is left to click, which produces the
help text or the error message.
"""

from __future__ import annotations


class Option:
    def __init__(self, *names: str, dest: str, help: str, metavar: str | None = None, flag: bool = False,
                 multiple: bool = False, type=str, default=None, choices: tuple[str, ...] = (),
                 show_default: bool = False):
        self.names, self.dest, self.help, self.metavar = names, dest, help, metavar
        self.flag, self.multiple, self.type, self.default = flag, multiple, type, default
        self.choices, self.show_default = choices, show_default


RUN_OPTIONS = (
    Option("--name", dest="name", help="Container name (default: a random id); unique among running containers."),
    Option("-h", "--hostname", dest="hostname", help="Hostname inside the container (default: the container id)."),
    Option("-e", "--env", dest="env", multiple=True, metavar="KEY=VAL", help="Set an environment variable (repeatable)."),
    Option("-w", "--workdir", dest="workdir", default="/", help="Working directory inside the container (default /)."),
    Option("-u", "--user", dest="user", metavar="UID[:GID]", help="Run COMMAND as this numeric user (and group)."),
    Option("-m", "--memory", dest="memory", metavar="SIZE",
           help="Memory limit, e.g. 64m, 1g. Swap stays off unless --memory-swap says otherwise."),
    Option("--memory-swap", dest="memory_swap", metavar="SIZE",
           help="Memory plus swap limit (docker's meaning), or -1 for unlimited swap."),
    Option("--cpus", dest="cpus", metavar="FLOAT", help="CPU limit in CPUs, e.g. 0.5 (CFS quota per 100 ms period)."),
    Option("--cpuset-cpus", dest="cpuset_cpus", metavar="LIST", help="CPUs the container may use, e.g. 0 or 0-1."),
    Option("--pids-limit", dest="pids_limit", type=int, metavar="N", help="Maximum number of processes and threads."),
    Option("-v", "--volume", dest="volume", multiple=True, metavar="HOSTDIR:CTRDIR[:ro]",
           help="Bind mount a host directory (repeatable); :ro makes it read-only."),
    Option("--tmpfs", dest="tmpfs", multiple=True, metavar="PATH[:size=64m]", help="Mount a tmpfs (repeatable)."),
    Option("--device", dest="device", multiple=True, metavar="HOST[:CTR][:rwm]",
           help="Give the container a host device node (at CTR, default the same path) and the right to use it "
                "(r, w, m; default rwm). Repeatable."),
    Option("--read-only", dest="read_only", flag=True, help="Mount the container's root read-only."),
    Option("--no-overlay", dest="no_overlay", flag=True,
           help="Run on ROOTFS directly instead of a copy-on-write overlay (writes then change ROOTFS)."),
    Option("--network", dest="network", default="none", metavar="none|bridge|host",
           help="none: loopback only (default); bridge: an address on the minirun0 bridge; host: the host's network."),
    Option("-p", "--publish", dest="publish", multiple=True, metavar="[HOSTIP:]HOSTPORT:CTRPORT[/tcp]",
           help="Publish a container port on the host's 127.0.0.1, or on HOSTIP alone (e.g. [::1]:8080:80); "
                "needs --network bridge; repeatable."),
    Option("--sysctl", dest="sysctl", multiple=True, metavar="KEY=VALUE",
           help="Set a kernel parameter of the container's own namespaces, e.g. net.ipv4.ip_forward=1 "
                "(ipc: kernel.msg*, kernel.sem, kernel.shm*, fs.mqueue.*; net.* unless --network host). Repeatable."),
    Option("--cap-add", dest="cap_add", multiple=True, metavar="CAP",
           help="Give COMMAND a capability beyond Docker's default 14, e.g. NET_ADMIN, or ALL (repeatable)."),
    Option("--cap-drop", dest="cap_drop", multiple=True, metavar="CAP",
           help="Take a capability away, e.g. NET_RAW, or ALL (repeatable)."),
    Option("--security-opt", dest="security_opt", multiple=True, metavar="OPT",
           help="no-new-privileges=false, seccomp=unconfined, or seccomp=PROFILE.json (Docker, podman or OCI format)."),
    Option("--privileged", dest="privileged", flag=True,
           help="Debugging only: all capabilities, no seccomp, no masked or read-only /proc paths, no_new_privs off, "
                "every device allowed."),
    Option("--userns", dest="userns", flag=True,
           help="Map the container's root to an unprivileged host range (/etc/subuid and /etc/subgid: user "
                "minirun, else root)."),
    Option("--userns-map", dest="userns_map", multiple=True, metavar="CONTAINER:HOST:SIZE",
           help="Explicit uid and gid mapping for --userns, e.g. 0:100000:65536 (repeatable)."),
    Option("-i", "--interactive", dest="interactive", flag=True,
           help="Keep STDIN open: COMMAND reads minirun's stdin (a foreground run always passes it on)."),
    Option("-t", "--tty", dest="tty", flag=True,
           help="Give COMMAND a pseudo-terminal of the container's own devpts (with -i: an interactive shell)."),
    Option("-d", "--detach", dest="detach", flag=True,
           help="Run in the background under a supervisor; print the container id (see ps, logs, stop, rm)."),
    Option("--log-opt", dest="log_opt", multiple=True, metavar="KEY=VALUE",
           help="Log rotation of a detached container, as docker's json-file driver: max-size=10m (k, m, g; -1 "
                "for no bound), max-file=3. Those two are the defaults: the log takes at most 30 MiB of disk."),
    Option("--rm", dest="rm", flag=True,
           help="Remove the container when it exits (foreground containers always are)."),
    Option("--json", dest="as_json", flag=True, help="After COMMAND exits, print the result as JSON on stdout."),
    Option("--debug", dest="debug", flag=True, help="Show tracebacks on errors."),
)

VM_RUN_OPTIONS = (
    Option("--cpus", dest="cpus", default="1", show_default=True, metavar="N", help="Virtual CPUs (whole number)."),
    Option("-m", "--memory", dest="memory", default="256m", show_default=True, metavar="SIZE",
           help="Guest RAM, reserved up front (a container's --memory is a cap instead)."),
    Option("--kernel", dest="kernel_path", metavar="PATH",
           help="Guest kernel image (default: the cached Debian kernel, fetched on first use)."),
    Option("--accel", dest="accel", choices=("auto", "kvm", "tcg"), default="auto", show_default=True,
           help="auto: KVM when it can boot a standard kernel, else TCG (the choice is reported)."),
    Option("--timeout", dest="timeout", type=float, metavar="SECS",
           help="Kill the VM after SECS seconds (exit 124)."),
    Option("--boot-timeout", dest="boot_timeout", type=float, metavar="SECS",
           help="Seconds allowed until the guest init runs (default 60; exit 124 after)."),
    Option("--share-root", dest="share_root", metavar="DIR",
           help="Boot with host DIR as the guest's / over virtio-9p (read-only) instead of an initramfs of ROOTFS; "
                "ROOTFS is then ignored and may be '-'."),
    Option("--share-rw", dest="share_rw", flag=True, help="Make --share-root writable."),
    Option("--name", dest="name", help="VM name (QEMU's -name and the result's id; default vm-<pid>)."),
    Option("-e", "--env", dest="env", multiple=True, metavar="KEY=VAL", help="Set an environment variable."),
    Option("-w", "--workdir", dest="workdir", default="/", show_default=True, help="Working directory in the guest."),
    Option("-h", "--hostname", dest="hostname", default="minirun-vm", show_default=True, help="Guest hostname."),
    Option("--module", dest="modules", multiple=True, metavar="NAME",
           help="Kernel module the guest loads at boot, with its dependencies, from the guest kernel's own "
                "package (repeatable); module autoloading is off in the guest."),
    Option("--network", dest="network", default="none", show_default=True, metavar="none|bridge",
           help="none: no NIC; bridge: a virtio NIC on the containers' minirun0 bridge, with an address from "
                "the same pool (containers and VMs reach each other and the host, nothing beyond)."),
    Option("-p", "--publish", dest="publish", multiple=True, metavar="[HOSTIP:]HOSTPORT:GUESTPORT",
           help="Publish a guest port on the host's 127.0.0.1, or on HOSTIP alone (needs --network bridge; "
                "repeatable)."),
    Option("-v", "--volume", dest="volumes", multiple=True, metavar="HOSTDIR:GUESTDIR[:ro]",
           help="Share a host directory at GUESTDIR over virtio-9p (repeatable); :ro is enforced by the guest "
                "(read-only mount) and by QEMU. Boots the generic kernel: the cloud kernel has no 9p."),
    Option("--machine", dest="machine", choices=("microvm", "pc"), default="microvm", show_default=True,
           help="QEMU machine type: microvm (virtio over MMIO, no PCI; boots in ~2/3 of pc's time) or pc."),
    Option("--json", dest="as_json", flag=True, help="After COMMAND exits, print the result as JSON on stdout."),
    Option("--debug", dest="debug", flag=True,
           help="Show the kernel's boot messages, the QEMU command and tracebacks."),
)


def defaults(options=RUN_OPTIONS) -> dict:
    return {opt.dest: ([] if opt.multiple else False if opt.flag else opt.default) for opt in options}


def _bundled_flags(arg: str, by_name: dict) -> list[Option] | None:
    """``-it`` as ``-i -t``, when every letter is a flag (anything else is click's)."""
    if len(arg) < 3 or arg[1] == "-":
        return None
    opts = [by_name.get("-" + letter) for letter in arg[1:]]
    return opts if all(opt is not None and opt.flag for opt in opts) else None


def parse_fast(args: list[str], options=RUN_OPTIONS) -> dict | None:
    """Parse `run` (or, given VM_RUN_OPTIONS, `vm run`) arguments like click would, or None to let click
    deal with them."""
    by_name = {name: opt for opt in options for name in opt.names}
    values = defaults(options)
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        bundle = _bundled_flags(name, by_name)
        if bundle:  # -it, -dit: short flags written together
            for flag in bundle:
                values[flag.dest] = True
            i += 1
            continue
        opt = by_name.get(name)
        if opt is None:
            return None
        if opt.flag:
            if eq:
                return None
            values[opt.dest] = True
            i += 1
            continue
        if eq:
            raw = inline
            i += 1
        elif i + 1 < len(args):
            raw = args[i + 1]
            i += 2
        else:
            return None
        try:
            value = opt.type(raw)
        except ValueError:
            return None
        if opt.choices and value not in opt.choices:
            return None
        if opt.multiple:
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
    positional = args[i:]
    if len(positional) < 2:
        return None
    values["rootfs"], values["command"] = positional[0], positional[1:]
    return values
