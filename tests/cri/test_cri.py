"""Pods under containerd's CRI plugin on both handlers, runc and minirun (minirun-oci as the
RuntimeClass handler's BinaryName), checked from inside the containers as kubelet's users would."""

from __future__ import annotations

import os
import socket
from concurrent.futures import ThreadPoolExecutor

import pytest

from criclient import stream, wait_for
from crienv import SUBNET, leftovers

grpc = pytest.importorskip("grpc")  # the test extra

SLEEP = ["/bin/sleep", "3600"]


def test_pod_has_its_own_netns_and_is_reachable_from_the_host(pods):
    pod = pods("net")
    server = pod.create("server", ["/bin/sh", "-c", "while true; do echo hello-from-pod | nc -l -p 8080; done"])
    ip = pod.ip
    assert ip.rsplit(".", 1)[0] == SUBNET.rsplit(".", 1)[0], ip
    assert pod.sh(server, "readlink /proc/self/ns/net").strip() != os.readlink("/proc/self/ns/net")
    assert f"inet {ip}/24" in pod.sh(server, "ip addr show eth0")
    assert "default" not in pod.sh(server, "ip route")  # no route out: the pod reaches its bridge only

    def hello() -> bytes:
        try:
            with socket.create_connection((ip, 8080), timeout=5) as conn:
                return conn.recv(100)
        except OSError:
            return b""  # the listener may not be up yet

    assert wait_for("the pod's listener", hello) == b"hello-from-pod\n"


def test_runtime_handler_is_the_one_asked_for(pods, handler, containerd):
    pod = pods("handler")
    assert pod.status().status.runtime_handler == handler
    # the shim ran this handler's binary: its state lives under the handler's own root (options.Root)
    assert os.path.isdir(f"{containerd.base}/{handler}/k8s.io/{pod.id}")


def test_two_containers_in_a_pod_talk_over_localhost(pods):
    pod = pods("localhost")
    server = pod.create("server", ["/bin/sh", "-c", "mkdir /tmp/www && echo over-localhost > /tmp/www/index.html"
                                                    " && exec httpd -f -p 127.0.0.1:9000 -h /tmp/www"])
    client = pod.create("client", SLEEP)
    got = wait_for("the server in the other container",
                   lambda: pod.exec(client, "wget", "-q", "-O", "-", "http://127.0.0.1:9000/").stdout)
    assert got == b"over-localhost\n"
    pod.sh(client, "echo pod-shm > /dev/shm/note")  # and one /dev/shm: the sandbox's, bound into each
    assert pod.exec(server, "/bin/cat", "/dev/shm/note").stdout == b"pod-shm\n"


def test_exec_sync_and_through_the_streaming_server(pods):
    pod = pods("exec")
    cid = pod.create("main", SLEEP)
    out = pod.exec(cid, "/bin/sh", "-c", "echo out; echo err >&2; exit 7")
    assert (out.stdout, out.stderr, out.exit_code) == (b"out\n", b"err\n", 7)
    assert pod.exec(cid, "/bin/cat", "/proc/1/cmdline").stdout == b"/bin/sleep\x003600\x00"
    url = pod.cri.Exec(container_id=cid, cmd=["/bin/sh", "-c", "echo streamed; echo oops >&2; exit 3"],
                       stdout=True, stderr=True).url
    result = stream(url)
    assert (result.stdout, result.stderr, result.exit_code) == (b"streamed\n", b"oops\n", 3)
    ok = stream(pod.cri.Exec(container_id=cid, cmd=["/bin/true"], stdout=True).url)
    assert ok.exit_code == 0
    url = pod.cri.Exec(container_id=cid, cmd=["/bin/sh", "-c", "read line; echo got:$line"], stdin=True,
                       stdout=True).url
    fed = stream(url, script=[(b"", b"hello\n")])  # exec -i: stdin through the streaming server
    assert (fed.stdout, fed.exit_code) == (b"got:hello\n", 0)


def test_logs_go_to_the_cri_log_file(pods):
    pod = pods("logs")
    cid = pod.create("main", ["/bin/sh", "-c", "echo to-stdout; echo to-stderr >&2"])
    status = pod.wait_exited(cid)
    assert status.exit_code == 0

    def lines() -> list:  # CRI format: TIME STREAM TAG(F|P) LINE; the copy may trail the exit
        with open(status.log_path) as f:
            return sorted(line.split(" ", 3)[1:] for line in f.read().splitlines())

    assert wait_for("both lines", lambda: len(lines()) == 2 and lines()) == [
        ["stderr", "F", "to-stderr"], ["stdout", "F", "to-stdout"]]


