"""A pod as kubelet drives one through the CRI: sandbox first, then containers in it."""

from __future__ import annotations

import os
import uuid

from criclient import Cri, wait_for
from crienv import BUSYBOX_IMAGE, CGROUP_PARENT


class Pod:
    def __init__(self, cri: Cri, handler: str, name: str, log_root: str, host_network: bool = False,
                 share_pid: bool = False, host_pid: bool = False, privileged: bool = False,
                 host_ipc: bool = False, sysctls: dict[str, str] | None = None):
        pb = self.pb = cri.pb
        self.cri, self.name = cri, name
        uid = uuid.uuid4().hex
        # kubelet's choices for an ordinary pod: pod network and IPC, a PID namespace per container
        # unless shareProcessNamespace, a cgroup parent per pod (cgroupfs driver).
        self.namespaces = pb.NamespaceOption(network=pb.NODE if host_network else pb.POD,
                                             pid=pb.NODE if host_pid else pb.POD if share_pid else pb.CONTAINER,
                                             ipc=pb.NODE if host_ipc else pb.POD)
        self.log_dir = os.path.join(log_root, f"{name}_{uid}")
        self.config = pb.PodSandboxConfig(
            metadata=pb.PodSandboxMetadata(name=name, uid=uid, namespace="minirun-test"),
            hostname="" if host_network else name, log_directory=self.log_dir,
            linux=pb.LinuxPodSandboxConfig(
                cgroup_parent=f"/{CGROUP_PARENT}/pod{uid}", sysctls=sysctls or {},
                security_context=pb.LinuxSandboxSecurityContext(namespace_options=self.namespaces,
                                                                 privileged=privileged)))
        self.id = cri.RunPodSandbox(config=self.config, runtime_handler=handler).pod_sandbox_id
        self.containers: list[str] = []

    def status(self, verbose: bool = False):
        return self.cri.PodSandboxStatus(pod_sandbox_id=self.id, verbose=verbose)

    @property
    def ip(self) -> str:
        return self.status().status.network.ip

    def create(self, name: str, args: list[str], attempt: int = 0, start: bool = True, memory: int = 0,
               oom_score_adj: int = 0, tty: bool = False, stdin: bool = False, target: str = "", mounts=(),
               **security) -> str:
        """A container from the busybox image; ``target``: a container whose PID namespace it joins
        (kubectl debug --target); ``security``: LinuxContainerSecurityContext fields."""
        pb = self.pb
        namespaces = self.namespaces
        if target:
            namespaces = pb.NamespaceOption(network=namespaces.network, ipc=namespaces.ipc, pid=pb.TARGET,
                                            target_id=target)
        config = pb.ContainerConfig(
            metadata=pb.ContainerMetadata(name=name, attempt=attempt), image=pb.ImageSpec(image=BUSYBOX_IMAGE),
            command=args[:1], args=args[1:], log_path=f"{name}_{attempt}.log", tty=tty, stdin=stdin,
            mounts=list(mounts),
            linux=pb.LinuxContainerConfig(
                resources=pb.LinuxContainerResources(memory_limit_in_bytes=memory, oom_score_adj=oom_score_adj),
                security_context=pb.LinuxContainerSecurityContext(namespace_options=namespaces, **security)))
        cid = self.cri.CreateContainer(pod_sandbox_id=self.id, config=config, sandbox_config=self.config).container_id
        self.containers.append(cid)
        if start:
            self.cri.StartContainer(container_id=cid)
        return cid

    def container_status(self, cid: str):
        return self.cri.ContainerStatus(container_id=cid).status

    def wait_exited(self, cid: str, timeout: float = 60):
        return wait_for(f"container {cid} to exit",
                        lambda: (s := self.container_status(cid)).state == self.pb.CONTAINER_EXITED and s,
                        timeout)

    def exec(self, cid: str, *cmd: str, timeout: int = 60):
        return self.cri.ExecSync(container_id=cid, cmd=list(cmd), timeout=timeout)

    def sh(self, cid: str, script: str) -> str:
        """stdout of ``sh -c script`` in the container, which must succeed."""
        out = self.exec(cid, "/bin/sh", "-c", script)
        assert out.exit_code == 0, (out.exit_code, out.stdout, out.stderr)
        return out.stdout.decode()

    def remove(self) -> None:
        """What kubelet does when a pod is deleted: stop the sandbox (all its containers), remove it."""
        if self.id in [sandbox.id for sandbox in self.cri.ListPodSandbox().items]:  # a test may have done it
            self.cri.StopPodSandbox(pod_sandbox_id=self.id)
            self.cri.RemovePodSandbox(pod_sandbox_id=self.id)
