"""cgroups for minirun containers: find where each controller lives, then drive it.

    detect()          /proc/self/mountinfo, parsed once -> Layout (unified | legacy | hybrid)
    create_manager()  id + Limits (+ Layout) -> Cgroup, for a new container
    existing()        id (+ relpath, recorded paths) -> Cgroup, for one another process made
    Cgroup            create, update, freeze, kill, destroy, pids and the counters minirun
                      reports: the interface in manager.py, which NoCgroup (rootless) also has
    stale_ids/remove  what `minirun gc` needs
    v1, v2            each a setter table (Limits field -> file, format: knobs.py), the
                      freezer and the counters; fs: the only cgroupfs I/O

Where a controller is used: in the unified (v2) hierarchy if its root lists it in
cgroup.controllers *and* passes it down in cgroup.subtree_control, else in the v1
hierarchy that has it. Hybrid hosts are handled per controller, not as "all v1".
When there is a unified hierarchy, every container joins it too, even with no v2
controller in it (runc's NameGroup): that membership gives cgroup.kill, cpu.stat and
clone3(CLONE_INTO_CGROUP). Likewise every v1 hierarchy is joined, limits or not
(cpuset, blkio, freezer, name=systemd, ...), as runc does: `update --cpuset-cpus`,
block I/O stats and the freezer then reach the container alone, and its cgroup
namespace (and cgroup mount) shows only its own cgroups, never the host's root.

A container's cgroup is <mountpoint>/<PARENT>/<id> in every hierarchy used (PARENT is
``minirun``, or MINIRUN_CGROUP_PARENT: settings.py). minirun writes nothing outside its
own PARENT directories: a v2 controller the root does
not delegate is reported (HostError), never enabled on the root.
"""

from __future__ import annotations

import os

from ..errors import CgroupError, HostError, SpecError
from ..settings import CGROUP_PARENT as PARENT
from ..settings import check_names
from ..spec import Limits, check_id
from . import fs, knobs, v1, v2

MOUNTINFO = "/proc/self/mountinfo"

# The controllers minirun uses (by their v1 names), and the option that needs each one.
CONTROLLERS = ("cpu", "cpuacct", "cpuset", "devices", "memory", "pids", "blkio", "hugetlb")
_OPTION = {"cpu": "--cpus", "cpuset": "--cpuset-cpus", "memory": "--memory", "pids": "--pids-limit",
           "blkio": "linux.resources.blockIO", "hugetlb": "linux.resources.hugepageLimits"}
# Enabled in a v2 parent only for a container whose limits ask for them (io and hugetlb
# cost every write to the parent's subtree_control); v1 hierarchies are all joined.
OPTIONAL = ("cpuset", "blkio", "hugetlb")

# v1 super options that are not controllers (``name=...`` and ``release_agent=...`` have '=').
_V1_FLAGS = frozenset(
    {"rw", "ro", "noprefix", "clone_children", "xattr", "cpuset_v2_mode", "favordynmods", "nofavordynmods"}
)


class Layout:
    """Where the cgroup hierarchies are and which one each controller is used in.

    (A plain class: a frozen dataclass costs ~0.8 ms to define, at every minirun start.)
    """

    __slots__ = ("controllers", "mode", "undelegated", "unified", "v1")

    def __init__(
        self,
        mode: str,
        unified: str | None = None,
        v1: dict[str, str] | None = None,
        controllers: dict[str, str] | None = None,
        undelegated: frozenset[str] = frozenset(),
    ):
        self.mode = mode  # "unified" | "legacy" | "hybrid"
        self.unified = unified  # cgroup2 mountpoint
        self.v1 = v1 or {}  # every v1 controller, and named hierarchy ("name=systemd") -> its mountpoint
        self.controllers = controllers or {}  # CONTROLLERS -> mountpoint where usable
        self.undelegated = undelegated  # in the v2 root but not passed down to children

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"Layout({fields})"

    def mountpoints(self) -> list[str]:
        """Every hierarchy minirun may have a directory in, unified first."""
        return _unique(([self.unified] if self.unified else []) + list(self.controllers.values())
                       + list(self.v1.values()))