def test_attach_reads_the_running_container(pods):
    pod = pods("attach")
    cid = pod.create("main", ["/bin/sh", "-c", "while true; do echo tick; sleep 0.1; done"])
    url = pod.cri.Attach(container_id=cid, stdout=True, stderr=True).url
    assert b"tick\n" in stream(url, until=b"tick\n").stdout
    reader = pod.create("reader", ["/bin/sh", "-c", "while read line; do echo echo:$line; done"], stdin=True)
    url = pod.cri.Attach(container_id=reader, stdin=True, stdout=True, stderr=True).url
    assert b"echo:ping\n" in stream(url, script=[(b"", b"ping\n")], until=b"echo:ping\n").stdout


def test_oom_killed_is_137_with_reason_oomkilled(pods):
    pod = pods("oom")
    # it waits for the go-ahead: the shim watches for OOM events once StartContainer has returned
    cid = pod.create("hog", ["/bin/sh", "-c", "while [ ! -e /tmp/go ]; do sleep 0.05; done; "
                                              "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived"],
                     memory=32 * 1024 * 1024)
    pod.exec(cid, "/bin/touch", "/tmp/go")
    status = pod.wait_exited(cid)
    assert (status.exit_code, status.reason) == (137, "OOMKilled"), status


def test_restart_after_exit_in_the_same_sandbox(pods):
    pod = pods("restart")
    first = pod.create("main", ["/bin/sh", "-c", "exit 3"])
    status = pod.wait_exited(first)
    assert (status.exit_code, status.reason) == (3, "Error")
    pod.cri.RemoveContainer(container_id=first)
    again = pod.create("main", SLEEP, attempt=1)  # what kubelet does on restartPolicy Always
    assert pod.container_status(again).state == pod.pb.CONTAINER_RUNNING
    assert pod.sh(again, "echo alive") == "alive\n"


def test_update_cpu_memory_and_cpuset_seen_from_inside(pods):
    pod = pods("update")
    cid = pod.create("main", SLEEP)
    pb = pod.pb
    pod.cri.UpdateContainerResources(container_id=cid, linux=pb.LinuxContainerResources(
        cpu_period=100000, cpu_quota=50000, cpu_shares=512, memory_limit_in_bytes=64 * 1024 * 1024))
    # cgroup v1 as runc mounts it: the container's own cgroups at /sys/fs/cgroup/<controller>
    assert pod.sh(cid, "cat /sys/fs/cgroup/cpu/cpu.cfs_quota_us /sys/fs/cgroup/cpu/cpu.cfs_period_us"
                       " /sys/fs/cgroup/cpu/cpu.shares").split() == ["50000", "100000", "512"]
    assert pod.sh(cid, "cat /sys/fs/cgroup/memory/memory.limit_in_bytes").strip() == str(64 * 1024 * 1024)
    # kubelet's static CPU manager pins a container to CPUs after it started
    pod.cri.UpdateContainerResources(container_id=cid, linux=pb.LinuxContainerResources(cpuset_cpus="0"))
    assert pod.sh(cid, "grep Cpus_allowed_list /proc/self/status").split() == ["Cpus_allowed_list:", "0"]
    assert pod.sh(cid, "grep Cpus_allowed_list /proc/1/status").split() == ["Cpus_allowed_list:", "0"]


def test_stop_and_remove_container_then_the_sandbox(pods, cri):
    pod = pods("stop")
    cid = pod.create("main", SLEEP)  # sleep as PID 1 ignores SIGTERM: the stop ends in SIGKILL
    pod.cri.StopContainer(container_id=cid, timeout=1)
    status = pod.container_status(cid)
    assert (status.state, status.exit_code) == (pod.pb.CONTAINER_EXITED, 137)
    pod.cri.RemoveContainer(container_id=cid)
    assert not [c for c in cri.ListContainers().containers if c.id == cid]
    pod.cri.StopPodSandbox(pod_sandbox_id=pod.id)
    assert pod.status().status.state == pod.pb.SANDBOX_NOTREADY
    pod.cri.RemovePodSandbox(pod_sandbox_id=pod.id)
    assert pod.id not in [s.id for s in cri.ListPodSandbox().items]


def test_stop_sandbox_with_running_containers(pods):
    pod = pods("stopp")
    cids = [pod.create(name, SLEEP) for name in ("a", "b")]
    pod.cri.StopPodSandbox(pod_sandbox_id=pod.id)
    for cid in cids:
        assert pod.container_status(cid).state == pod.pb.CONTAINER_EXITED


