"""The Networking row's host side and its cell, on loopback only (no container, no VM)."""

from __future__ import annotations

import os
import socket
import subprocess

import pytest

from minirun.compare import measure, report, units
from minirun.compare.units import Markers

ROOTFS = os.environ.get("MINIRUN_ROOTFS", "/var/lib/minirun/rootfs/busybox")
BUSYBOX = os.path.join(ROOTFS, "bin", "busybox")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.skipif(not os.access(BUSYBOX, os.X_OK), reason="no busybox rootfs (make rootfs)")
def test_host_to_instance_against_the_units_own_listener():
    """The unit's listener (`nc -l -p PORT -e wc -c`) answers with the byte count the host sent, so the time
    covers delivery; the transfer stops at the byte bound."""
    port = _free_port()
    listener = subprocess.Popen([BUSYBOX, "timeout", "30", BUSYBOX, "nc", "-l", "-p", str(port), "-e", BUSYBOX, "wc",
                                 "-c"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        out = measure.host_to_instance(BUSYBOX, "127.0.0.1", port, pings=3, max_bytes=3 << 20, max_s=5)
    finally:
        listener.kill()
        listener.wait()
    assert out["tcp"]["bytes_sent"] == out["tcp"]["bytes_received"] == 3 << 20, out
    assert 0 < out["tcp"]["seconds"] < 10
    if os.geteuid() == 0:  # busybox ping needs a raw socket
        assert units.parse_rtt(out["ping"]), out


def test_host_to_instance_reports_a_refused_connection():
    out = measure.host_to_instance("/bin/false", "127.0.0.1", _free_port(), pings=1, max_bytes=1, max_s=0.1,
                                  connect_s=0.3)
    assert "tcp_error" in out and "connect 127.0.0.1" in out["tcp_error"]


def _vm_view(bridge: dict | None) -> report.View:
    lines = ["@@mrc network begin", "@@mrc network lo_rtt round-trip min/avg/max = 0.5/1.0/2.0 ms",
             "@@mrc network gw_rtt 10.88.0.1 round-trip min/avg/max = 0.6/1.2/2.5 ms",
             "@@mrc network peer_rtt 10.88.0.3 round-trip min/avg/max = 0.7/1.4/3.0 ms",
             "@@mrc network listen 10.88.0.4 5201", "@@mrc network listen_done 0", "@@mrc network end 0"]
    suite = {"markers": Markers(units.parse_markers("\n".join(lines))).to_list(), "exit_code": 0, "error": None,
             "meta": {}, "host_checks": {"bridge": bridge} if bridge else {}}
    data = {"backends": {"vm": {"label": "minirun VM", "available": True, "reason": None}},
            "samples": {"vm": {"suite": suite}}, "options": {"pings": 10},
            "environment": {"accel": {"name": "tcg", "reason": "test"}}}
    return report.View("vm", data)


def test_network_cell_of_a_bridged_vm_is_measured_like_a_containers():
    cell = report.network_cell(_vm_view({"address": "10.88.0.4", "ping": "round-trip min/avg/max = 1/2/3 ms",
                                         "tcp": {"bytes_sent": 32 << 20, "bytes_received": 32 << 20,
                                                 "seconds": 0.5}}))
    assert cell["status"] == "measured"
    v = cell["values"]
    assert v["bridge_rtt_ms"]["avg"] == 1.2 and v["peer_rtt_ms"]["avg"] == 1.4 and v["host_rtt_ms"]["avg"] == 2
    assert v["tcp_mib_per_s"] == 64
    text = "\n".join(cell["text"])
    assert "virtio-net to the bridge 10.88.0.1" in text and "to a container on the bridge (10.88.0.3)" in text
    assert "TCP host to instance: 64 MiB/s" in text and "no virtual NIC" not in text


def test_a_short_transfer_is_reported_not_turned_into_a_rate():
    cell = report.network_cell(_vm_view({"address": "10.88.0.4", "tcp": {"bytes_sent": 100, "bytes_received": 40,
                                                                         "seconds": 0.5}}))
    assert "tcp_mib_per_s" not in cell["values"]
    assert any("the instance counted 40" in line for line in cell["text"])
