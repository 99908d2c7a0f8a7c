"""The minirun command line: a thin layer over the Python API.

Every failure ends as one line on stderr (``minirun: ...``) and docker's exit
codes: 125 minirun failed, 126 COMMAND cannot be executed, 127 COMMAND not found,
otherwise COMMAND's own status (128+N for signal N). ``--debug`` adds tracebacks.
"""

from __future__ import annotations

import json
import os
import signal
import sys
import traceback

import click

from .errors import MiniRunError

DEFAULT_ROOTFS_HINT = "/var/lib/minirun/rootfs/busybox"


class _Terminated(BaseException):
    """SIGTERM/SIGHUP outside a container's run: unwind so cleanup code runs."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


class LazyGroup(click.Group):
    """Subcommands imported only when used: `minirun run` never loads the VM code."""

    lazy = {"vm": ("minirun.vm.cli", "vm")}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.lazy))

    def get_command(self, ctx, name):
        if name in self.lazy:
            import importlib

            module, attr = self.lazy[name]
            try:
                return getattr(importlib.import_module(module), attr)
            except ImportError as err:
                raise click.ClickException(f"'{name}' is not available: {err}") from err
        return super().get_command(ctx, name)


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["--help"]})
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.version_option(package_name="minirun")
def cli(debug):
    """minirun: run a command in a container (namespaces, pivot_root, cgroups), or in a VM.

    \b
    Examples:
      minirun rootfs build                      # busybox root filesystem
      minirun run /var/lib/minirun/rootfs/busybox /bin/sh -c 'hostname; ps'
      minirun run --memory 64m --cpus 0.5 --pids-limit 64 ROOTFS /bin/sh
      minirun vm run ROOTFS /bin/uname -r       # same rootfs, its own kernel
      minirun gc                                # remove what a killed minirun left
    """


@cli.command(context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@click.option("--name", help="Container name (default: a random id). Must be unique among running containers.")
@click.option("-h", "--hostname", help="Hostname inside the container (default: the container id).")
@click.option("-e", "--env", "env", multiple=True, metavar="KEY=VAL", help="Set an environment variable (repeatable).")
@click.option("-w", "--workdir", default="/", show_default=True, help="Working directory inside the container.")
@click.option("-u", "--user", metavar="UID[:GID]", help="Run COMMAND as this numeric user (and group).")
@click.option("-m", "--memory", metavar="SIZE", help="Memory limit, e.g. 64m, 1g. Swap stays off unless --memory-swap.")
@click.option("--memory-swap", metavar="SIZE", help="Memory plus swap limit (like docker), or -1 for unlimited swap.")
@click.option("--cpus", metavar="FLOAT", help="CPU limit in CPUs, e.g. 0.5 (a CFS quota per 100 ms period).")
@click.option("--cpuset-cpus", metavar="LIST", help="CPUs the container may use, e.g. 0 or 0-1.")
@click.option("--pids-limit", type=int, metavar="N", help="Maximum number of processes and threads.")
@click.option("--rm", is_flag=True, help="Remove the container when it exits (always the case in the foreground).")
@click.option("--json", "as_json", is_flag=True, help="After COMMAND exits, print the result as JSON on stdout.")
@click.option("--debug", is_flag=True, help="Show tracebacks on errors.")
@click.argument("rootfs")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(name, hostname, env, workdir, user, memory, memory_swap, cpus, cpuset_cpus, pids_limit, rm, as_json, debug,
        rootfs, command):
    """Run COMMAND in a new container whose root is the directory ROOTFS.

    The container gets its own PID, mount, UTS, IPC, network and cgroup
    namespaces, a fresh /proc, a read-only /sys, a minimal /dev, loopback only,
    and the cgroup limits asked for. minirun exits with COMMAND's status.

    \b
    Examples:
      minirun run ROOTFS /bin/sh -c 'echo $$ $(hostname)'  # 2 (PID 1 is minirun-init) and the id
      minirun run --memory 64m ROOTFS tail /dev/zero      # exits 137, reports the OOM kill
      minirun run --cpus 0.5 --pids-limit 32 -e A=1 -w /tmp --hostname box ROOTFS /bin/sh
    """
    from .spec import ContainerSpec, Limits, Process, parse_cpus, parse_cpuset, parse_env, parse_pids_limit, \
        parse_size, parse_user
    from . import container

    host_cpus = os.cpu_count() or 1
    uid, gid = parse_user(user) if user else (0, 0)
    swap = None
    if memory_swap is not None:
        swap = -1 if memory_swap.strip() == "-1" else parse_size(memory_swap, "--memory-swap")
    limits = Limits.from_cpus(
        parse_cpus(cpus, host_cpus) if cpus is not None else None,
        memory=parse_size(memory) if memory is not None else None,
        memory_swap=swap,
        pids=parse_pids_limit(pids_limit) if pids_limit is not None else None,
        cpuset_cpus=parse_cpuset(cpuset_cpus, host_cpus) if cpuset_cpus is not None else None,
    )
    spec = ContainerSpec(rootfs=rootfs, id=name or "", hostname=hostname or "",
                         process=Process(args=list(command), env=parse_env(env), cwd=workdir, uid=uid, gid=gid),
                         limits=limits)
    result = container.run(spec)
    if result.oom_killed:
        limit = f" (limit {_mib(limits.memory)})" if limits.memory else ""
        who = f"container {result.id} was" if result.exit_code == 137 else f"a process of container {result.id} was"
        click.echo(f"minirun: {who} killed: out of memory{limit}", err=True)
    if as_json:
        click.echo(json.dumps(result.to_dict()))
    return result.exit_code


def _mib(n: int) -> str:
    return f"{n / (1 << 20):g} MiB"


@cli.command()
def gc():
    """Remove cgroups and state left behind by a minirun that was killed."""
    from . import state

    for container_id in state.gc():
        click.echo(f"removed {container_id}")


@cli.group()
def rootfs():
    """Build root filesystems for containers (and VMs)."""


@rootfs.command("build")
@click.argument("directory", required=False)
def rootfs_build(directory):
    """Build the default busybox root filesystem into DIRECTORY (idempotent).

    Default DIRECTORY: /var/lib/minirun/rootfs/busybox
    """
    from .rootfs import DEFAULT_ROOTFS
    from .rootfs.builder import build

    path = build(directory or DEFAULT_ROOTFS, progress=lambda msg: click.echo(f"  {msg}", err=True))
    click.echo(path)


def _raise_terminated(signum, _frame):
    raise _Terminated(signum)


def main(argv: list[str] | None = None) -> None:
    args = sys.argv[1:] if argv is None else argv
    debug = "--debug" in args
    # Until a container is running (it installs its own forwarding), a SIGTERM
    # unwinds through the cleanup code instead of killing us mid-setup.
    signal.signal(signal.SIGTERM, _raise_terminated)
    signal.signal(signal.SIGHUP, _raise_terminated)
    try:
        code = cli.main(args=args, prog_name="minirun", standalone_mode=False)
    except click.exceptions.Exit as exc:
        code = exc.exit_code
    except click.exceptions.Abort:
        code = 130
    except click.ClickException as exc:
        _fail(f"{exc.format_message()} (see 'minirun --help')", debug)
        code = 125
    except MiniRunError as exc:
        _fail(str(exc), debug)
        code = exc.exit_code
    except KeyboardInterrupt:
        code = 130
    except _Terminated as exc:
        code = 128 + exc.signum
    except Exception as exc:  # a bug in minirun: still one line, and --debug for the rest
        _fail(f"internal error: {exc!r} (run with --debug for the traceback)", debug)
        code = 125
    sys.exit(code if isinstance(code, int) else 0)


def _fail(message: str, debug: bool) -> None:
    if debug:
        traceback.print_exc()
    print(f"minirun: {message}", file=sys.stderr)