_cached: Layout | None = None


def detect(mountinfo_path: str = MOUNTINFO, root_prefix: str = "") -> Layout:
    """The host's layout, cached for the process; other arguments (tests) bypass the cache.

    ``root_prefix`` is prepended to every mountpoint, so a fixture mountinfo can point
    into a temporary tree.
    """
    global _cached
    default = mountinfo_path == MOUNTINFO and not root_prefix
    if default and _cached is not None:
        return _cached
    try:
        with open(mountinfo_path) as f:
            text = f.read()
    except OSError as err:
        raise HostError(f"cannot read {mountinfo_path}: {err.strerror}") from err
    layout = parse_layout(text, root_prefix)
    if default:
        _cached = layout
    return layout


def parse_layout(mountinfo: str, root_prefix: str = "") -> Layout:
    unified, v1_mounts = _parse_mountinfo(mountinfo, root_prefix)
    if unified is None and not v1_mounts:
        raise HostError("no cgroup filesystem is mounted (none in /proc/self/mountinfo)")
    listed: set[str] = set()
    delegated: set[str] = set()
    if unified is not None:
        listed = set((fs.read_if_exists(os.path.join(unified, "cgroup.controllers")) or "").split())
        delegated = set((fs.read_if_exists(os.path.join(unified, "cgroup.subtree_control")) or "").split())
    controllers: dict[str, str] = {}
    for name in CONTROLLERS:
        if unified is not None and v2.NAME.get(name, name) in listed & delegated:
            controllers[name] = unified
        elif name in v1_mounts:
            controllers[name] = v1_mounts[name]
    if unified is not None and "cpuacct" not in controllers:
        controllers["cpuacct"] = unified  # v2 has usage in cpu.stat without any controller
    if unified is not None and "devices" not in controllers:
        controllers["devices"] = unified  # v2: a BPF program on the cgroup, no controller to enable
    if unified is None:
        mode = "legacy"
    else:
        mode = "hybrid" if v1_mounts else "unified"
    undelegated = frozenset(c for c in set(CONTROLLERS) - set(controllers)
                            if v2.NAME.get(c, c) in listed - delegated)
    return Layout(mode, unified, v1_mounts, controllers, undelegated)


def _parse_mountinfo(text: str, root_prefix: str) -> tuple[str | None, dict[str, str]]:
    """(cgroup2 mountpoint, v1 controller or "name=..." -> mountpoint); the first mount of each wins."""
    unified: str | None = None
    v1_mounts: dict[str, str] = {}
    for line in text.splitlines():
        # id parent major:minor root mountpoint options [optional...] - fstype source superoptions
        before, sep, after = line.partition(" - ")
        fields, tail = before.split(), after.split()
        if not sep or len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mountpoint = root_prefix + _unescape(fields[4])
        if tail[0] == "cgroup2":
            unified = unified or mountpoint
            continue
        for option in tail[2].split(","):
            if option.startswith("name=") or (option and "=" not in option and option not in _V1_FLAGS):
                v1_mounts.setdefault(option, mountpoint)
    return unified, v1_mounts


def _unescape(path: str) -> str:
    # mountinfo writes space, tab, newline and backslash as octal escapes.
    if "\\" not in path:
        return path
    import re

    return re.sub(r"\\([0-7]{3})", lambda m: chr(int(m.group(1), 8)), path)


def _unique(items: list[str]) -> list[str]:
    return list(dict.fromkeys(items))


