"""What dockerd's default network setup changes on the host, saved and put back.

dockerd (without --iptables=false --bridge=none) creates docker0, its DOCKER* chains
in the filter and nat tables, rules in FORWARD/PREROUTING/OUTPUT/POSTROUTING, sets
`iptables -P FORWARD DROP`, `net.ipv4.ip_forward=1` and bridge-nf-call-iptables=1,
and leaves all of it behind when it stops. Other engineers' tests may add rules of
their own meanwhile, so the restore is surgical: only rules added since the save that
name docker's chains, bridges or subnets go, then docker's chains, then the tables
that did not exist before if nothing else is left in them.
"""

from __future__ import annotations

import os
import shlex
import subprocess

SYSCTLS = ("/proc/sys/net/ipv4/ip_forward", "/proc/sys/net/bridge/bridge-nf-call-iptables",
           "/proc/sys/net/bridge/bridge-nf-call-ip6tables")
BRIDGE = "docker0"


def _iptables_save() -> dict[str, list[str]]:
    """{table: [lines]} of `iptables-save`, without counters and comments."""
    out = subprocess.run(["iptables-save"], capture_output=True, text=True, check=True).stdout
    tables: dict[str, list[str]] = {}
    current = None
    for line in out.splitlines():
        if line.startswith("*"):
            current = tables.setdefault(line[1:], [])
        elif current is not None and line and not line.startswith(("#", "COMMIT")):
            current.append(line.split(" [", 1)[0] if line.startswith(":") else line)
    return tables


def _read(path: str) -> str | None:
    try:
        with open(path) as f:
            return f.read().strip()
    except OSError:
        return None


def _link_exists(name: str) -> bool:
    return os.path.exists(f"/sys/class/net/{name}")


class HostState:
    def __init__(self):
        self.tables = _iptables_save()
        self.sysctls = {path: _read(path) for path in SYSCTLS}
        self.had_bridge = _link_exists(BRIDGE)

    def restore(self, markers: list[str]) -> list[str]:
        """Put the host back; ``markers`` are strings naming docker's objects (bridges, subnets).
        Returns what could not be restored (empty when all went back)."""
        problems: list[str] = []
        markers = ["DOCKER", BRIDGE, *markers]
        for table, lines in _iptables_save().items():
            before = set(self.tables.get(table, []))
            for rule in lines:
                if rule.startswith("-A ") and rule not in before and any(m in rule for m in markers):
                    self._iptables(problems, "-t", table, "-D", *shlex.split(rule[3:]))
            for line in lines:
                chain = line[1:].split()[0] if line.startswith(":") else None
                if chain and "DOCKER" in chain and line not in before:
                    self._iptables(problems, "-t", table, "-F", chain)
                    self._iptables(problems, "-t", table, "-X", chain)
        saved_policy = next((line.split()[1] for line in self.tables.get("filter", []) if line.startswith(":FORWARD ")),
                            "ACCEPT")
        self._iptables(problems, "-t", "filter", "-P", "FORWARD", saved_policy)
        self._drop_new_empty_tables(problems)
        if not self.had_bridge and _link_exists(BRIDGE):
            out = subprocess.run(["ip", "link", "del", BRIDGE], capture_output=True, text=True)
            if out.returncode:
                problems.append(f"ip link del {BRIDGE}: {out.stderr.strip()}")
        for path, value in self.sysctls.items():
            if value is not None and _read(path) != value:
                with open(path, "w") as f:
                    f.write(value)
        return problems + self._residue(markers, saved_policy)

    def _residue(self, markers: list[str], saved_policy: str) -> list[str]:
        """What is still there after the restore: docker's lines, the policy, the bridge."""
        left = []
        for table, lines in _iptables_save().items():
            before = set(self.tables.get(table, []))
            left += [f"iptables -t {table}: {line}" for line in lines
                     if line not in before and any(m in line for m in markers)]
            if table == "filter" and f":FORWARD {saved_policy}" not in lines:
                left.append(f"iptables FORWARD policy is not {saved_policy}")
        if not self.had_bridge and _link_exists(BRIDGE):
            left.append(f"link {BRIDGE}")
        return left

    @staticmethod
    def _iptables(problems: list[str], *args: str) -> None:
        out = subprocess.run(["iptables", "-w", *args], capture_output=True, text=True)
        if out.returncode:
            problems.append(f"iptables {' '.join(args)}: {out.stderr.strip()}")

    def _drop_new_empty_tables(self, problems: list[str]) -> None:
        """A table iptables-nft created for dockerd, now holding nothing but ACCEPT policies."""
        for table, lines in _iptables_save().items():
            if table in self.tables or any(not (line.startswith(":") and line.split()[1] == "ACCEPT")
                                           for line in lines):
                continue
            try:
                from pyroute2.nftables.main import NFTables
                from pyroute2.netlink.nfnetlink.nftsocket import NFPROTO_IPV4

                nft = NFTables(nfgen_family=NFPROTO_IPV4)
                try:
                    nft.table("del", name=table)
                finally:
                    nft.close()
            except Exception as err:  # noqa: BLE001 - reported, the host keeps an empty table
                problems.append(f"delete empty iptables table {table}: {err}")


def remove_empty_dirs(top: str) -> None:
    """``top`` and what is under it, deepest first, where empty (a directory in use stays)."""
    for dirpath, _dirs, _files in sorted(os.walk(top), key=lambda w: -w[0].count("/")):
        try:
            os.rmdir(dirpath)
        except OSError:
            pass
