"""The Docker driver, on the docker SDK (Engine API), for dockerd and API-compatible daemons."""
import datetime
import os
import re

import docker
import docker.errors
import requests.exceptions

from cutover.drivers.base import (BuildResult, ContainerState, Driver, ExecResult, ImageInfo,
                                  PullFailed, QuotaUnavailable, RuntimeFailure, Unsupported)
from cutover.allocations import parse_size
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
    disk_quota = "--storage-opt size= (the daemon decides: btrfs, zfs, overlay2 on xfs pquota)"
    capabilities = frozenset({"daemon", "exit-status", "live-restore", "pause", "restart-policy", "image-build", "logs",
                              "runtime-select", "image-run", "image-inspect", "image-transfer",
                              "image-registry"})

    def __init__(self, target, host=None, timeout=30):
        super().__init__(target, host, timeout)
        self._client = None

    @property
    def client(self):
        if self._client is None:
            if self.target.endpoint.startswith("ssh://"):
                # A remote host's daemon: its socket forwarded by ssh (see sshfwd for why).
                from cutover.drivers import sshfwd
                self._client = sshfwd.docker_client(self.target, timeout=self.timeout)
                return self._client
            try:
                if self.target.endpoint.startswith("unix://"):
                    from cutover.drivers.exactconn import unix_client
                    self._client = unix_client(self.target.endpoint, timeout=self.timeout)
                else:
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
                # containerd, runc, docker-init as the daemon runs them (not the host's binaries)
                "components": {c.get("Name"): c.get("Version") for c in v.get("Components") or []},
                "oci_runtimes": sorted((info.get("Runtimes") or {}).keys()),
                "default_runtime": info.get("DefaultRuntime"),
                "storage_driver": info.get("Driver"), "cgroup_driver": info.get("CgroupDriver"),
                "cgroup_version": info.get("CgroupVersion"), "live_restore": info.get("LiveRestoreEnabled"),
                "kernel": info.get("KernelVersion"), "os": info.get("OperatingSystem"),
                "ncpu": info.get("NCPU"), "mem_total": info.get("MemTotal"),
                # What the daemon says it cannot do here ("No memory limit support", ...):
                # the evidence when a kernel silently drops a limit.
                "warnings": [w.strip() for w in info.get("Warnings") or []]}

    # -- containers ----------------------------------------------------------------------
    def _lxcfs_binds(self):
        root = self.target.lxcfs.rstrip("/")
        return [f"{root}/{f}:/{f}:ro" for f in LXCFS_FILES]

    def create(self, spec):
        kw = dict(image=spec.image, command=spec.command, labels=spec.labels, name=spec.name,
                  detach=True, runtime=self.target.runtime, environment=spec.env or None,
                  user=spec.user, restart_policy={"Name": spec.restart} if spec.restart != "no" else None,
                  stop_signal=spec.stop_signal, init=spec.init or None)
        binds = [f"{name}:{path}" for name, path in (spec.volumes or {}).items()]
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
                self._disk_quota(kw, a.disk)
        if spec.lxcfs and self.target.lxcfs:
            binds += self._lxcfs_binds()
        if binds:
            kw["volumes"] = binds
        if spec.no_new_privileges:
            kw["security_opt"] = ["no-new-privileges"]
        # Site-specific extras a target may inject into every container (targets file
        # `options:`), e.g. network: host -- also how the self-tests build wrong targets.
        self._apply_options(kw)
        kw = {k: v for k, v in kw.items() if v is not None}
        # `systempaths: unconfined` (the CLI's --security-opt systempaths=unconfined) is no
        # SDK argument: the CLI sends empty MaskedPaths/ReadonlyPaths in the host config.
        host_config = {"MaskedPaths": [], "ReadonlyPaths": []} \
            if self.target.options.get("systempaths") == "unconfined" else {}
        try:
            if spec.stop_timeout is None and not host_config:
                c = self._call("create container", self.client.containers.create, **kw)
                return c.id
            # The SDK's high-level create does not take stop_timeout; its low-level call does.
            from docker.models.containers import _create_container_args
            create_kwargs = _create_container_args(dict(kw, version=self.client.api._version))
            if spec.stop_timeout is not None:
                create_kwargs["stop_timeout"] = spec.stop_timeout
            create_kwargs["host_config"].update(host_config)
            return self._call("create container", self.client.api.create_container, **create_kwargs)["Id"]
        except RuntimeFailure as e:
            # e.g. overlay2: "--storage-opt is supported only for overlay over xfs with 'pquota'"
            if "storage_opt" in kw and re.search(r"storage.opt|quota", str(e), re.I):
                raise QuotaUnavailable(f"runtime cannot set a disk quota: {e}") from None
            raise

    # -- disk quota (targets-file options; see README "Disk quota") ------------------------------
    # The runtime decides whether it can set a quota, not the targets file: a root quota is always
    # asked for with `--storage-opt size=<quota>` (btrfs, zfs, overlay2 on xfs with pquota), and
    # a daemon that cannot (overlay2 here: "--storage-opt is supported only for overlay over xfs
    # with 'pquota' mount option") refuses in its own words, which create() turns into
    # QuotaUnavailable and the quota suite reports as the broken promise.
    # disk_quota: storage-opt (the default) names that mechanism; there is no other here.
    # disk_size: a fixed size given to every container and quota'd volume whatever the
    # allocation asks (a site that hard-codes its quota: the quota self-test's wrong target).
    # volume_quota: size-opt (the default) -> the local volume driver's own `--opt size=` (xfs
    # project quota only; refused elsewhere, again in the daemon's words); loop-ext4 -> a quota'd
    # volume is the local driver mounting an ext4 loop device of the quota's size (made under
    # loop_dir on the local host by cutover.looproot).
    def _disk_quota(self, kw, size):
        how = self.target.options.get("disk_quota", "storage-opt")
        if how != "storage-opt":
            raise CutoverError(f"target '{self.target.name}': options.disk_quota '{how}' is not a disk quota "
                               f"mechanism of driver '{self.name}' (known: storage-opt)")
        fixed = self.target.options.get("disk_size")
        kw["storage_opt"] = {"size": str(parse_size(fixed, "options.disk_size") if fixed else size)}

    def _loop_dir(self, what):
        d = self.target.options.get("loop_dir")
        if not d or not self.target.host.startswith("local://"):
            raise Unsupported(f"target '{self.target.name}': {what} needs options.loop_dir on a local:// host")
        return d

    def create_quota_volume(self, name, size, labels=None):
        how = self.target.options.get("volume_quota", "size-opt")
        labels = dict(labels or {})
        fixed = self.target.options.get("disk_size")
        size = parse_size(fixed, "options.disk_size") if fixed else size
        if how == "size-opt":
            try:
                self._call(f"create volume {name}", self.client.api.create_volume, name,
                           driver_opts={"size": str(size)}, labels=labels)
            except RuntimeFailure as e:
                # e.g. overlay2 here: "quota size requested but no quota support"
                raise QuotaUnavailable(f"runtime cannot set a volume quota: {e}") from None
        elif how == "loop-ext4":
            from cutover import looproot
            owner = self._loop_dir("a loop-ext4 volume")
            dev = looproot.make(owner, os.path.join(owner, f"vol-{name}.img"), None, size)
            try:
                self._call(f"create volume {name}", self.client.api.create_volume, name,
                           driver_opts={"type": "ext4", "device": dev}, labels=dict(labels, **{"cutover.loop": dev}))
            except BaseException:
                looproot.release(owner, os.path.join(owner, f"vol-{name}.img"))
                raise
        else:
            raise CutoverError(f"target '{self.target.name}': options.volume_quota '{how}' is not one of "
                               f"loop-ext4, size-opt")
        return name

    def storage_path(self, cid):
        """The host path of the container's writable layer: what its writes fill."""
        gd = self.inspect(cid).raw.get("GraphDriver") or {}
        data = gd.get("Data") or {}
        if data.get("UpperDir"):                       # overlay2 (and podman's overlay)
            return data["UpperDir"]
        root = self._call("info", self.client.info)["DockerRootDir"]
        if gd.get("Name") == "btrfs" and self.host is not None:
            # The container's subvolume is named by its mount id, which only the data root says.
            f = self.host.file(f"{root}/image/btrfs/layerdb/mounts/{cid}/mount-id")
            if f.exists:
                return f"{root}/btrfs/subvolumes/{f.content_string.strip()}"
        return root

    # Targets-file `options:` -> create() argument. Each is what a site's orchestrator may add
    # to every container: network/pid/ipc/uts "host" share the host's namespace; privileged,
    # cap_add, security_opt, device_cgroup_rules and host binds in volumes ("/sys:/sys:rw")
    # and systempaths: unconfined (writable /proc/sys, nothing masked under /proc)
    # weaken the sandbox (the lab's docker-unsafe target is made of them, to prove the
    # security checks fail); cgroup_parent places containers in a cgroup of the site's (the
    # lab's own subtree). List options come after the container's own entries (e.g.
    # no-new-privileges), so a site's `no-new-privileges=false` overrides them, as an
    # orchestrator's injected options would. default_capabilities is no create() argument:
    # it is the capability set the site documents, which sec.capabilities expects.
    # volumes: binds/volumes ("src:dst[:mode]") mounted into every container, e.g. a host
    # directory kept across releases (the images suite's wrong target). build_cache: false
    # builds without the cache (a CI that always passes --no-cache); alter_after_build
    # ({config: {create_container arguments}, changes: [Dockerfile lines], files: {path: text}})
    # commits an altered image under the tag just built, as a site's post-build rewrite step
    # would: neither is a create() argument.
    OPTIONS = {"volumes": "volumes", "build_cache": None, "alter_after_build": None,
               "network": "network_mode", "pid": "pid_mode", "ipc": "ipc_mode", "uts": "uts_mode",
               "privileged": "privileged", "cap_add": "cap_add", "security_opt": "security_opt",
               "device_cgroup_rules": "device_cgroup_rules", "systempaths": None,
               "cgroup_parent": "cgroup_parent", "default_capabilities": None,
               "disk_quota": None, "disk_size": None, "volume_quota": None, "loop_dir": None,
               # lifecycle self-tests' wrong targets: a site that stops with SIGKILL, or that
               # turned the OOM killer off
               "stop_signal": "stop_signal", "oom_kill_disable": "oom_kill_disable"}

    def _apply_options(self, kw):
        for key, value in self.target.options.items():
            arg = self.OPTIONS.get(key, False)
            if arg is False:
                raise CutoverError(f"target '{self.target.name}': unknown option '{key}' for driver "
                                   f"'{self.name}' (known: {', '.join(sorted(self.OPTIONS))})")
            if arg is None or value is None:
                continue
            if arg in ("cap_add", "security_opt", "volumes", "device_cgroup_rules"):
                value = [value] if isinstance(value, str) else list(value)
                kw[arg] = kw.get(arg, []) + value
            else:
                kw[arg] = value

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

    def reconnect(self):
        if self._client is not None:
            try:
                self._client.close()
            except Exception:
                pass
        self._client = None

    # -- volumes ---------------------------------------------------------------------------
    def create_volume(self, name, labels=None):
        self._call(f"create volume {name}", self.client.api.create_volume, name, labels=labels or {})
        return name

    def remove_volume(self, name):
        try:
            self.client.api.remove_volume(name, force=True)
        except docker.errors.NotFound:
            pass
        except requests.exceptions.ConnectionError as e:
            raise RuntimeFailure(f"remove volume {name}: endpoint unreachable ({_short(e)})") from None
        except docker.errors.APIError as e:
            raise RuntimeFailure(f"remove volume {name}: {_short(e)}") from None
        owner = self.target.options.get("loop_dir")
        if owner and os.path.exists(os.path.join(owner, f"vol-{name}.img")):
            from cutover import looproot      # a loop-ext4 quota volume: free its device too
            looproot.release(owner, os.path.join(owner, f"vol-{name}.img"))

    def list_volumes(self):
        vols = self._call("list volumes", self.client.api.volumes).get("Volumes") or []
        return sorted(v["Name"] for v in vols)

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

    def build(self, context_tar, tag, labels=None, nocache=False):
        import re
        nocache = nocache or self.target.options.get("build_cache") is False

        def run():
            log, image_id, error = [], None, None
            # No network for build steps: everything comes from the context.
            for chunk in self.client.api.build(fileobj=context_tar, custom_context=True, tag=tag,
                                               labels=labels or {}, rm=True, forcerm=True,
                                               nocache=nocache, network_mode="none", decode=True):
                log.append(chunk.get("stream") or "")
                image_id = (chunk.get("aux") or {}).get("ID") or image_id
                error = chunk.get("error") or error
            return "".join(log), image_id, error
        log, image_id, error = self._call(f"build {tag}", run)
        if error or not image_id:
            raise RuntimeFailure(f"build {tag} failed: {(error or 'no image ID in the build output').strip()[:300]}")
        if self.target.options.get("alter_after_build"):
            self._alter(image_id, tag, self.target.options["alter_after_build"])
        # dockerd's classic builder says "Step 2/9 :" and " ---> Using cache"; buildah behind
        # podman's compatible API "STEP 2/9:" and "--> Using cache".
        return BuildResult(id=image_id, steps=len(re.findall(r"^(?:Step|STEP) \d+/\d+ ?:", log, re.M)),
                           cached=len(re.findall(r"--> Using cache", log)), log=log)

    def _alter(self, image_id, tag, how):
        """The `alter_after_build` option: commit a changed copy of the image under its tag."""
        import io
        import tarfile
        from docker.utils import parse_repository_tag
        if not isinstance(how, dict) or set(how) - {"config", "changes", "files"}:
            raise CutoverError(f"target '{self.target.name}': option alter_after_build must be a mapping "
                               f"of config, changes and files")
        # The commit starts from the container's config: `config` (create_container arguments,
        # e.g. stop_signal, healthcheck) changes what commit `changes` cannot.
        conf = dict(how.get("config") or {})
        conf["labels"] = dict(conf.get("labels") or {}, cutover="1")
        cid = self._call("create (alter)", self.client.api.create_container, image_id, **conf)["Id"]
        try:
            buf = io.BytesIO()
            with tarfile.open(fileobj=buf, mode="w") as tar:
                for path, text in (how.get("files") or {}).items():
                    data = str(text).encode()
                    info = tarfile.TarInfo(path.lstrip("/"))
                    info.size, info.mode = len(data), 0o644
                    tar.addfile(info, io.BytesIO(data))
            if buf.tell():
                self._call("copy files (alter)", self.client.api.put_archive, cid, "/", buf.getvalue())
            repo, tg = parse_repository_tag(tag)
            self._call("commit (alter)", self.client.api.commit, cid, repository=repo, tag=tg,
                       changes=list(how.get("changes") or []))
        finally:
            self.remove(cid)

    def inspect_image(self, ref):
        a = self._call(f"inspect image {ref}", self.client.api.inspect_image, ref)
        return ImageInfo(id=a["Id"], repo_tags=a.get("RepoTags") or [], repo_digests=a.get("RepoDigests") or [],
                         config=a.get("Config") or {}, layers=(a.get("RootFS") or {}).get("Layers") or [],
                         raw=a)

    def image_history(self, ref):
        return [{"id": h.get("Id"), "created_by": h.get("CreatedBy"), "size": h.get("Size")}
                for h in self._call(f"history {ref}", self.client.api.history, ref)]

    def tag_image(self, ref, repo, tag):
        self._call(f"tag {ref} {repo}:{tag}", self.client.api.tag, ref, repo, tag, force=True)

    def _stream(self, what, stream):
        """Consume a push/pull/load progress stream: (its messages, the runtime's error or None)."""
        msgs, error = [], None
        for chunk in stream:
            error = chunk.get("error") or error
            msgs.append(chunk)
        return msgs, error

    def push_image(self, repo, tag):
        msgs, error = self._call(f"push {repo}:{tag}", lambda: self._stream(
            "push", self.client.api.push(repo, tag=tag, stream=True, decode=True)))
        # dockerd says it twice: an aux record and "<tag>: digest: sha256:... size: N"; podman's
        # compatible API only in the status line.
        digest = next((m["aux"]["Digest"] for m in msgs if "Digest" in (m.get("aux") or {})), None) or \
            next((d.group(1) for m in msgs for d in [re.search(r"\bdigest: (sha256:[0-9a-f]{64})\b",
                                                                 str(m.get("status") or ""))] if d), None)
        if error or not digest:
            raise RuntimeFailure(f"push {repo}:{tag}: {(error or 'no digest acknowledged').strip()[:300]}")
        return digest

    def pull_image(self, ref):
        msgs, error = self._call(f"pull {ref}", lambda: self._stream(
            "pull", self.client.api.pull(ref, stream=True, decode=True)))
        if error:
            raise PullFailed(f"pull {ref}: {error.strip()[:300]}")
        return self.inspect_image(ref).id

    def save_image(self, ref):
        return self._call(f"save {ref}", lambda: b"".join(self.client.api.get_image(ref)))

    def load_image(self, data):
        msgs, error = self._call("load", lambda: self._stream("load", self.client.api.load_image(data)))
        if error:
            raise RuntimeFailure(f"load: {error.strip()[:300]}")
        out = []
        for m in msgs:
            line = (m.get("stream") or "").strip()
            for prefix in ("Loaded image ID: ", "Loaded image: "):
                if line.startswith(prefix):
                    out.append(line[len(prefix):])
        return out

    def remove_image(self, ref):
        try:
            self.client.api.remove_image(ref, force=True)
        except docker.errors.ImageNotFound:
            pass

    def list_images(self, labels=None):
        filters = {"label": [f"{k}={v}" for k, v in labels.items()]} if labels else None
        return sorted(i.id for i in self._call("list images", self.client.images.list, filters=filters))


def _short(e):
    s = str(getattr(e, "explanation", None) or e).strip().splitlines()
    return (s[0] if s else type(e).__name__)[:300]


def unsupported_reason(e):
    return str(e)


__all__ = ["DockerDriver", "Unsupported"]