class Cgroup:
    """One container's cgroup in every hierarchy minirun uses.

    ``paths`` maps controller -> directory (plus "unified" for the v2 directory); on
    v2 they are all the same directory, on v1 one per hierarchy. Keep it in state.
    """

    def __init__(self, container_id: str, limits: Limits, layout: Layout, relpath: str | None = None,
                 paths: dict[str, str] | None = None):
        self.id = container_id
        self.limits = limits
        self.layout = layout
        # Below each hierarchy's root: minirun/<id>, or an OCI cgroupsPath (minirun-oci).
        self.relpath = relpath or os.path.join(PARENT, container_id)
        # ``paths``: as recorded when the container was made (existing()), else as the
        # limits make them: on v2 only the OPTIONAL controllers they ask for.
        self.paths = dict(paths) if paths else container_paths(self.relpath, limits, layout)
        self.notes: list[str] = []  # what could not be applied as asked (e.g. no swap accounting)
        # Directories made by create(). None: create() was not called here, so the
        # container's directories were made by another minirun process and are all ours.
        self._created: list[str] | None = None

    def __repr__(self) -> str:
        return f"Cgroup({self.id!r}, mode={self.layout.mode!r}, paths={self.paths!r})"

    @property
    def dirs(self) -> list[str]:
        return _unique(list(self.paths.values()))

    @property
    def needs_parent_placement(self) -> bool:
        """True if a v1 hierarchy is used: clone3 only places into the v2 directory, so the
        parent must still write the pid to the v1 cgroup.procs files (add_pid)."""
        return any(d != self.paths.get("unified") for d in self.dirs)

    def create(self) -> None:
        """Make the directories and apply the limits, all or nothing."""
        if self._created:
            raise CgroupError(f"cgroup of {self.id!r} already created: {self._created[0]}")
        self._created = []
        try:
            for path in self.dirs:
                self._make(path)
            self._apply()
        except BaseException:
            self._remove_created()
            raise

    def _make(self, path: str) -> None:
        try:
            created = self._mkdir(path)
        except CgroupError:
            # Made only now: the parents exist but for the first container (an OCI cgroupsPath
            # may be nested deeper than minirun/<id>). Made whether or not they are there now: a
            # concurrent first start may have made them since our mkdir failed. Any other failure
            # comes back from the second mkdir.
            _make_ancestors(os.path.dirname(path))
            created = self._mkdir(path)
        if not created:
            raise CgroupError(
                f"{path} already exists: container {self.id!r} is running or was left behind"
                " (`minirun gc` removes leftovers)"
            )
        assert self._created is not None
        self._created.append(path)
        if path == self.paths.get("cpuset") and path != self.paths.get("unified"):
            self._fill_cpuset(path)

    def _fill_cpuset(self, path: str) -> None:
        """A new v1 cpuset refuses every task until it has cpus and mems. Under minirun's own
        parent the kernel copies the parent's (cgroup.clone_children, set there once, as LXC
        sets it on its cgroups): one read sees that it did, instead of two reads and two writes."""
        ours = self.relpath == os.path.join(PARENT, self.id)
        if ours and fs.read(os.path.join(path, "cpuset.mems")).strip():
            return
        v1.init_cpuset(path)
        if ours:
            fs.write(os.path.join(os.path.dirname(path), "cgroup.clone_children"), 1)

    def _mkdir(self, path: str) -> bool:
        """True if made, False if it existed; CgroupError if it cannot be (no parent, say)."""
        if path == self.paths.get("unified"):
            wanted = {v2.NAME.get(c, c) for c in v2.CONTROLLERS if self.paths.get(c) == path}
            if wanted:
                v2.enable_controllers(os.path.dirname(path), wanted)
        return fs.mkdir(path, exist_ok=True)

    def _apply(self, skip: frozenset[str] = frozenset()) -> None:
        for controller, path in self.paths.items():
            knobs.apply(self._driver(path).SETTERS, controller, path, self.limits, self.notes, skip)

    def _driver(self, path: str):
        return v2 if path == self.paths.get("unified") else v1

    def _remove_created(self) -> None:
        for path in reversed(self._created or []):
            try:
                fs.rmdir(path)  # fresh and empty: no retry needed
            except CgroupError:
                pass  # the error that got us here is the one to report
        self._created = []

    def update(self, limits: Limits) -> None:
        """Apply new limits to an existing cgroup (`minirun-oci update`). The device rules
        stay as create made them (runc's update has none); an OPTIONAL v2 controller the
        cgroup was made without cannot be added now."""
        limits.validate()
        fields = {"cpuset": "cpu.cpus/mems", "blkio": "blockIO", "hugetlb": "hugepageLimits"}
        for controller in sorted(wanted_optional(limits) - self.paths.keys()):
            raise SpecError(f"linux.resources.{fields[controller]}: container {self.id!r} was created "
                            f"without a {controller} cgroup, which only create can add")
        self.limits = limits
        self._apply(skip=frozenset({"devices"}))

    def add_pid(self, pid: int) -> None:
        """Move ``pid`` (and its threads) into the container's cgroup in every hierarchy.

        Each cgroup.procs write takes the kernel's global threadgroup lock for writing,
        and the first one in a while waits for an RCU grace period (~10 ms measured on
        a 6.18 hybrid host). self_placement_fds() avoids that for v1.
        """
        for path in self.dirs:
            fs.write(os.path.join(path, "cgroup.procs"), pid)

    def self_placement_fds(self) -> list[int]:
        """Write-only fds of the v1 ``tasks`` files, for the child to join by itself.

        A single-threaded child that writes ``0`` to each one (itself, as a thread)
        moves without the global lock that add_pid's cgroup.procs writes take: 0.07 ms
        instead of ~10 ms here. The v2 directory is joined with clone3(CLONE_INTO_CGROUP)
        (unified_dir_fd) instead: v2 moves single threads only inside one domain. The
        fds are O_CLOEXEC (the child writes before exec); the caller closes them.
        """
        unified = self.paths.get("unified")
        fds: list[int] = []
        try:
            for path in self.dirs:
                if path != unified:
                    fds.append(fs.open_write(os.path.join(path, "tasks")))
        except BaseException:
            for fd in fds:
                os.close(fd)
            raise
        return fds

    def unified_dir_fd(self) -> int | None:
        """A new O_PATH fd of the v2 directory, for clone3(CLONE_INTO_CGROUP); the caller
        closes it. None without a unified hierarchy (legacy hosts)."""
        path = self.paths.get("unified")
        return None if path is None else fs.open_dir(path)

    # Killing, removing and listing a container's cgroup is C (csrc/ocicgroup.c), the
    # code minirun-oci's native delete and kill --all run: one implementation.
    def pids(self) -> list[int]:
        """Every process in the container's cgroup, in any hierarchy."""
        from ..ociverbs import cgroup_pids

        return cgroup_pids(self._owned())

    def kill(self) -> None:
        """SIGKILL every process in the container: cgroup.kill where there is one, else
        signal what cgroup.procs lists until it is empty (a fork may race one pass)."""
        from ..ociverbs import cgroup_kill

        dirs = self._owned()
        cgroup_kill(dirs, self._unified_index(dirs))

    def destroy(self) -> None:
        """Kill, then remove the container's directories, clearing what keeps one busy
        (processes still exiting, child cgroups the container made). Idempotent; a
        directory already gone is fine; one still busy after a short retry raises CgroupError."""
        from ..ociverbs import cgroup_destroy

        dirs = self._owned()
        try:
            cgroup_destroy(dirs, self._unified_index(dirs))
        finally:
            self._created = []

    def remove_if_unused(self) -> bool:
        """Remove the directories only once no process is in them and they hold no child
        cgroup; kill nothing. For a record whose create may never have made its cgroup
        (killed half-way): the path may then be another's. True if they are gone."""
        from ..ociverbs import cgroup_remove_if_unused

        if not cgroup_remove_if_unused(self._owned()):
            return False
        self._created = []
        return True

    def _unified_index(self, dirs: list[str]) -> int:
        unified = self.paths.get("unified")
        return dirs.index(unified) if unified in dirs else -1

    def _owned(self) -> list[str]:
        if self._created is not None:
            return list(self._created)
        return _all_dirs(self.layout, self.relpath)

    def _freezer(self):
        """(directory, driver) of the container's freezer: cgroup.freeze of the v2 directory
        (kernel 5.2+; joined on hybrid hosts too), else the v1 freezer's freezer.state
        (legacy hosts: every container joins that hierarchy). None without either."""
        for key, driver in (("unified", v2), ("freezer", v1)):
            path = self.paths.get(key)
            if path is not None and os.path.exists(os.path.join(path, driver.FREEZE_FILE)):
                return path, driver
        return None

    @property
    def freeze_file(self) -> str | None:
        """The file freeze() writes (recorded in minirun-oci's state.json, which C reads)."""
        found = self._freezer()
        return None if found is None else os.path.join(found[0], found[1].FREEZE_FILE)

    def freeze(self, frozen: bool) -> None:
        """Stop (True) or let run again (False) every process of the container."""
        found = self._freezer()
        if found is None:
            raise HostError("pause/resume needs a freezer (cgroup.freeze or the v1 freezer), which this "
                            "container's cgroup lacks")
        path, driver = found
        driver.freeze(path, frozen)

    def frozen(self) -> bool:
        """True once freeze(True) was asked (the kernel may still be stopping tasks)."""
        found = self._freezer()
        return found is not None and found[1].is_frozen(found[0])

    def oom_kill_count(self) -> int:
        """Processes the kernel OOM-killed in this container (0 without a memory controller)."""
        return self._stat("oom_kill_count") or 0

    def cpu_usage_ns(self) -> int | None:
        return self._stat("cpu_usage_ns")

    def memory_usage(self) -> int | None:
        return self._stat("memory_usage")

    def memory_peak(self) -> int | None:
        return self._stat("memory_peak")

    def _stat(self, name: str):
        controller = v1.STATS[name][0]  # the same controller in both drivers
        path = self.paths.get(controller)
        if path is None:
            return None
        return self._driver(path).STATS[name][1](path)


