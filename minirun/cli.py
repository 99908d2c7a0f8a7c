"""The minirun command line (click): a thin layer over the Python API.

Exit codes and error lines are handled in entry.py, which also runs a plain
`minirun run` without importing click at all.
"""

from __future__ import annotations

import os

import click

from . import __version__
from .errors import SpecError, UsageError, warning_line
from .runopts import RUN_OPTIONS


class LazyGroup(click.Group):
    """Subcommands imported only when used: `minirun run` never loads the VM code."""

    lazy = {"vm": ("minirun.vm.cli", "vm"), "compare": ("minirun.compare.cli", "compare")}

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
@click.version_option(__version__, prog_name="minirun")  # not package_name: reading the metadata took ~25 ms
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


def with_options(options):
    """Decorator: the click options of a runopts table."""

    def decorate(func):
        for opt in reversed(options):
            kwargs = {"help": opt.help, "metavar": opt.metavar}
            if opt.flag:
                kwargs["is_flag"] = True
            else:
                kind = click.Choice(opt.choices) if opt.choices else opt.type
                kwargs.update(type=kind, multiple=opt.multiple, default=opt.default, show_default=opt.show_default)
            func = click.option(*opt.names, opt.dest, **kwargs)(func)
        return func

    return decorate


@cli.command(context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@with_options(RUN_OPTIONS)
@click.argument("rootfs")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(**options):
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
    from .runverb import execute_run

    return execute_run(**options)


@cli.command()
@click.option("-a", "--all", "all_", is_flag=True, help="Show exited containers too.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list.")
def ps(all_, as_json):
    """List containers (running ones; --all for exited ones too)."""
    import json
    import time

    from .lifecycle import list_containers

    rows = list_containers(all_)
    if as_json:
        click.echo(json.dumps(rows))
        return
    click.echo(f"{'ID':<20} {'STATUS':<16} {'PID':>7}  {'CREATED':<9} COMMAND")
    for st in rows:
        state = st.get("status", "?")
        if state == "exited":
            state = f"exited ({st.get('exit_code', '?')})"
        age = time.time() - st.get("created", time.time())
        created = f"{age:.0f}s ago" if age < 120 else f"{age / 60:.0f}m ago"
        click.echo(f"{st['id']:<20} {state:<16} {st.get('pid') or '':>7}  {created:<9} {' '.join(st.get('args', []))}")


@cli.command()
@click.option("-f", "--follow", is_flag=True, help="Keep printing output until the container exits.")
@click.argument("container")
def logs(follow, container):
    """Print the output of a detached CONTAINER (across its log's rotations, oldest first)."""
    import sys

    from . import logfiles, state
    from .lifecycle import log_dir

    container_id, directory = log_dir(container)
    if follow:
        logfiles.follow(directory, lambda: state.in_use(container_id), sys.stdout.buffer)
    else:
        logfiles.read(directory, sys.stdout.buffer)


@cli.command()
@click.option("-t", "--time", "timeout", type=float, default=10, show_default=True,
              help="Seconds to wait after SIGTERM before SIGKILL.")
@click.argument("containers", nargs=-1, required=True)
def stop(timeout, containers):
    """Stop running containers: SIGTERM to COMMAND, then SIGKILL after --time seconds."""
    from .lifecycle import stop as stop_one

    return _each(containers, lambda name: stop_one(name, timeout))


@cli.command()
@click.option("-s", "--signal", "sig", default="KILL", show_default=True, help="Signal name or number.")
@click.argument("containers", nargs=-1, required=True)
def kill(sig, containers):
    """Send a signal to the COMMAND of running containers."""
    import signal as signals

    from .lifecycle import kill as kill_one

    try:
        signum = int(sig) if sig.isdigit() else signals.Signals["SIG" + sig.upper().removeprefix("SIG")]
    except KeyError:
        raise SpecError(f"invalid signal {sig!r}") from None
    return _each(containers, lambda name: kill_one(name, int(signum)))


@cli.command()
@click.option("-f", "--force", is_flag=True, help="Kill a running container first.")
@click.argument("containers", nargs=-1, required=True)
def rm(force, containers):
    """Remove containers: their state, log and copy-on-write layer."""
    from .lifecycle import remove

    return _each(containers, lambda name: remove(name, force))


def _each(containers, act) -> int:
    """``act`` on every container named, as docker does: one that fails (no such container)
    is reported on its line and leaves the others to be acted on; the first failure's code
    is the exit status."""
    from .errors import MiniRunError, error_line, message

    code = 0
    for name in containers:
        try:
            click.echo(act(name))
        except MiniRunError as err:
            click.echo(error_line(message(err)), err=True)
            code = code or err.exit_code
    return code


@cli.command("exec", context_settings={"allow_interspersed_args": False})
@click.option("-e", "--env", multiple=True, metavar="KEY=VAL", help="Set an environment variable (repeatable).")
@click.option("-w", "--workdir", help="Working directory (default: the container's).")
@click.option("-u", "--user", metavar="UID[:GID]", help="Run as this numeric user (and group).")
@click.option("-i", "--interactive", is_flag=True, help="Keep STDIN open (it always is passed on).")
@click.option("-t", "--tty", is_flag=True, help="Give COMMAND a pseudo-terminal of the container's devpts.")
@click.argument("container")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def exec_(env, workdir, user, interactive, tty, container, command):
    """Run COMMAND inside a running CONTAINER: its namespaces, its cgroups, its root.

    \b
    Example:
      minirun run -d --name web ROOTFS httpd -f -p 8080
      minirun exec web ps          # sees the container's processes only
      minirun exec -it web /bin/sh # a shell with its own terminal
    """
    from .lifecycle import exec_in
    from .spec import parse_env, parse_user

    uid, gid = parse_user(user) if user else (0, 0)
    return exec_in(container, list(command), parse_env(env), workdir, uid, gid, interactive=interactive, tty=tty)


@cli.command()
@click.option("--detach-keys", metavar="KEYS", help="Keys that detach, docker's syntax (default: ctrl-p,ctrl-q).")
@click.argument("container")
def attach(detach_keys, container):
    """Connect this terminal to the terminal of CONTAINER (started with run -d -t).

    Ctrl-P Ctrl-Q detaches and leaves it running; otherwise minirun exits with
    its status when it exits.
    """
    from .lifecycle import attach as attach_container

    return attach_container(container, detach_keys)


@cli.command()
@click.argument("container")
def inspect(container):
    """Print a container's state as JSON."""
    import json

    from .lifecycle import resolve, status

    click.echo(json.dumps(status(resolve(container)), indent=2))


@cli.command()
def gc():
    """Remove cgroups and state left behind by a minirun that was killed."""
    from . import cleanup

    failed: list[str] = []
    for container_id in cleanup.gc(failed=failed):
        click.echo(f"removed {container_id}")
    for what in failed:
        click.echo(warning_line(f"could not remove {what} (kept for the next gc)", "minirun"), err=True)


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


def run_click(args: list[str]) -> int:
    try:
        return cli.main(args=args, prog_name="minirun", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.exceptions.Abort:
        return 130
    except click.ClickException as exc:
        raise UsageError(f"{exc.format_message()} (see 'minirun --help')") from exc
