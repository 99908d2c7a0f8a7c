"""``minirun vm ...``: the VM companion's commands (a click group the main CLI loads lazily).

Errors are raised as MiniRunError subclasses; minirun's entry (entry.py) prints them as
one ``minirun: <message>`` line and exits with their code (errors.py's table; 124 for a
timeout). ``python3 -m minirun.vm.cli`` runs ``minirun vm`` through that same entry.
"""

from __future__ import annotations

import sys

import click

from ..cli import with_options
from ..runopts import VM_RUN_OPTIONS
from .runverb import execute_vm_run


@click.group("vm", context_settings={"help_option_names": ["--help"]})
def vm():
    """Boot the same ROOTFS and COMMAND in a QEMU virtual machine (its own kernel)."""


@vm.command("run", context_settings={"allow_interspersed_args": False, "help_option_names": ["--help"]})
@with_options(VM_RUN_OPTIONS)
@click.argument("rootfs")
@click.argument("command", nargs=-1, required=True, type=click.UNPROCESSED)
def run(**options):
    """Boot a VM whose root is ROOTFS, run COMMAND in it, exit with its status.

    COMMAND's output (stdout and stderr share the guest's serial console) appears
    live on stdout.  minirun reports the accelerator on stderr and, with --json,
    the timings (launch to guest init, to COMMAND start, to exit), QEMU's peak
    RSS and the guest kernel version.

    \b
    Examples:
      minirun vm run /var/lib/minirun/rootfs/busybox /bin/uname -r
      minirun vm run --memory 512m --cpus 2 --json ROOTFS /bin/sh -c 'nproc; free -m'
      minirun vm run --share-root / - /bin/cat /proc/self/cgroup   # the host's files, the guest's kernel
      minirun vm run --share-root / --module overlay - minirun run ROOTFS /bin/true   # a container in a VM
      minirun vm run --network bridge -p 8080:80 ROOTFS httpd -f -p 80
      minirun vm run -v /srv/data:/data -v /etc:/host-etc:ro ROOTFS /bin/ls /data
    """
    return execute_vm_run(**options)


@vm.group("kernel")
def kernel():
    """Manage the cached guest kernels."""


@kernel.command("fetch")
@click.option("--flavour", type=click.Choice(["cloud", "generic", "all"]), default="all", show_default=True,
              help="cloud boots faster (default for initramfs boots); generic has 9p (needed by --share-root).")
def kernel_fetch(flavour):
    """Download (apt-get download) and unpack (dpkg -x) the default guest kernel(s) into the cache."""
    from . import kernel as kernels

    for name in kernels.FLAVOURS if flavour == "all" else [flavour]:
        k = kernels.fetch(name)
        click.echo(f"{name}: {k.image}")


def main(argv: list[str] | None = None) -> None:
    """``minirun vm ARGS``, through minirun's one entry (its error contract)."""
    from ..entry import main as entry_main

    entry_main(["vm", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    main()