class NoCgroup:
    """The manager of a rootless container, which has no cgroup: same interface; limits
    and placement have no effect, and there is nothing to count, kill or freeze."""

    id = ""
    paths: dict[str, str] = {}
    notes: list[str] = []
    needs_parent_placement = False
    freeze_file = None

    def create(self) -> None:
        pass

    def destroy(self) -> None:
        pass

    def remove_if_unused(self) -> bool:
        return True

    def kill(self) -> None:
        pass

    def update(self, limits: Limits) -> None:
        pass

    def freeze(self, frozen: bool) -> None:
        raise HostError("pause/resume needs a cgroup freezer, and a rootless container has no cgroup")

    def frozen(self) -> bool:
        return False

    def add_pid(self, pid: int) -> None:
        pass

    def self_placement_fds(self) -> list[int]:
        return []

    def unified_dir_fd(self) -> None:
        return None

    def pids(self) -> list[int]:
        return []

    def oom_kill_count(self) -> int:
        return 0

    def cpu_usage_ns(self) -> None:
        return None

    def memory_usage(self) -> None:
        return None

    def memory_peak(self) -> None:
        return None


def create_manager(container_id: str, limits: Limits, layout: Layout | None = None,
                   relpath: str | None = None) -> Cgroup:
    """A Cgroup for ``container_id``; nothing is created until ``create()``.

    Raises HostError now, before anything exists, if a limit needs a controller that
    this host does not offer.
    """
    check_id(container_id)
    limits.validate()
    problem = check_names()
    if problem:
        raise HostError(problem)
    layout = layout or detect()
    _check_available(layout, limits)
    return Cgroup(container_id, limits, layout, relpath)