def test_share_process_namespace_shows_the_pause_process(pods):
    pod = pods("sharepid", share_pid=True)
    cid = pod.create("main", SLEEP)
    assert pod.exec(cid, "/bin/cat", "/proc/1/cmdline").stdout == b"/pause\x00"
    assert "/bin/sleep 3600" in pod.sh(cid, "ps -o args")
    # a container's other processes go when its main one exits (the shim's kill --all)
    leaver = pod.create("leaver", ["/bin/sh", "-c", "sleep 3601 & exit 3"])
    assert pod.wait_exited(leaver).exit_code == 3
    wait_for("the exited container's child to go", lambda: "sleep 3601" not in pod.sh(cid, "ps -o args"))
    unshared = pods("ownpid")
    other = unshared.create("main", SLEEP)
    assert unshared.exec(other, "/bin/cat", "/proc/1/cmdline").stdout == b"/bin/sleep\x003600\x00"
    # kubectl debug --target: an ephemeral container in another container's PID namespace
    debug = unshared.create("debugger", SLEEP, target=other)
    assert unshared.exec(debug, "/bin/cat", "/proc/1/cmdline").stdout == b"/bin/sleep\x003600\x00"


def test_host_network_pod_shares_the_hosts_netns(pods):
    pod = pods("hostnet", host_network=True)
    cid = pod.create("main", SLEEP)
    assert pod.sh(cid, "readlink /proc/self/ns/net").strip() == os.readlink("/proc/self/ns/net")
    assert "eth0" in pod.sh(cid, "cat /proc/net/dev")


def test_the_leak_check_sees_a_live_pod(pods, containerd):
    """Positive control for the leak check every test ends with: while a pod with its own netns
    runs, each kind of leftover it looks for is there."""
    pod = pods("control")
    pod.create("main", SLEEP)
    kinds = {item.split()[0] for item in leftovers(containerd.base)}
    assert {"netns", "veth", "cgroup", "mount", "shim", "lease", "state"} <= kinds, kinds


def test_exec_with_a_tty_through_the_streaming_server(pods):
    pod = pods("exectty")
    cid = pod.create("main", SLEEP)
    # it waits for a line on stdin before it exits: containerd may drop a tty's last output when
    # the process is gone before the copy starts (runc and minirun alike)
    script = "tty; [ -t 0 ] && [ -t 1 ] && echo all-tty; read x; exit 4"
    url = pod.cri.Exec(container_id=cid, cmd=["/bin/sh", "-c", script], tty=True, stdin=True, stdout=True).url
    result = stream(url, script=[(b"all-tty", b"bye\n")])
    assert result.exit_code == 4
    assert result.stdout.replace(b"\r", b"").split(b"\n")[:2] == [b"/dev/pts/0", b"all-tty"], result.stdout


def test_stop_delivers_sigterm_first(pods):
    pod = pods("graceful")
    cid = pod.create("main", ["/bin/sh", "-c", "trap 'echo got-term; exit 0' TERM; while true; do sleep 0.1; done"])
    wait_for("the trap to be set", lambda: "sleep" in pod.sh(cid, "ps -o args"))
    pod.cri.StopContainer(container_id=cid, timeout=60)
    status = pod.container_status(cid)
    assert (status.state, status.exit_code) == (pod.pb.CONTAINER_EXITED, 0)

    def last_line() -> str:
        with open(status.log_path) as f:
            return (f.read().split() or [""])[-1]

    assert wait_for("the trap's line in the log", lambda: last_line() == "got-term")


def test_container_stats_come_from_its_cgroup(pods):
    pod = pods("stats")
    cid = pod.create("main", ["/bin/sh", "-c", "x=$(head -c 20000000 /dev/zero | tr '\\0' a); exec sleep 3600"])
    wait_for("the container to settle", lambda: "sleep" in pod.sh(cid, "ps -o args"))
    stats = pod.cri.ContainerStats(container_id=cid).stats
    assert stats.cpu.usage_core_nano_seconds.value > 0
    assert stats.memory.working_set_bytes.value > 0


def test_host_pid_pod_sees_the_hosts_processes_and_restarts(pods):
    pod = pods("hostpid", host_pid=True)
    cid = pod.create("main", SLEEP)
    assert pod.sh(cid, "readlink /proc/self/ns/pid").strip() == os.readlink("/proc/self/ns/pid")
    assert f"/proc/{os.getpid()}" in pod.sh(cid, f"ls -d /proc/{os.getpid()}")
    pod.cri.StopContainer(container_id=cid, timeout=1)  # no PID namespace: the stop signals the cgroup's processes
    assert pod.container_status(cid).state == pod.pb.CONTAINER_EXITED
    second = pod.create("second", ["/bin/sh", "-c", "exit 4"])
    assert pod.wait_exited(second).exit_code == 4


def test_run_as_user_and_read_only_root(pods):
    pod = pods("secctx")
    pb = pod.pb
    cid = pod.create("main", SLEEP, run_as_user=pb.Int64Value(value=1000), run_as_group=pb.Int64Value(value=1000),
                     readonly_rootfs=True)
    assert pod.sh(cid, "id -u; id -g").split() == ["1000", "1000"]
    assert pod.exec(cid, "/bin/touch", "/x").exit_code == 1  # read-only root
    assert pod.sh(cid, "touch /dev/shm/x && echo shm-writable") == "shm-writable\n"


