"""`--plot FILE.png`: the table's numbers as bar charts (matplotlib, an optional extra)."""

from __future__ import annotations

from ..errors import MiniRunError
from .report import columns, settings_tag

PANELS = (  # (title, row, value path, scale, unit, log axis)
    ("Start to first output", "Deployment", ("start_s", "median"), 1000, "ms", True),
    ("/bin/true end to end", "Deployment", ("true_s", "median"), 1000, "ms", True),
    ("Idle memory per instance", "Load balancing / density", ("bytes_per_instance",), 1 / (1 << 20), "MiB", True),
    ("CPU-bound (sha256 64 MiB)", "Performance", ("perf_cpu", "median"), 1, "s", False),
    ("Syscall-heavy (dd bs=1)", "Performance", ("perf_syscall", "median"), 1, "s", False),
    ("Loopback round trip", "Networking", ("lo_rtt_ms", "avg"), 1, "ms", False),
)
COLOURS = {"vm": "#c44e52", "container": "#4c72b0", "runc": "#55a868", "runc_spec": "#a6d8b0", "host": "#8c8c8c"}


class PlotUnavailable(MiniRunError):
    pass


def _value(cell: dict, path: tuple[str, ...]):
    value = cell.get("values", {})
    for key in path:
        if not isinstance(value, dict) or value.get(key) is None:
            return None
        value = value[key]
    return value


def plot(data: dict, rows: list[dict], path: str) -> None:
    try:
        import matplotlib
    except ImportError:
        raise PlotUnavailable("--plot needs matplotlib: pip install 'minirun[plot]' (or pip install matplotlib)") \
            from None
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    by_area = {r["area"]: r["cells"] for r in rows}
    accel = ((data.get("environment") or {}).get("accel") or {}).get("name")
    labels = {"vm": f"VM ({accel})" if accel else "VM", "container": "minirun\ncontainer",
              "runc": "runc", "runc_spec": "runc\n(runc spec)", "host": "host"}
    fig, axes = plt.subplots(2, 3, figsize=(15, 9.5))
    for ax, (title, area, keys, scale, unit, log) in zip(axes.flat, PANELS):
        names, values = [], []
        for col in columns(data):
            v = _value(by_area[area][col], keys)
            if v is not None:
                names.append(col)
                values.append(v * scale)
        bars = ax.bar([labels[n] for n in names], values, color=[COLOURS[n] for n in names])
        ax.bar_label(bars, labels=[f"{v:,.0f}" if v >= 1000 else f"{v:.3g}" for v in values], fontsize=8)
        ax.set_title(title, fontsize=10)
        ax.set_ylabel(unit)
        if log and values and min(values) > 0:
            ax.set_yscale("log")
        ax.tick_params(axis="x", labelsize=8)
        if not values:
            ax.text(0.5, 0.5, "not measured", ha="center", va="center", transform=ax.transAxes)
    env = data.get("environment") or {}
    accel = (env.get("accel") or {}).get("name", "n/a")
    fig.suptitle(f"minirun compare - {env.get('date', '')} - {env.get('cpu_model', '')} x{env.get('cpus', '')}, "
                 f"host {env.get('kernel', '')}, VM accel {accel}, n={data.get('options', {}).get('runs')}",
                 fontsize=10)
    # what each bar ran with (security settings, accelerator), as in the table's headers
    cols = columns(data)
    handles = [plt.Rectangle((0, 0), 1, 1, color=COLOURS[c]) for c in cols]
    tags = {c: settings_tag(((data.get("backends") or {}).get(c) or {}).get("settings")) for c in cols}
    fig.legend(handles, [f"{labels[c].replace(chr(10), ' ')}: {tags[c] or 'settings unknown'}"
                         + (" (minirun's settings)" if c == "runc" else "") for c in cols],
               loc="lower center", ncol=min(len(cols), 3), fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.0))
    fig.tight_layout(rect=(0, 0.07, 1, 1))
    fig.savefig(path, format="png", dpi=90)
    plt.close(fig)