def stale_ids(layout: Layout | None = None, parent: str | None = None) -> set[str]:
    """Ids with a directory under ``parent`` (minirun's, or minirun-oci's) in any hierarchy,
    running containers included."""
    layout = layout or detect()
    ids: set[str] = set()
    for mountpoint in layout.mountpoints():
        ids.update(fs.listdirs(os.path.join(mountpoint, parent or PARENT)))
    return ids


def existing(container_id: str, layout: Layout | None = None, relpath: str | None = None,
             paths: dict[str, str] | None = None) -> Cgroup:
    """The cgroup another minirun process made for ``container_id``, the one way to reach
    it: at ``relpath`` below each hierarchy's root (an OCI cgroupsPath; default
    PARENT/<id>), with ``paths`` as its creator recorded them if it did. All its
    directories are ours: destroy() looks in every hierarchy."""
    if not container_id or "/" in container_id or container_id in (".", ".."):
        raise SpecError(f"invalid container name {container_id!r}")
    if relpath is not None and relpath.strip("/") in ("", "."):
        raise SpecError(f"container {container_id!r}: its cgroup path {relpath!r} is a hierarchy's root")
    return Cgroup(container_id, Limits(), layout or detect(), relpath, paths)


def remove(container_id: str, layout: Layout | None = None) -> None:
    """Kill and remove ``container_id``'s cgroup in every hierarchy (`minirun gc`)."""
    existing(container_id, layout).destroy()


