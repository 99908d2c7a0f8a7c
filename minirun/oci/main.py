"""The `minirun-oci` executable: runc's command line (runc 1.1's man pages).

    minirun-oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] VERB [OPTIONS] ID ...

Parsed by hand, not with click or argparse: an engine runs the runtime four or
five times per container, and `state` and `start` import nothing but os and this
package's small modules (JSON through minirun.jsonlite: the json package imports re
and enum, ~7 ms a start). Options take ``--name value`` or ``--name=value``,
with one dash or two (runc's flag library accepts both).
"""

from __future__ import annotations

import os
import sys

from ..errors import UsageError, exit_code, message, set_front_end
from . import log, store

VERSION = "0.1.0"

# runc update's flags (update.go) -> (linux.resources section, field, kind): what `update`
# applies when no --resources is given. Sizes take docker's units (64m); -1 is unlimited.
UPDATE_FLAGS = {
    "blkio-weight": ("blockIO", "weight", "int"), "cpu-period": ("cpu", "period", "int"),
    "cpu-quota": ("cpu", "quota", "int"), "cpu-share": ("cpu", "shares", "int"),
    "cpu-rt-period": ("cpu", "realtimePeriod", "int"), "cpu-rt-runtime": ("cpu", "realtimeRuntime", "int"),
    "cpuset-cpus": ("cpu", "cpus", "str"), "cpuset-mems": ("cpu", "mems", "str"),
    "memory": ("memory", "limit", "size"), "memory-reservation": ("memory", "reservation", "size"),
    "memory-swap": ("memory", "swap", "size"), "kernel-memory": ("memory", "kernel", "size"),
    "kernel-memory-tcp": ("memory", "kernelTCP", "size"), "pids-limit": ("pids", "limit", "int"),
}

# verb -> {option: (takes a value, repeatable)}, short aliases in ALIASES
_CREATE = {"bundle": (True, False), "pid-file": (True, False), "console-socket": (True, False),
           "no-pivot": (False, False), "no-new-keyring": (False, False), "preserve-fds": (True, False)}
VERBS = {
    "create": _CREATE,
    "run": dict(_CREATE, **{"detach": (False, False), "keep": (False, False), "no-subreaper": (False, False)}),
    "start": {}, "state": {}, "pause": {}, "resume": {},
    "kill": {"all": (False, False)},
    "delete": {"force": (False, False)},
    "exec": {"process": (True, False), "detach": (False, False), "pid-file": (True, False), "cwd": (True, False),
             "env": (True, True), "user": (True, False), "tty": (False, False), "console-socket": (True, False),
             "preserve-fds": (True, False), "additional-gids": (True, True), "cap": (True, True),
             "no-new-privs": (False, False), "process-label": (True, False), "apparmor": (True, False),
             "ignore-paused": (False, False)},
    "ps": {"format": (True, False)},
    "list": {"format": (True, False), "quiet": (False, False)},
    "update": {"resources": (True, False), **{flag: (True, False) for flag in UPDATE_FLAGS}},
    "features": {},
    "spec": {"bundle": (True, False), "rootless": (False, False)},
}
ALIASES = {"b": "bundle", "d": "detach", "f": "force", "a": "all", "p": "process", "e": "env", "u": "user",
           "t": "tty", "q": "quiet", "r": "resources", "g": "additional-gids", "c": "cap"}
GLOBAL = {"root": (True, False), "log": (True, False), "log-format": (True, False), "debug": (False, False),
          "systemd-cgroup": (False, False), "rootless": (True, False), "criu": (True, False),
          "version": (False, False), "v": (False, False), "help": (False, False), "h": (False, False)}

USAGE = """usage: minirun-oci [--root DIR] [--log FILE] [--log-format text|json] [--debug] COMMAND [OPTIONS] ID

runc-compatible OCI runtime over minirun. Commands:
  create [--bundle DIR] [--pid-file F] [--preserve-fds N] ID   set up, process waits before execve
  start ID | state ID | kill ID [SIGNAL] [--all] | delete [--force] ID
  run [--bundle DIR] [--pid-file F] [--detach] ID               create + start (+ wait, delete)
  exec [--process FILE | ID ARGS...] [--detach] [--pid-file F] [--cwd D] [--env K=V] [--user U[:G]] ID
  ps [--format table|json] ID | list [--format table|json] [--quiet] | pause ID | resume ID
  update [--resources FILE|- | --cpuset-cpus L --memory M ...] ID | features | spec [--bundle DIR]"""


