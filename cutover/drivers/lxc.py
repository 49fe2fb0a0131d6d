"""The LXC driver: LXC 5 tools (lxc-create, lxc-start, lxc-attach, ...) run on the target's host.

Every command goes through the testinfra host of the target (`host.run`), wrapped in
`timeout`, so the driver works on `local://` and over ssh alike. The target's endpoint is
`lxc:///<lxcpath>`: the directory that holds the containers (`lxc-* -P <lxcpath>`).

What LXC is, in the terms the checks ask about:
- No management daemon. Each container has its own monitor process (`[lxc monitor]`), the
  parent of its init; killing the monitor kills the container. There is nothing to stop,
  restart or upgrade without touching containers, so daemon checks are 'unsupported'.
- No labels. A container's labels, image and command are recorded in
  `<lxcpath>/<name>/cutover.json` next to its LXC config; names start with `cutover-` and carry
  the run id, so leftovers are recognisable even without that file.
- No images. An "image" is a rootfs directory on the host,
  `<lxcpath>/.cutover/images/<ref>/rootfs`; `build_image` only unpacks the probe image's
  `FROM scratch` + `COPY rootfs/ /` context into it (anything else is 'unsupported'), and
  containers are created from it by a small lxc-create template that copies it.
- Disk quota: with `allocation.disk`, the root is a per-container loop ext4 file system
  (`lxc-create -B loop --fssize`), so `df /` is the quota (less ext4's own overhead).
- Volumes are directories under `<lxcpath>/.cutover/volumes`, bind-mounted; a quota'd volume
  is a loop ext4 file system mounted there.
- `spec.init` starts the container with lxc-execute, whose PID 1 is LXC's own lxc-init.
- No restart policy; no exit status: LXC keeps neither the init's exit code nor an OOM kill
  once it stopped (lxc-monitor only broadcasts WEXITSTATUS while listening), so `exit_code`
  and `oom_killed` are None (unknown).
- LXCFS: the lxcfs mount hook of Debian's lxcfs package, rewritten for the target's lxcfs
  mount point (the packaged hook hard-codes /var/lib/lxcfs), plus `lxc.autodev`.
"""
import base64
import datetime
import gzip
import hashlib
import io
import json
import re
import secrets
import shlex
import tarfile
import time

from cutover.drivers.base import (ContainerState, Driver, ExecResult, RuntimeFailure,
                                  Unsupported)
from cutover.errors import CutoverError, RuntimeTimeout
from cutover.looproot import LOCK

PACKAGED_HOOK = "/usr/share/lxcfs/lxc.mount.hook"
COMMON_CONF = "/usr/share/lxc/config/common.conf"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
EOF_MARK = "CUTOVER_EOF_7f3a"
CHUNK = 96 * 1024            # base64 bytes per host command (argv strings max out at 128 KiB)

TEMPLATE = """#!/bin/sh
# lxc-create template of Cutover: copy a rootfs directory (an "image") into the new container.
set -e
image=; rootfs=
for a; do case "$a" in --rootfs=*) rootfs=${a#--rootfs=};; --image=*) image=${a#--image=};; esac; done
[ -n "$rootfs" ] && [ -d "$image/rootfs" ] || { echo "cutover template: no image at '$image'" >&2; exit 1; }
cp -a "$image/rootfs/." "$rootfs/"
"""

NOT_RUNNING = "cutover: container is not running"
SIGNALS = {"HUP": 1, "INT": 2, "QUIT": 3, "KILL": 9, "USR1": 10, "USR2": 12, "TERM": 15, "PWR": 30}


def _q(s):
    return shlex.quote(str(s))


