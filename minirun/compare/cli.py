"""`minirun compare`: a click command over measure.py and report.py (loaded lazily by minirun.cli)."""

from __future__ import annotations

import sys
import time

import click


@click.command("compare", context_settings={"help_option_names": ["--help"]})
@click.argument("rootfs", required=False)
@click.option("--runs", type=click.IntRange(1, 1000), default=5, show_default=True,
              help="Samples per figure (workload repetitions, deployment runs).")
@click.option("--accel", type=click.Choice(["auto", "kvm", "tcg"]), default="auto", show_default=True,
              help="VM accelerator (auto: KVM when it can boot a standard kernel, else TCG).")
@click.option("--containers", type=click.IntRange(0, 100), default=3, show_default=True,
              help="Idle containers (minirun, and runc) started at once for the density row.")
@click.option("--vms", type=click.IntRange(0, 20), default=2, show_default=True,
              help="Idle VMs started at once for the density row.")
@click.option("--store-mb", type=click.IntRange(1, 4096), default=16, show_default=True,
              help="MiB written (fsync'ed) per storage sample.")
@click.option("--net-mb", type=click.IntRange(1, 4096), default=32, show_default=True,
              help="At most this many MiB (and 5 s of sending) in the TCP transfer host -> instance on the bridge.")
@click.option("--peer-defaults", is_flag=True,
              help="Also run runc with `runc spec`'s own security (no seccomp, 3 capabilities) as an extra column; "
                   "the runc column always runs with minirun's defaults.")
@click.option("--json", "json_path", metavar="FILE", help="Write the raw samples, environment and rows as JSON.")
@click.option("--markdown", "md_path", metavar="FILE", help="Write the table as markdown.")
@click.option("--plot", "png_path", metavar="FILE.png", help="Write a PNG bar chart (needs matplotlib).")
def compare(rootfs, runs, accel, containers, vms, store_mb, net_mb, peer_defaults, json_path, md_path, png_path):
    """Measure the virtualization-vs-containerization table on this host.

    Runs the same probes and workloads on the host (the baseline), in a minirun
    container, under runc (with minirun's default security settings, so the
    rows compare runtimes, not policies) and in a minirun VM, and prints one row per area:
    isolation, operating system, guest compatibility, deployment, persistent
    storage, density, networking, performance. Progress goes to stderr, the
    table to stdout. Default ROOTFS: /var/lib/minirun/rootfs/busybox.

    \b
    Examples:
      minirun compare --runs 3
      minirun compare --runs 3 --peer-defaults
      minirun compare --json out.json --markdown out.md --plot out.png
    """
    import os

    from ..errors import HostError, SpecError
    from . import measure, report

    if os.geteuid() != 0:
        raise HostError("minirun compare must run as root (it starts containers and VMs)")
    if rootfs is None:
        from ..rootfs import DEFAULT_ROOTFS

        rootfs = DEFAULT_ROOTFS
    if not os.path.isfile(os.path.join(rootfs, "bin", "busybox")):
        raise SpecError(f"rootfs {rootfs}: no bin/busybox there (build one with `minirun rootfs build`)")
    if png_path:  # fail before minutes of measuring, not after
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            from .plot import PlotUnavailable

            raise PlotUnavailable("--plot needs matplotlib: pip install 'minirun[plot]' (or pip install "
                                  "matplotlib)") from None
    t0 = time.monotonic()

    def progress(msg: str) -> None:
        print(f"compare [{time.monotonic() - t0:5.1f}s] {msg}", file=sys.stderr, flush=True)

    opts = measure.Options(rootfs=rootfs, runs=runs, accel=accel, containers=containers, vms=vms, store_mb=store_mb,
                           net_mb=net_mb, peer_defaults=peer_defaults)
    data = measure.measure(opts, progress)
    rows = report.build_rows(data)
    data["elapsed_s"] = time.monotonic() - t0
    click.echo(report.render_text(data, rows))
    if json_path:
        _write(json_path, report.to_json(data, rows))
    if md_path:
        _write(md_path, report.render_markdown(data, rows))
    if png_path:
        from .plot import plot

        plot(data, rows, png_path)
    progress("done" + "".join(f"; wrote {p}" for p in (json_path, md_path, png_path) if p))


def _write(path: str, text: str) -> None:
    with open(path, "w") as f:
        f.write(text)