def parse(argv: list[str], table: dict, stop_at_positional: bool = False) -> tuple[dict, list[str]]:
    opts: dict = {}
    rest: list[str] = []
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if arg == "--":
            rest += argv[i:]
            break
        if not arg.startswith("-") or arg == "-":
            rest.append(arg)
            if stop_at_positional:
                rest += argv[i:]
                break
            continue
        name, eq, value = arg.lstrip("-").partition("=")
        name = ALIASES.get(name, name) if name not in table else name
        if name not in table:
            raise UsageError(f"unknown option {arg}")
        takes_value, repeatable = table[name]
        if takes_value and not eq:
            if i >= len(argv):
                raise UsageError(f"option --{name} needs a value")
            value = argv[i]
            i += 1
        if not takes_value:
            value = value.lower() not in ("false", "0") if eq else True
        if repeatable:
            opts.setdefault(name, []).append(value)
        else:
            opts[name] = value
    return opts, rest


def _one_id(rest: list[str], verb: str) -> str:
    if len(rest) != 1:
        raise UsageError(f"{verb}: expects exactly one container ID, got {len(rest)}")
    return rest[0]


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    debug = False
    verb = ""
    set_front_end(log.PROGRAM, log.warning)
    try:
        verb_at = next((i for i, a in enumerate(argv) if a in VERBS and not _is_value(argv, i)), None)
        gopts, stray = parse(argv[:verb_at] if verb_at is not None else argv, GLOBAL)
        debug = bool(gopts.get("debug"))
        fmt = gopts.get("log-format", "text")
        if fmt not in ("text", "json"):
            raise UsageError(f"--log-format {fmt!r}: use text or json")
        log.configure(gopts.get("log"), fmt, debug)
        if gopts.get("version") or gopts.get("v"):
            print(f"minirun-oci version {VERSION}\nspec: {store.OCI_VERSION}")
            return 0
        if gopts.get("help") or gopts.get("h") or verb_at is None:
            if stray:
                raise UsageError(f"unknown command {stray[0]!r}")
            print(USAGE)
            return 0 if gopts.get("help") or gopts.get("h") else exit_code(UsageError(), log.PROGRAM)
        if stray:
            raise UsageError(f"unexpected argument {stray[0]!r} before the command")
        if gopts.get("systemd-cgroup"):
            raise UsageError("--systemd-cgroup: minirun-oci drives cgroupfs only (use --cgroup-manager cgroupfs "
                             "with podman, SystemdCgroup = false with containerd)")
        verb = argv[verb_at]
        root = store.checked_root(gopts.get("root") or store.DEFAULT_ROOT)
        log.debug(f"{verb} {' '.join(argv[verb_at + 1:])}")
        return _dispatch(verb, argv[verb_at + 1:], root)
    except KeyboardInterrupt as err:
        return exit_code(err, log.PROGRAM)
    except Exception as err:  # noqa: BLE001 - every failure becomes one line, --debug shows the rest
        if debug:
            import traceback

            traceback.print_exc()
        log.error(message(err))
        return exit_code(err, log.PROGRAM, verb)


def _import_for_create() -> None:
    """What a create imports (~20 modules), from the start-up cache: without the import system's
    ~2 ms. Only for create and run: the Python `start`, `kill` and `delete` stay light."""
    from ..importcache import cached

    with cached("oci-create", __name__):
        from .. import cgroups, container, ociverbs, seccomp, security, syscalls, sysctl  # noqa: F401
        from . import bundle, runtime  # noqa: F401


def _is_value(argv: list[str], i: int) -> bool:
    """argv[i] looks like a verb but is the value of a global option (``--root start``)."""
    if i == 0:
        return False
    prev = argv[i - 1].lstrip("-")
    return argv[i - 1].startswith("-") and "=" not in prev and GLOBAL.get(prev, (False,))[0]


def _dispatch(verb: str, args: list[str], root: str) -> int:
    table = VERBS[verb]
    opts, rest = parse(args, table, stop_at_positional=verb == "exec")
    if verb == "state":
        from .. import ociverbs  # csrc/ociverbs.c: what the native front prints

        sys.stdout.write(ociverbs.state_json(root, _one_id(rest, verb), 2) + "\n")
        return 0
    if verb in ("create", "run"):
        _import_for_create()
    from . import runtime

    if verb == "start":
        runtime.start(root, _one_id(rest, verb))
    elif verb in ("create", "run"):
        container_id = _one_id(rest, verb)
        bundle = opts.get("bundle") or os.getcwd()
        kw = dict(pid_file=opts.get("pid-file"), console_socket=opts.get("console-socket"),
                  preserve_fds=_int(opts.get("preserve-fds", 0), "--preserve-fds"))
        if verb == "create":
            runtime.create(root, container_id, bundle, **kw)
        else:
            return runtime.run(root, container_id, bundle, detach=bool(opts.get("detach")), **kw)
    elif verb == "kill":
        if not rest or len(rest) > 2:
            raise UsageError("kill: expects ID [SIGNAL]")
        runtime.kill(root, rest[0], runtime.parse_signal(rest[1] if len(rest) > 1 else "TERM"),
                     bool(opts.get("all")))
    elif verb == "delete":
        runtime.delete(root, _one_id(rest, verb), bool(opts.get("force")))
    elif verb in ("pause", "resume"):
        getattr(runtime, verb)(root, _one_id(rest, verb))
    elif verb == "exec":
        return _exec(root, opts, rest)
    elif verb == "ps":
        return _ps(root, opts, rest)
    elif verb == "list":
        _list(root, opts)
    elif verb == "update":
        flags = {flag: opts[flag] for flag in UPDATE_FLAGS if flag in opts}
        resources = _read_json(opts.get("resources"), "--resources") if opts.get("resources") or not flags \
            else _update_resources(flags)
        runtime.update(root, _one_id(rest, verb), resources)
    elif verb == "features":
        import json

        from .defaults import features

        print(json.dumps(features(), indent=2))
    elif verb == "spec":
        from .defaults import write_spec

        write_spec(opts.get("bundle") or os.getcwd())
    return 0


