"""The options of `minirun run`, declared once.

The click command in cli.py is built from this table, and the same table drives
``parse_fast``: a click-free parser for the plain cases (``--opt value``,
``--opt=value``, flags), because importing click costs more than a whole
container start (~20 ms against ~5 ms measured here). Anything it does not
recognise (``--help``, an unknown or malformed option) is left to click, which
produces the help text or the error message.
"""

from __future__ import annotations


class Option:
    def __init__(self, *names: str, dest: str, help: str, metavar: str | None = None, flag: bool = False,
                 multiple: bool = False, type=str, default=None):
        self.names, self.dest, self.help, self.metavar = names, dest, help, metavar
        self.flag, self.multiple, self.type, self.default = flag, multiple, type, default


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

_BY_NAME = {name: opt for opt in RUN_OPTIONS for name in opt.names}


def defaults() -> dict:
    return {opt.dest: ([] if opt.multiple else False if opt.flag else opt.default) for opt in RUN_OPTIONS}


def _bundled_flags(arg: str) -> list[Option] | None:
    """``-it`` as ``-i -t``, when every letter is a flag (anything else is click's)."""
    if len(arg) < 3 or arg[1] == "-":
        return None
    opts = [_BY_NAME.get("-" + letter) for letter in arg[1:]]
    return opts if all(opt is not None and opt.flag for opt in opts) else None


def parse_fast(args: list[str]) -> dict | None:
    """Parse `run` arguments like click would, or None to let click deal with them."""
    values = defaults()
    i = 0
    while i < len(args):
        arg = args[i]
        if not arg.startswith("-") or arg == "-":
            break
        name, eq, inline = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        bundle = _bundled_flags(name)
        if bundle:  # -it, -dit: short flags written together
            for flag in bundle:
                values[flag.dest] = True
            i += 1
            continue
        opt = _BY_NAME.get(name)
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
        if opt.multiple:
            values[opt.dest].append(value)
        else:
            values[opt.dest] = value
    positional = args[i:]
    if len(positional) < 2:
        return None
    values["rootfs"], values["command"] = positional[0], positional[1:]
    return values