def safe_ref(ref):
    """An image reference as a directory name: cutover/probe:1 -> cutover_probe_1."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", ref)


def signal_name(sig):
    s = str(sig).upper().removeprefix("SIG")
    if s.isdigit():
        for name, num in SIGNALS.items():
            if num == int(s):
                return name
    if s not in SIGNALS:
        raise RuntimeFailure(f"unknown signal {sig!r}")
    return s


def resolve_user(passwd_group, user):
    """(uid, gid, home) for 'name', 'uid', 'name:group' or 'uid:gid', from passwd + group text."""
    rows = [l.split(":") for l in passwd_group.splitlines() if l.count(":") >= 2]
    users = [r for r in rows if len(r) >= 7]
    groups = [r for r in rows if len(r) == 4]
    name, _, group = str(user).partition(":")
    pw = next((r for r in users if r[0] == name or r[2] == name), None)
    if pw is None and not name.isdigit():
        return None
    uid, gid, home = (int(pw[2]), int(pw[3]), pw[5]) if pw else (int(name), int(name), "/")
    if group:
        gr = next((r for r in groups if r[0] == group or r[2] == group), None)
        if gr is None and not group.isdigit():
            return None
        gid = int(gr[2]) if gr else int(group)
    return uid, gid, home


def container_config(name, lxcpath, spec, hook=None, cgroup_dir=None, cgroup_v2=False, memsw=True,
                     volumes_dir=None, init_ids=None, extra=()):
    """The LXC config of one container (pure: the unit tests read it)."""
    d = f"{lxcpath}/{name}"
    lines = [f"# Written by Cutover's lxc driver for {name}",
             f"lxc.include = {COMMON_CONF}",
             # common.conf.d adds the hooks of a system lxcfs on /var/lib/lxcfs: clear them, so a
             # container gets the target's lxcfs or none at all, never one by accident.
             "lxc.hook.mount =", "lxc.hook.post-stop ="]
    if hook:
        lines += [f"lxc.hook.mount = {hook}"]
    lines += ["lxc.autodev = 1",
              # autodev makes no /dev/shm; applications (and docker) expect a 64 MiB tmpfs there.
              "lxc.mount.entry = tmpfs dev/shm tmpfs rw,nosuid,nodev,size=65536k,create=dir 0 0",
              "lxc.net.0.type = empty",            # loopback only, like the lab's dockerd
              f"lxc.signal.halt = SIG{signal_name(spec.stop_signal or 'TERM')}",
              f"lxc.console.logfile = {d}/console.log"]
    if cgroup_dir:
        lines += [f"lxc.cgroup.dir = {cgroup_dir}"]
    a = spec.allocation
    if a is not None:
        if cgroup_v2:
            cg = [("memory.max", a.memory), ("memory.swap.max", 0)]
            cg += [("cpuset.cpus", a.cpuset)] if a.cpuset else []
            cg += [("cpu.max", f"{int(a.cpus * 100000)} 100000")] if a.cpus else []
            cg += [("pids.max", a.pids)] if a.pids else []
            lines += [f"lxc.cgroup2.{k} = {v}" for k, v in cg]
        else:
            # T4 gives memory without extra swap: memory+swap == memory (set after memory).
            cg = [("memory.limit_in_bytes", a.memory)]
            cg += [("memory.memsw.limit_in_bytes", a.memory)] if memsw else []
            cg += [("cpuset.cpus", a.cpuset)] if a.cpuset else []
            cg += [("cpu.cfs_period_us", 100000), ("cpu.cfs_quota_us", int(a.cpus * 100000))] if a.cpus else []
            cg += [("pids.max", a.pids)] if a.pids else []
            lines += [f"lxc.cgroup.{k} = {v}" for k, v in cg]
    if getattr(spec, "no_new_privileges", False):
        lines += ["lxc.no_new_privs = 1"]
    if init_ids:
        lines += [f"lxc.init.uid = {init_ids[0]}", f"lxc.init.gid = {init_ids[1]}"]
    for k, v in sorted((spec.env or {}).items()):
        lines += [f"lxc.environment = {k}={v}"]
    for vol, path in sorted((spec.volumes or {}).items()):
        lines += [f"lxc.mount.entry = {volumes_dir}/{safe_ref(vol)}/data {path.lstrip('/')} none bind,create=dir 0 0"]
    lines += list(extra)
    return "\n".join(lines) + "\n"


def _epoch_iso(epoch):
    if epoch is None:
        return None
    return datetime.datetime.fromtimestamp(epoch, datetime.timezone.utc).isoformat().replace("+00:00", "Z")


# Held around every loop device allocation of Cutover's (see cutover.looproot.LOCK), on the
# target's host: lxc-create/lxc-start with `-B loop` and `mount -o loop` of a quota'd volume.
LOOP_LOCK = f"flock -w 120 {LOCK} "


class LxcDriver(Driver):
    name = "lxc"
    # No "daemon", "restart-policy" or "image-build": checks needing them report 'unsupported'.
    capabilities = frozenset({"daemonless", "pause", "logs"})
    disk_quota = "loop ext4 root per container (lxc-create -B loop --fssize)"
    # Targets-file options: cgroup_dir -> lxc.cgroup.dir (LXC names <dir>/lxc.payload.<name>);
    # config -> LXC config lines appended to every container's config (site-specific settings).
    OPTIONS = ("cgroup_dir", "config")

    def __init__(self, target, host=None, timeout=30):
        super().__init__(target, host, timeout)
        ep = target.endpoint
        if not ep.startswith("lxc:///"):
            raise CutoverError(f"target '{target.name}': endpoint '{ep}' must be lxc:///<lxcpath>")
        self.lxcpath = ep[len("lxc://"):].rstrip("/")
        bad = set(target.options) - set(self.OPTIONS)
        if bad:
            raise CutoverError(f"target '{target.name}': unknown option '{sorted(bad)[0]}' for driver 'lxc' "
                               f"(known: {', '.join(sorted(self.OPTIONS))})")
        if not isinstance(target.options.get("config", []), list):
            raise CutoverError(f"target '{target.name}': options.config must be a list of LXC config lines")
        self.support = f"{self.lxcpath}/.cutover"
        if self.host is None:
            import testinfra
            opts = target.host_options() if hasattr(target, "host_options") else {}
            self.host = testinfra.get_host(target.host, **opts)
        self._facts = None
        self._ready = False
        self._users = {}         # cid -> its /etc/passwd + /etc/group
        self._metas = {}         # cid -> its cutover.json

    # -- running things on the host ------------------------------------------------------
    def _run(self, script, what, timeout=None):
        """Run a shell script on the host within timeout seconds; the CommandResult."""
        t = int(timeout or self.timeout)
        t0 = time.monotonic()
        try:
            res = self.host.run(f"timeout -k 5 {t} sh -c {_q(script)}")
        except Exception as e:   # ssh trouble and the like
            raise RuntimeFailure(f"{what} on target '{self.target.name}': host {self.target.host} "
                                 f"unreachable ({str(e).strip().splitlines()[0][:200] if str(e).strip() else type(e).__name__})") from None
        if res.rc in (124, 137) and time.monotonic() - t0 >= t - 0.5:
            raise RuntimeTimeout(f"{what} on target '{self.target.name}' timed out after {t}s")
        return res

    def _ok(self, script, what, timeout=None):
        res = self._run(script, what, timeout)
        if res.rc != 0:
            err = (res.stderr or res.stdout or "").strip().splitlines()
            raise RuntimeFailure(f"{what}: exit {res.rc}: {' | '.join(err[-3:])[-400:]}")
        return res.stdout

    def _lxc(self, cmd, cid):
        return f"{cmd} -n {_q(cid)} -P {_q(self.lxcpath)}"

    def _dir(self, cid):
        return f"{self.lxcpath}/{cid}"

    def storage_path(self, cid):
        """The container's directory: its `-B loop` file (rootdev) or its rootfs is in there."""
        return self._dir(cid)

    # -- facts -------------------------------------------------------------------------
    def facts(self):
        script = f"""
        command -v lxc-start >/dev/null || {{ echo "lxc-start not found (install Debian's lxc)"; exit 4; }}
        [ -d {_q(self.lxcpath)} ] || {{ echo "lxcpath {self.lxcpath} does not exist"; exit 3; }}
        echo "lxc=$(lxc-start --version)"
        echo "ncpu=$(nproc --all)"
        echo "mem_kib=$(awk '/^MemTotal/ {{print $2}}' /proc/meminfo)"
        echo "cgroup2=$( [ -f /sys/fs/cgroup/cgroup.controllers ] && echo 1 || echo 0)"
        echo "memsw=$( [ -e /sys/fs/cgroup/memory/memory.memsw.limit_in_bytes ] && echo 1 || echo 0)"
        echo "kernel=$(uname -r)"
        """
        try:
            res = self._run(script, "facts")
        except (RuntimeFailure, RuntimeTimeout) as e:
            raise CutoverError(f"target '{self.target.name}': {e}") from None
        if res.rc != 0:
            raise CutoverError(f"target '{self.target.name}': {(res.stdout or res.stderr).strip()[:300]}")
        kv = dict(l.split("=", 1) for l in res.stdout.splitlines() if "=" in l)
        self._facts = {
            "runtime": "lxc", "runtime_version": kv.get("lxc"), "oci_runtime": None,
            "storage_driver": "dir (loop ext4 with a disk quota)", "lxcpath": self.lxcpath,
            "cgroup_version": "2" if kv.get("cgroup2") == "1" else "1", "memsw": kv.get("memsw") == "1",
            "live_restore": None, "kernel": kv.get("kernel"),
            "ncpu": int(kv.get("ncpu") or 0) or None,
            "mem_total": int(kv.get("mem_kib") or 0) * 1024 or None,
        }
        return self._facts

    def ping(self):
        return self.facts()

    def _ensure_support(self):
        """The template and the lxcfs hook on the host (once per driver; atomic writes)."""
        if self._ready:
            return
        if self._facts is None:
            self.facts()
        script = f"""set -e
        d={_q(self.support)}; mkdir -p "$d/images" "$d/volumes"
        cat > "$d/template.sh.$$" <<'{EOF_MARK}'
{TEMPLATE}{EOF_MARK}
        chmod 755 "$d/template.sh.$$"; mv -f "$d/template.sh.$$" "$d/template.sh"
        """
        if self.target.lxcfs:
            script += f"""
        [ -f {PACKAGED_HOOK} ] || {{ echo "{PACKAGED_HOOK} not found (install Debian's lxcfs)" >&2; exit 1; }}
        sed 's#/var/lib/lxcfs#{self.target.lxcfs.rstrip('/')}#g' {PACKAGED_HOOK} > "$d/hook.$$"
        chmod 755 "$d/hook.$$"; mv -f "$d/hook.$$" {_q(self._hook_path())}
        """
        self._ok(script, "prepare lxcpath")
        self._ready = True

    def _hook_path(self):
        h = hashlib.sha256(self.target.lxcfs.encode()).hexdigest()[:8]
        return f"{self.support}/lxcfs-{h}.mount.hook"

    # -- containers ----------------------------------------------------------------------
    def create(self, spec):
        if spec.restart and spec.restart != "no":
            self.require("restart-policy", f"restart containers by policy ('{spec.restart}')")
        self._ensure_support()
        run = re.sub(r"[^A-Za-z0-9-]", "", (spec.labels or {}).get("cutover.run", "")) or "norun"
        name = spec.name or f"cutover-{secrets.token_hex(3)}-{run}"
        image = f"{self.support}/images/{safe_ref(spec.image)}"
        opts = self.target.options
        init_ids = None
        if spec.user:
            users = self._run(f"cat {_q(image)}/rootfs/etc/passwd {_q(image)}/rootfs/etc/group",
                              f"read users of image {spec.image}").stdout
            init_ids = resolve_user(users, spec.user)
            if init_ids is None:
                raise RuntimeFailure(f"user '{spec.user}' not found in image {spec.image}")
        conf = container_config(
            name, self.lxcpath, spec,
            hook=self._hook_path() if spec.lxcfs and self.target.lxcfs else None,
            cgroup_dir=opts.get("cgroup_dir"), cgroup_v2=self._facts["cgroup_version"] == "2",
            memsw=self._facts["memsw"], volumes_dir=f"{self.support}/volumes",
            init_ids=init_ids, extra=opts.get("config") or ())
        meta = {"name": name, "labels": dict(spec.labels or {}), "image": spec.image,
                "command": list(spec.command or ["/bin/sh"]), "env": dict(spec.env or {}),
                "user": spec.user, "init": bool(spec.init), "created": time.time(),
                "allocation": spec.allocation.as_dict() if spec.allocation else None}
        # A disk quota: a loop ext4 root of that size. tune2fs -m 0 (below): root in a container
        # lacks CAP_SYS_RESOURCE, so ext4's 5% root reserve is space df counts but no one can use.
        backing = ""
        a = spec.allocation
        if a is not None and a.disk:
            backing = f"-B loop --fssize {max(1, a.disk // 2**20)}M"
        # The hook skips a missing lxcfs silently: say so instead of creating a blind container.
        lxcfs_guard = ":"
        if spec.lxcfs and self.target.lxcfs:
            mi = _q(self.target.lxcfs.rstrip("/") + "/proc/meminfo")
            lxcfs_guard = f'[ -f {mi} ] || {{ echo "lxcfs is not mounted at {self.target.lxcfs} on this host" >&2; exit 3; }}'
        vols = " ".join(f'"$s/volumes/"{_q(safe_ref(v))}/data' for v in (spec.volumes or {}))
        script = f"""set -e
        s={_q(self.support)}
        [ -d {_q(image)}/rootfs ] || {{ echo "image {spec.image} not found (no rootfs at {image})" >&2; exit 3; }}
        {lxcfs_guard}
        {f'mkdir -p {vols}' if vols else ':'}
        cfg="$s/{name}.conf"; trap 'rm -f "$cfg"' EXIT
        cat > "$cfg" <<'{EOF_MARK}'
{conf}{EOF_MARK}
        {LOOP_LOCK if backing else ''}{self._lxc('lxc-create', name)} -f "$cfg" -t "$s/template.sh" {backing} -- --image={_q(image)} >/dev/null
        {f'tune2fs -m 0 {_q(self._dir(name))}/rootdev >/dev/null' if backing else ':'}
        cat > {_q(self._dir(name))}/cutover.json <<'{EOF_MARK}'
{json.dumps(meta, separators=(',', ':'))}
{EOF_MARK}
        """
        try:
            self._ok(script, f"create {name} from {spec.image}", timeout=self.timeout * 4)
        except RuntimeTimeout:
            self._run(self._lxc("lxc-destroy", name) + " -f", "clean up", timeout=self.timeout)
            raise
        return name

    def _meta(self, cid):
        """The container's record (immutable after create, so cached)."""
        if cid not in self._metas:
            out = self._run(f"cat {_q(self._dir(cid))}/cutover.json", f"read {cid}").stdout
            try:
                self._metas[cid] = json.loads(out)
            except ValueError:
                raise RuntimeFailure(f"container {cid} on target '{self.target.name}' not found "
                                     f"(no {self._dir(cid)}/cutover.json)") from None
        return self._metas[cid]

    def start(self, cid):
        meta = self._meta(cid)
        # lxc-execute puts LXC's own init (lxc-init) in as PID 1, which reaps and forwards signals.
        tool = "lxc-execute" if meta.get("init") else "lxc-start"
        argv = " ".join(_q(a) for a in meta["command"])
        d = _q(self._dir(cid))
        # LXC takes a free loop device for a `-B loop` root without retrying when another
        # process takes the same one first ("Failed to set loop fd": EBUSY), so concurrent
        # loop users make lxc-create and lxc-start fail now and then. Cutover's own loop users
        # take LOOP_LOCK (cutover.looproot); a foreign one's race is retried here, and only it.
        self._ok(f"""set -e
        for try in 1 2 3 4 5; do
          : > {d}/lxc.log
          if [ -e {d}/rootdev ]; then lock="{LOOP_LOCK}"; else lock=; fi
          $lock {self._lxc(tool, cid)} -d -l ERROR -o {d}/lxc.log -- {argv} && break
          grep -q 'Failed to set loop fd' {d}/lxc.log && [ $try -lt 5 ] || exit 1
          sleep 0.$try
        done
        touch {d}/cutover.started
        pid=$({self._lxc('lxc-info', cid)} -p -H)
        # Where LXC put it and its monitor, so that remove can clear cgroups LXC left behind
        # (a killed monitor, lxc-attach's .lxc leaf, a foreign child at stop time).
        if [ -n "$pid" ]; then
          ppid=$(awk '/^PPid/ {{print $2}}' /proc/$pid/status)
          cat /proc/$pid/cgroup > {d}/cutover.cgroup 2>/dev/null || :
          cat /proc/$ppid/cgroup > {d}/cutover.monitor-cgroup 2>/dev/null || :
        fi
        """, f"start {cid}", timeout=self.timeout * 2)

    def _user_ids(self, cid, user):
        """(uid, gid, home) of 'name', 'uid', 'name:group' or 'uid:gid' in the container."""
        if cid not in self._users:
            out = self._run(self._lxc("lxc-attach", cid) + " --clear-env -- cat /etc/passwd /etc/group",
                            f"read users of {cid}").stdout
            self._users[cid] = out
        ids = resolve_user(self._users[cid], user)
        if ids is None:
            raise RuntimeFailure(f"user '{user}' not found in container {cid}")
        return ids

    def exec(self, cid, argv, user=None, timeout=None):
        meta = self._meta(cid)
        uid = gid = None
        home = "/root"
        if user or meta.get("user"):
            uid, gid, home = self._user_ids(cid, user or meta.get("user"))
        env = {"PATH": DEFAULT_PATH, "HOME": home, **meta.get("env", {})}
        envs = " ".join(f"-v {_q(f'{k}={v}')}" for k, v in env.items())
        ids = f"-u {uid} -g {gid}" if uid is not None else ""
        argv = list(argv)
        if timeout:
            argv = ["timeout", "-s", "KILL", str(int(timeout))] + argv
        # lxc-attach waits forever on a frozen container (docker refuses at once): refuse too.
        script = f"""state=$({self._lxc('lxc-info', cid)} -s -H)
        [ "$state" = RUNNING ] || {{ echo "{NOT_RUNNING} ($state)" >&2; exit 255; }}
        exec {self._lxc('lxc-attach', cid)} --clear-env {envs} {ids} -- """ + " ".join(_q(a) for a in argv)
        # The runtime's own bound is the inner timeout; the outer one only catches a hung attach.
        res = self._run(script, f"exec {' '.join(argv)[:60]} in {cid}",
                        timeout=(timeout or self.timeout) + self.timeout)
        if res.rc == 255 and NOT_RUNNING in res.stderr or \
                res.rc == 1 and f"lxc-attach: {cid}: " in res.stderr and "attach context" in res.stderr:
            raise RuntimeFailure(f"exec in {cid}: container is not running: {res.stderr.strip()[-200:]}")
        return ExecResult(argv, res.rc, res.stdout, res.stderr)

    def exec_detached(self, cid, argv):
        script = 'exec "$@" </dev/null >/dev/null 2>&1 &'
        res = self.exec(cid, ["sh", "-c", script, "sh", *argv])
        if res.exit_code != 0:
            raise RuntimeFailure(f"exec -d in {cid}: exit {res.exit_code}: {res.stderr.strip()[:200]}")

    def inspect(self, cid):
        d = _q(self._dir(cid))
        script = f"""
        [ -f {d}/config ] || {{ echo "no such container"; exit 3; }}
        {self._lxc('lxc-info', cid)} -s -p
        echo "meta=$(cat {d}/cutover.json 2>/dev/null)"
        [ -f {d}/cutover.started ] && echo "started=1"
        pid=$({self._lxc('lxc-info', cid)} -p -H)
        if [ -n "$pid" ]; then
          echo "starttime=$(cut -d')' -f2 /proc/$pid/stat | awk '{{print $20}}')"
          echo "btime=$(awk '/^btime/ {{print $2}}' /proc/stat)"
          echo "hz=$(getconf CLK_TCK)"
        fi
        """
        res = self._run(script, f"inspect {cid}")
        if res.rc == 3:
            raise RuntimeFailure(f"inspect {cid}: not found on target '{self.target.name}'")
        if res.rc != 0:
            raise RuntimeFailure(f"inspect {cid}: exit {res.rc}: {res.stderr.strip()[:300]}")
        kv = {}
        for line in res.stdout.splitlines():
            k, sep, v = line.partition(":" if ":" in line.split("=")[0] else "=")
            if sep:
                kv[k.strip().lower()] = v.strip()
        meta = json.loads(kv.get("meta") or "{}")
        state = kv.get("state", "UNKNOWN")
        if state == "STOPPED":
            status = "exited" if kv.get("started") else "created"
        else:
            status = {"RUNNING": "running", "FROZEN": "paused"}.get(state, state.lower())
        pid = int(kv.get("pid") or 0)
        started = None
        if pid and kv.get("starttime", "").isdigit():
            started = int(kv["btime"]) + int(kv["starttime"]) / int(kv.get("hz") or 100)
        raw = {"Name": cid, "Config": {"Labels": meta.get("labels", {}), "Image": meta.get("image"),
                                       "Cmd": meta.get("command")},
               "State": {"Status": status, "Pid": pid, "LxcState": state}, "Meta": meta}
        return ContainerState(id=cid, status=status, pid=pid, started_at=_epoch_iso(started),
                              started_epoch=started, exit_code=None, oom_killed=None, raw=raw)

    def stop(self, cid, grace=10):
        # lxc.signal.halt (the spec's stop signal, SIGTERM by default), SIGKILL after grace.
        res = self._run(self._lxc("lxc-stop", cid) + f" -t {int(grace)}", f"stop {cid}",
                        timeout=int(grace) + self.timeout)
        if res.rc not in (0, 2):          # 2: was not running
            raise RuntimeFailure(f"stop {cid}: exit {res.rc}: {res.stderr.strip()[:300]}")

    def kill(self, cid, signal="KILL"):
        sig = signal_name(signal)
        if sig == "KILL":
            self._ok(self._lxc("lxc-stop", cid) + " -k", f"kill {cid}")
            return
        self._ok(f"pid=$({self._lxc('lxc-info', cid)} -p -H); [ -n \"$pid\" ] || "
                 f"{{ echo '{cid} is not running' >&2; exit 1; }}; kill -s {sig} $pid", f"kill -{sig} {cid}")

    def pause(self, cid):
        self._ok(self._lxc("lxc-freeze", cid), f"pause {cid}")

    def unpause(self, cid):
        self._ok(self._lxc("lxc-unfreeze", cid), f"unpause {cid}")

    def logs(self, cid):
        out = self._run(f"cat {_q(self._dir(cid))}/console.log 2>/dev/null", f"logs {cid}").stdout
        return out.replace("\r\n", "\n")          # the console is a pty

    def remove(self, cid, force=True):
        d = _q(self._dir(cid))
        script = f"""
        [ -f {d}/config ] || exit 0
        state=$({self._lxc('lxc-info', cid)} -s -H)
        {'' if force else '[ "$state" = STOPPED ] || { echo "container is $state" >&2; exit 5; }'}
        cg=$(cut -d: -f3 {d}/cutover.cgroup 2>/dev/null | sort -u)
        mon=$(cut -d: -f3 {d}/cutover.monitor-cgroup 2>/dev/null | sort -u)
        [ "$state" = FROZEN ] && {self._lxc('lxc-unfreeze', cid)}
        {self._lxc('lxc-stop', cid)} -k >/dev/null 2>&1
        {self._lxc('lxc-destroy', cid)} -f >/dev/null || exit 1
        # Cgroups LXC left behind; rmdir removes only what is empty. The container's own
        # subtree deepest first; its monitor's cgroup alone, and only if named for a monitor.
        for h in /sys/fs/cgroup/*/ /sys/fs/cgroup/; do
          for p in $cg; do
            [ "$p" != / ] && [ -d "$h${{p#/}}" ] && find "$h${{p#/}}" -depth -type d -exec rmdir {{}} + 2>/dev/null
          done
          for p in $mon; do case "${{p##*/}}" in *monitor*) rmdir "$h${{p#/}}" 2>/dev/null;; esac; done
        done
        exit 0
        """
        self._ok(script, f"remove {cid}", timeout=self.timeout * 2)
        self._users.pop(cid, None)
        self._metas.pop(cid, None)

    def _all_meta(self):
        script = f"""for f in {_q(self.lxcpath)}/*/cutover.json; do
          [ -f "$f" ] && [ -f "${{f%/cutover.json}}/config" ] && {{ tr -d '\\n' < "$f"; echo; }}
        done; exit 0"""
        out = self._ok(script, "list containers")
        metas = []
        for line in out.splitlines():
            try:
                metas.append(json.loads(line))
            except ValueError:
                pass
        return metas

    def list_containers(self, labels):
        out = []
        for m in self._all_meta():
            have = m.get("labels") or {}
            if all(k in have and (v is None or have[k] == v) for k, v in labels.items()):
                out.append(m["name"])
        return out

    # -- volumes: directories bind-mounted into containers -----------------------------------
    def _vol(self, name):
        return f"{self.support}/volumes/{safe_ref(name)}"

    def create_volume(self, name, labels=None):
        self._ensure_support()
        v = self._vol(name)
        self._ok(f"mkdir -p {_q(v)}/data && printf '%s' {_q(json.dumps(labels or {}))} > {_q(v)}/volume.json",
                 f"create volume {name}")
        return name

    def create_quota_volume(self, name, size, labels=None):
        """A loop ext4 file system of `size` bytes, mounted on the volume's data directory."""
        self._ensure_support()
        v = _q(self._vol(name))
        self._ok(f"""set -e
        mkdir -p {v}/data
        truncate -s {int(size)} {v}/volume.img
        mkfs.ext4 -q -F -m 0 -E nodiscard {v}/volume.img
        {LOOP_LOCK}mount -o loop {v}/volume.img {v}/data
        printf '%s' {_q(json.dumps(labels or {}))} > {v}/volume.json
        """, f"create quota volume {name}", timeout=self.timeout * 2)
        return name

    def remove_volume(self, name):
        v = _q(self._vol(name))
        # umount of a `mount -o loop` also frees its loop device (autoclear).
        self._ok(f"if mountpoint -q {v}/data; then umount {v}/data; fi; rm -rf {v}", f"remove volume {name}")

    def list_volumes(self):
        out = self._ok(f"ls -1 {_q(self.support)}/volumes 2>/dev/null; exit 0", "list volumes")
        return sorted(out.split())

    # -- images: rootfs directories -------------------------------------------------------
    def _image_dir(self, ref):
        return f"{self.support}/images/{safe_ref(ref)}"

    def image_exists(self, ref):
        d = _q(self._image_dir(ref))
        return self._run(f"[ -d {d}/rootfs ] && [ -f {d}/image.json ]", f"look up image {ref}").rc == 0

    def build_image(self, context_tar, tag, labels=None, nocache=False):
        """Unpack a `FROM scratch` + `COPY rootfs/ /` context into the image's rootfs directory."""
        data = context_tar.read()
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            try:
                dockerfile = tar.extractfile("Dockerfile").read().decode()
            except KeyError:
                dockerfile = ""
        steps = [l.split(None, 1) for l in dockerfile.splitlines() if l.strip() and not l.startswith("#")]
        plain = steps and steps[0] == ["FROM", "scratch"] and \
            all(s[0] in ("LABEL", "CMD") or s == ["COPY", "rootfs/ /"] for s in steps[1:])
        if not plain:
            raise Unsupported(f"driver 'lxc' of target '{self.target.name}' cannot build images: it only turns "
                              "a FROM scratch + COPY rootfs/ / context into a rootfs directory")
        self._ensure_support()
        digest = "sha256:" + hashlib.sha256(data).hexdigest()
        blob = base64.b64encode(gzip.compress(data, mtime=0)).decode()
        inc = f"{self.support}/images/.incoming-{secrets.token_hex(4)}"
        for i in range(0, len(blob), CHUNK):
            self._ok(f"printf '%s' {_q(blob[i:i + CHUNK])} >> {_q(inc)}.b64", f"upload {tag}")
        d = _q(self._image_dir(tag))
        info = json.dumps({"tag": tag, "id": digest, "labels": labels or {}, "created": time.time()})
        self._ok(f"""set -e
        trap 'rm -rf {_q(inc)}.b64 {_q(inc)}' EXIT
        mkdir -p {_q(inc)}/rootfs
        base64 -d {_q(inc)}.b64 | gzip -dc | tar -x -C {_q(inc)}/rootfs --strip-components=1 rootfs
        chmod 755 {_q(inc)}/rootfs
        printf '%s' {_q(info)} > {_q(inc)}/image.json
        rm -rf {d}; mv {_q(inc)} {d}
        """, f"unpack {tag}", timeout=self.timeout * 2)
        return digest

    def remove_image(self, ref):
        self._ok(f"rm -rf {_q(self._image_dir(ref))}", f"remove image {ref}")

    def list_images(self):
        out = self._ok(f"cat {_q(self.support)}/images/*/image.json 2>/dev/null | tr '}}' '\\n'; exit 0",
                       "list images")
        return sorted(set(re.findall(r'"id": "([^"]+)"', out)))