def _int(text, what: str) -> int:
    try:
        return int(text)
    except (TypeError, ValueError):
        raise UsageError(f"{what} {text!r}: not a number") from None


def _update_resources(flags: dict[str, str]) -> dict:
    """runc update's flags as the linux.resources object --resources would give."""
    from ..errors import SpecError
    from ..spec import parse_size

    resources: dict = {}
    for flag, text in flags.items():
        section, field, kind = UPDATE_FLAGS[flag]
        if kind == "str":
            value = text
        elif kind == "size" and text.strip() != "-1":
            try:
                value = parse_size(text, f"--{flag}")
            except SpecError as err:
                raise UsageError(str(err)) from None
        else:
            value = _int(text, f"--{flag}")
        resources.setdefault(section, {})[field] = value
    return resources


def _read_json(source: str | None, what: str):
    from .. import jsonlite as json

    if not source:
        raise UsageError(f"{what} FILE (or - for stdin) is required")
    try:
        if source == "-":
            return json.load(sys.stdin)
        with open(source) as f:
            return json.load(f)
    except ValueError as err:
        raise UsageError(f"{what} {source}: invalid JSON: {err}") from None


def _exec(root: str, opts: dict, rest: list[str]) -> int:
    from . import runtime

    if not rest:
        raise UsageError("exec: expects ID [COMMAND ARGS...] or --process FILE")
    container_id, args = rest[0], rest[1:]
    if opts.get("process"):
        process = _read_json(opts["process"], "--process")
    else:
        if not args:
            raise UsageError("exec: no command given (ARGS or --process FILE)")
        st = store.read(root, container_id)
        process = {"args": args, "env": list(st["exec"]["env"]), "cwd": st["exec"]["cwd"]}
        if opts.get("cap"):
            # runc's exec.go: each --cap joins the container's bounding, effective, permitted
            # and ambient sets (not inheritable, since CVE-2022-29162)
            caps = {k: list(v or ()) for k, v in (st["exec"].get("capabilities") or {}).items()}
            for name in opts["cap"]:
                for kind in ("bounding", "effective", "permitted", "ambient"):
                    caps.setdefault(kind, []).append(name)
            process["capabilities"] = caps
    if opts.get("tty"):
        process["terminal"] = True
    if opts.get("cwd"):
        process["cwd"] = opts["cwd"]
    if opts.get("env"):
        env = dict(e.partition("=")[::2] for e in process.get("env") or [])
        env.update(e.partition("=")[::2] for e in opts["env"])
        process["env"] = [f"{k}={v}" for k, v in env.items()]
    if opts.get("user"):
        uid, _, gid = opts["user"].partition(":")
        process["user"] = dict(process.get("user") or {}, uid=_int(uid, "--user"), gid=_int(gid or 0, "--user"))
    if opts.get("additional-gids"):
        user = process.setdefault("user", {})
        user["additionalGids"] = [_int(g, "--additional-gids") for g in opts["additional-gids"]]
    if opts.get("no-new-privs"):
        process["noNewPrivileges"] = True
    return runtime.exec_process(root, container_id, process, detach=bool(opts.get("detach")),
                                pid_file=opts.get("pid-file"),
                                preserve_fds=_int(opts.get("preserve-fds", 0), "--preserve-fds"),
                                console_socket=opts.get("console-socket"))


def _ps(root: str, opts: dict, rest: list[str]) -> int:
    from .. import ociverbs  # csrc/ociverbs.c: what the native front prints

    if not rest:
        raise UsageError("ps: expects ID")
    sys.stdout.write(ociverbs.ps_text(root, rest[0], opts.get("format", "table"), rest[1:]))
    return 0


def _list(root: str, opts: dict) -> None:
    from .. import ociverbs

    sys.stdout.write(ociverbs.list_text(root, bool(opts.get("quiet")), opts.get("format")))


def cli() -> None:
    """The executable (csrc/front.c, by way of minirun/front.py): main(), then a quick exit."""
    from ..quickexit import exit_now

    exit_now(main())


if __name__ == "__main__":
    cli()
