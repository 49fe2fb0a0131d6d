"""The Docker driver, on the docker SDK (Engine API), for dockerd and API-compatible daemons."""
import datetime

import docker
import docker.errors
import requests.exceptions

from cutover.drivers.base import (ContainerState, Driver, ExecResult, RuntimeFailure,
                                  Unsupported)
from cutover.errors import CutoverError, RuntimeTimeout

# The files LXCFS serves, and where a site's orchestrator bind-mounts them.
LXCFS_FILES = ["proc/cpuinfo", "proc/diskstats", "proc/loadavg", "proc/meminfo", "proc/stat",
               "proc/swaps", "proc/uptime", "sys/devices/system/cpu/online"]


def _epoch(ts):
    if not ts or ts.startswith("0001-"):
        return None
    # Docker gives nanoseconds; Python wants at most microseconds.
    base, _, frac = ts.rstrip("Z").partition(".")
    dt = datetime.datetime.fromisoformat(base).replace(tzinfo=datetime.timezone.utc)
    return dt.timestamp() + (float("0." + frac[:9]) if frac else 0.0)


class DockerDriver(Driver):
    name = "docker"
    capabilities = frozenset({"daemon", "pause", "restart-policy", "image-build", "logs"})

    def __init__(self, target, host=None, timeout=30):
        super().__init__(target, host, timeout)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            try:
                self._client = docker.DockerClient(base_url=self.target.endpoint, timeout=self.timeout)
            except docker.errors.DockerException as e:
                raise CutoverError(f"target '{self.target.name}': cannot use endpoint "
                                   f"{self.target.endpoint}: {_short(e)}") from None
        return self._client

    def _call(self, what, fn, *a, **kw):
        """Run one API call, turning transport trouble into one-line errors."""
        try:
            return fn(*a, **kw)
        except (requests.exceptions.ReadTimeout, requests.exceptions.ConnectTimeout):
            raise RuntimeTimeout(f"{what} on target '{self.target.name}' timed out after {self.timeout}s") from None
        except requests.exceptions.ConnectionError as e:
            raise RuntimeFailure(f"{what}: endpoint {self.target.endpoint} unreachable ({_short(e)})") from None
        except docker.errors.NotFound as e:
            raise RuntimeFailure(f"{what}: not found ({_short(e)})") from None
        except docker.errors.APIError as e:
            raise RuntimeFailure(f"{what}: {_short(e)}") from None

    def ping(self):
        try:
            return self._call("ping", self.client.version)
        except (RuntimeFailure, RuntimeTimeout) as e:
            raise CutoverError(f"target '{self.target.name}': {e}") from None

    def facts(self):
        v = self.ping()
        info = self._call("info", self.client.info)
        return {"runtime": "docker", "runtime_version": v.get("Version"),
                "api_version": v.get("ApiVersion"), "oci_runtime": self.target.runtime,
                "oci_runtimes": sorted((info.get("Runtimes") or {}).keys()),
                "default_runtime": info.get("DefaultRuntime"),
                "storage_driver": info.get("Driver"), "cgroup_driver": info.get("CgroupDriver"),
                "cgroup_version": info.get("CgroupVersion"), "live_restore": info.get("LiveRestoreEnabled"),
                "kernel": info.get("KernelVersion"), "os": info.get("OperatingSystem"),
                "ncpu": info.get("NCPU"), "mem_total": info.get("MemTotal")}

    # -- containers ----------------------------------------------------------------------
    def _lxcfs_binds(self):
        root = self.target.lxcfs.rstrip("/")
        return [f"{root}/{f}:/{f}:ro" for f in LXCFS_FILES]

    def create(self, spec):
        kw = dict(image=spec.image, command=spec.command, labels=spec.labels, name=spec.name,
                  detach=True, runtime=self.target.runtime, environment=spec.env or None,
                  user=spec.user, restart_policy={"Name": spec.restart} if spec.restart != "no" else None,
                  stop_signal=spec.stop_signal)
        if spec.stop_timeout is not None:
            kw["stop_timeout"] = spec.stop_timeout
        a = spec.allocation
        if a is not None:
            # T4 gives memory without extra swap: memory+swap == memory.
            kw.update(mem_limit=a.memory, memswap_limit=a.memory)
            if a.cpuset:
                kw["cpuset_cpus"] = a.cpuset
            if a.cpus:
                kw["nano_cpus"] = int(a.cpus * 1e9)
            if a.pids:
                kw["pids_limit"] = a.pids
            if a.disk:
                raise Unsupported(f"target '{self.target.name}' cannot set a disk quota")
        if spec.lxcfs and self.target.lxcfs:
            kw["volumes"] = self._lxcfs_binds()
        # Site-specific extras a target may inject into every container (targets file
        # `options:`), e.g. network: host -- also how the self-tests build wrong targets.
        opts = self.target.options
        if opts.get("network"):
            kw["network_mode"] = opts["network"]
        kw = {k: v for k, v in kw.items() if v is not None}
        c = self._call("create container", self.client.containers.create, **kw)
        return c.id

    def _container(self, cid):
        return self._call(f"find container {cid[:12]}", self.client.containers.get, cid)

    def start(self, cid):
        self._call(f"start {cid[:12]}", self._container(cid).start)

    def exec(self, cid, argv, user=None, timeout=None):
        c = self._container(cid)
        argv = list(argv)
        if timeout:
            argv = ["timeout", "-s", "KILL", str(int(timeout))] + argv
        res = self._call(f"exec {' '.join(argv)[:60]} in {cid[:12]}", c.exec_run, argv,
                         user=user or "", demux=True)
        out, err = res.output if res.output else (b"", b"")
        return ExecResult(argv, res.exit_code, (out or b"").decode(errors="replace"),
                          (err or b"").decode(errors="replace"))

    def exec_detached(self, cid, argv):
        c = self._container(cid)
        self._call(f"exec -d in {cid[:12]}", c.exec_run, argv, detach=True)

    def inspect(self, cid):
        attrs = self._call(f"inspect {cid[:12]}", self.client.api.inspect_container, cid)
        st = attrs["State"]
        status = "paused" if st.get("Paused") else st.get("Status")
        return ContainerState(id=attrs["Id"], status=status, pid=st.get("Pid") or 0,
                              started_at=st.get("StartedAt"), started_epoch=_epoch(st.get("StartedAt")),
                              exit_code=st.get("ExitCode"), oom_killed=bool(st.get("OOMKilled")),
                              raw=attrs)

    def stop(self, cid, grace=10):
        # The HTTP call lasts as long as the grace period: allow for it.
        self._call(f"stop {cid[:12]}", self.client.api.stop, cid, timeout=grace)

    def kill(self, cid, signal="KILL"):
        self._call(f"kill {cid[:12]}", self.client.api.kill, cid, signal=signal)

    def pause(self, cid):
        self._call(f"pause {cid[:12]}", self.client.api.pause, cid)

    def unpause(self, cid):
        self._call(f"unpause {cid[:12]}", self.client.api.unpause, cid)

    def logs(self, cid):
        return self._call(f"logs {cid[:12]}", self.client.api.logs, cid).decode(errors="replace")

    def remove(self, cid, force=True):
        try:
            self.client.api.remove_container(cid, force=force, v=True)
        except docker.errors.NotFound:
            pass
        except requests.exceptions.ReadTimeout:
            raise RuntimeTimeout(f"remove {cid[:12]} on target '{self.target.name}' timed out") from None
        except docker.errors.APIError as e:
            raise RuntimeFailure(f"remove {cid[:12]}: {_short(e)}") from None

    def list_containers(self, labels):
        filters = {"label": [f"{k}={v}" if v is not None else k for k, v in labels.items()]}
        return [c["Id"] for c in self._call("list containers", self.client.api.containers,
                                            all=True, filters=filters)]

    # -- images ----------------------------------------------------------------------------
    def image_exists(self, ref):
        try:
            self.client.images.get(ref)
            return True
        except docker.errors.ImageNotFound:
            return False
        except requests.exceptions.ConnectionError as e:
            raise RuntimeFailure(f"image lookup: endpoint {self.target.endpoint} unreachable ({_short(e)})") from None

    def build_image(self, context_tar, tag, labels=None, nocache=False):
        def build():
            image, log = self.client.images.build(fileobj=context_tar, custom_context=True, tag=tag,
                                                  labels=labels or {}, rm=True, forcerm=True,
                                                  nocache=nocache)
            return image.id
        try:
            return self._call(f"build {tag}", build)
        except docker.errors.BuildError as e:
            raise RuntimeFailure(f"build {tag} failed: {_short(e)}") from None

    def remove_image(self, ref):
        try:
            self.client.api.remove_image(ref, force=True)
        except docker.errors.ImageNotFound:
            pass

    def list_images(self):
        return sorted(i.id for i in self._call("list images", self.client.images.list))


def _short(e):
    s = str(getattr(e, "explanation", None) or e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:300]


def unsupported_reason(e):
    return str(e)


__all__ = ["DockerDriver", "Unsupported"]