def wanted_optional(limits: Limits) -> set[str]:
    """The OPTIONAL controllers that ``limits`` need: those the setter table writes a set
    field to (v1's and v2's name the same controller for each field)."""
    return {controller for field, controller, _ in v1.SETTERS
            if controller in OPTIONAL and knobs.is_set(getattr(limits, field))}


def _check_available(layout: Layout, limits: Limits) -> None:
    optional = wanted_optional(limits)
    wanted = {
        "cpu": limits.cpu_quota is not None or limits.cpu_shares is not None,
        "memory": limits.memory is not None or limits.memory_reservation is not None,
        "pids": limits.pids is not None,
        **{c: c in optional for c in OPTIONAL},
    }
    if "devices" not in layout.controllers:
        raise HostError("this host has no devices cgroup (no v1 devices hierarchy, no cgroup2): minirun "
                        "cannot keep containers away from the host's device nodes")
    for controller, needed in wanted.items():
        if not needed or controller in layout.controllers:
            continue
        if controller in layout.undelegated:
            raise HostError(
                f"{_OPTION[controller]}: cgroup v2 controller {v2.NAME.get(controller, controller)} is not "
                f"delegated: enable it in {layout.unified}/cgroup.subtree_control"
            )
        raise HostError(
            f"{_OPTION[controller]} needs the {controller} cgroup controller, which this host does not have"
        )


def container_paths(relpath: str, limits: Limits, layout: Layout) -> dict[str, str]:
    """Where the cgroup of a container made with ``limits`` at ``relpath`` is (what
    Cgroup.paths holds), for the mounts of one not made yet (oci/bundle.py)."""
    optional = wanted_optional(limits)
    paths: dict[str, str] = {}
    if layout.unified:
        paths["unified"] = os.path.join(layout.unified, relpath)
    for controller, mountpoint in layout.controllers.items():
        # In v2 an OPTIONAL controller only if asked: enabling cpuset costs nothing extra
        # (the directory is made anyway), but io and hugetlb stay off. v1: always.
        if mountpoint != layout.unified or controller not in OPTIONAL or controller in optional or (
                controller == "cpuset"):
            paths[controller] = os.path.join(mountpoint, relpath)
    for name, mountpoint in layout.v1.items():  # freezer, name=systemd, net_cls, ...: joined, no knob
        if name not in paths:  # (most are controllers, placed above: no join for nothing)
            paths[name] = os.path.join(mountpoint, relpath)
    return paths


def _all_dirs(layout: Layout, relpath: str) -> list[str]:
    return [os.path.join(m, relpath) for m in layout.mountpoints()]


def _make_ancestors(path: str) -> None:
    """mkdir -p for the parents of a container's cgroup (left in place, as runc does)."""
    parent = os.path.dirname(path)
    if not os.path.isdir(parent):
        _make_ancestors(parent)
    fs.mkdir(path, exist_ok=True)
