"""The podman driver: podman's Docker-compatible API (`podman system service`), on the docker SDK.

Why the API and not the CLI: both end in the same libpod code (the compat handlers build the
same container spec as `podman run`, with containers.conf defaults: ulimits, seccomp profile,
capabilities), so observations inside containers are the same; the API gives structured
inspect/exec results and errors without parsing CLI output, the same timeouts and label
filters as the Docker driver, and one code path for the suites. What differs from dockerd is
declared here: containers do not depend on the API service at all (each has its own conmon),
so there is no live-restore setting to get wrong; stopping or killing the service is the
'daemon' event the lifecycle suite drives.
"""
from cutover.drivers import podman_rootfs
from cutover.drivers.docker import DockerDriver
from cutover.errors import CutoverError


class PodmanDriver(DockerDriver):
    name = "podman"
    disk_quota = "a loop ext4 root per container with options.disk_quota: loop-rootfs (podman_rootfs.py)"
    # No runtime-select (the compat API ignores HostConfig.Runtime), no live-restore (nothing to
    # restore: containers never depend on the service). A registry that is plain HTTP must be
    # marked insecure in the service's registries.conf (podman trusts no address by default; the
    # lab writes one for its loopback registry, cutover/lab/podman.py).
    capabilities = frozenset({"daemon", "exit-status", "daemonless", "pause", "restart-policy", "image-build", "logs",
                              "image-run", "image-inspect", "image-transfer", "image-registry"})

    def __init__(self, target, host=None, timeout=30):
        super().__init__(target, host, timeout)
        self._service_runtime = None

    def create(self, spec):
        # The compat API ignores HostConfig.Runtime: the service's containers.conf
        # (engine.runtime) decides. A target naming another runtime would be measured on the
        # wrong one, so it is refused instead (the CLI's --runtime would honour it).
        if self._service_runtime is None:
            self._service_runtime = self._call("info", self.client.info).get("DefaultRuntime") or ""
        if self.target.runtime != self._service_runtime:
            raise CutoverError(f"target '{self.target.name}': runtime '{self.target.runtime}', but the podman "
                               f"service at {self.target.endpoint} runs '{self._service_runtime}' (its "
                               f"containers.conf decides; the API cannot choose per container)")
        if podman_rootfs.wanted(self, spec):       # disk quota: a loop ext4 root (podman_rootfs.py)
            return podman_rootfs.create(self, spec)
        return super().create(spec)

    def remove(self, cid, force=True):
        # The loop root goes whatever happens to the container: already gone, or its removal
        # failed or timed out (a root left mounted would otherwise wait for `lab down`).
        root = podman_rootfs.root_of(self, cid)
        try:
            super().remove(cid, force)
        finally:
            podman_rootfs.release(self, root)

    def storage_path(self, cid):
        return podman_rootfs.storage_path(self, cid) or super().storage_path(cid)

    def inspect(self, cid):
        st = super().inspect(cid)
        # podman 4.3's compat API leaks libpod's "stopped" (an exited container after its
        # cleanup ran) where Docker says "exited"; later podman versions translate it too.
        if st.status == "stopped":
            st.status = "exited"
        return st

    def facts(self):
        f = super().facts()
        # The compat API reports LiveRestoreEnabled: false, which would read as a
        # misconfiguration: podman has no such setting (containers never need the service).
        f.update(runtime="podman", live_restore=None, daemonless=True)
        return f