def test_privileged_pod(pods):
    """A privileged container (CNI daemonsets, device plugins): every capability, the host's devices."""
    pod = pods("privileged", privileged=True)
    cid = pod.create("main", SLEEP, privileged=True)
    assert pod.sh(cid, "grep CapEff /proc/self/status").split()[1] == \
        next(line.split()[1] for line in open("/proc/self/status") if line.startswith("CapBnd"))
    assert pod.sh(cid, "[ -c /dev/kmsg ] && [ -c /dev/ptmx ] && [ -c /dev/pts/ptmx ] && echo host-devices") == \
        "host-devices\n"


def test_qos_oom_score_adj_holds_for_execs_too(pods):
    """kubelet gives a BestEffort container oomScoreAdj 1000; containerd copies the container's
    process into each exec's, and the runtime applies it before the exec'd process runs."""
    pod = pods("qos")
    cid = pod.create("main", SLEEP, oom_score_adj=1000)
    assert pod.exec(cid, "/bin/cat", "/proc/1/oom_score_adj").stdout == b"1000\n"
    for _ in range(10):  # sh forks cat at once: the score must already be there (this raced 1 in 3)
        assert pod.sh(cid, "cat /proc/self/oom_score_adj; true") == "1000\n"


def test_pod_sysctls_seccomp_and_host_ipc(pods):
    pod = pods("sysctl", sysctls={"net.ipv4.ip_unprivileged_port_start": "0", "net.core.somaxconn": "1234"},
               host_ipc=True)
    pb = pod.pb
    cid = pod.create("main", SLEEP, seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    assert pod.sh(cid, "cat /proc/sys/net/ipv4/ip_unprivileged_port_start /proc/sys/net/core/somaxconn").split() \
        == ["0", "1234"]  # the pod's sysctls, in the pod's netns
    assert pod.sh(cid, "readlink /proc/self/ns/ipc").strip() == os.readlink("/proc/self/ns/ipc")  # hostIPC
    assert pod.sh(cid, "grep ^Seccomp: /proc/self/status").split() == ["Seccomp:", "2"]  # RuntimeDefault
    assert pod.exec(cid, "/usr/bin/unshare", "-U", "/bin/true").exit_code != 0  # which refuses unshare(2)


def test_volumes_an_empty_dir_shared_and_a_read_only_host_path(pods, tmp_path):
    pod = pods("volumes")
    pb = pod.pb
    shared, config = tmp_path / "empty-dir", tmp_path / "config"
    shared.mkdir()
    config.mkdir()
    (config / "setting").write_text("from-the-host\n")
    volumes = [pb.Mount(container_path="/data", host_path=str(shared)),
               pb.Mount(container_path="/etc/app", host_path=str(config), readonly=True)]
    writer = pod.create("writer", ["/bin/sh", "-c", "echo written > /data/file; exec sleep 3600"], mounts=volumes)
    reader = pod.create("reader", SLEEP, mounts=volumes)
    wait_for("the writer", lambda: (shared / "file").exists())
    assert pod.exec(reader, "/bin/cat", "/data/file").stdout == b"written\n"
    assert pod.exec(reader, "/bin/cat", "/etc/app/setting").stdout == b"from-the-host\n"
    assert pod.exec(writer, "/bin/touch", "/etc/app/x").exit_code == 1  # readonly


def test_pods_started_in_parallel(pods):
    """kubelet starts pods in parallel: the runtime's calls for them (and the shim's kill --all and
    delete after a quick container exits) overlap."""
    def one(i: int) -> str:
        pod = pods(f"parallel{i}")
        main = pod.create("main", SLEEP)
        quick = pod.create("quick", ["/bin/sh", "-c", f"exit {i}"])
        assert pod.wait_exited(quick).exit_code == i
        return pod.sh(main, "hostname").strip()

    with ThreadPoolExecutor(4) as pool:
        assert sorted(pool.map(one, range(4))) == [f"parallel{i}" for i in range(4)]


def test_a_missing_command_fails_start_as_start_error(pods):
    """runc looks the command up before create returns, so StartContainer fails and kubelet shows
    StartError (exit 128) with runc's words; found only after start it would be a plain exit 127."""
    pod = pods("nocmd")
    for command, words in (("/no/such/cmd", "no such file or directory"), ("/etc/passwd", "permission denied")):
        with pytest.raises(grpc.RpcError) as failed:
            pod.create(f"c{len(pod.containers)}", [command])
        assert f'exec: "{command}"' in failed.value.details() and words in failed.value.details()
        status = pod.container_status(pod.containers[-1])
        assert (status.state, status.exit_code, status.reason) == (pod.pb.CONTAINER_EXITED, 128, "StartError")
