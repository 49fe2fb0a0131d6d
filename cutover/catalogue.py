"""The catalogue of checks: one stable ID per T4 promise tested.

This is the single source of a check's identity. Suites refer to a check by ID
(`@pytest.mark.check("vis.meminfo")`), and waivers, baselines, reports and the gate
refer to the same IDs. The gate reads this module to know which checks a run owes,
so it must stay free of pytest and of runtimes.
"""
from dataclasses import dataclass, asdict

PROMISES = {
    "visibility": "Inside a container, what you see is what you were given.",
    "disk-quota": "The disk a container sees is its quota, and the quota holds.",
    "daemon-independence": "The management daemon can stop, die or be upgraded; no container notices.",
    "image-release": "An image holds the application; the same image gives the same files everywhere.",
    "coexistence": "Two runtimes run side by side on one host without disturbing each other.",
    "isolation": "A container cannot see or touch the host or its neighbours.",
}

SEVERITIES = ("critical", "major", "minor")


@dataclass(frozen=True)
class Check:
    id: str
    title: str
    promise: str
    severity: str
    suite: str
    rationale: str

    def as_dict(self):
        return asdict(self)


def _c(id, title, promise, severity, suite, rationale):
    assert promise in PROMISES and severity in SEVERITIES
    return Check(id, title, promise, severity, suite, rationale)


CHECKS = {c.id: c for c in [
    _c("vis.meminfo", "/proc/meminfo shows the memory limit", "visibility", "critical",
       "isolation/visibility",
       "Applications size caches and heaps from MemTotal/MemAvailable; the host's figure makes them overcommit."),
    _c("vis.sysinfo-memory", "free (sysinfo()) shows the memory limit", "visibility", "major",
       "isolation/visibility",
       "Runtimes such as the JVM and glibc ask sysinfo(), not /proc/meminfo."),
    _c("vis.top-memory", "top shows the memory limit", "visibility", "minor",
       "isolation/visibility",
       "Operators look at top inside an instance; it must show the instance, not the host."),
    _c("vis.cpuinfo", "/proc/cpuinfo lists the allocated CPUs", "visibility", "critical",
       "isolation/visibility",
       "Thread pools are sized from the processors listed in /proc/cpuinfo."),
    _c("vis.proc-stat-cpus", "/proc/stat has one cpuN line per allocated CPU", "visibility", "major",
       "isolation/visibility",
       "Monitoring agents compute CPU usage from /proc/stat; host CPUs skew it."),
    _c("vis.cpu-online", "/sys/devices/system/cpu/online lists the allocated CPUs", "visibility", "major",
       "isolation/visibility",
       "glibc's get_nprocs() and many runtimes read the online CPU list."),
    _c("vis.nproc", "nproc (sched_getaffinity()) gives the allocated CPUs", "visibility", "major",
       "isolation/visibility",
       "Go, Java and OpenMP size themselves from the affinity mask."),
    _c("vis.proc-uptime", "/proc/uptime is the container's age", "visibility", "minor",
       "isolation/visibility",
       "T4 instances report their own uptime; host uptime confuses restart detection."),
    _c("vis.uptime-cmd", "uptime (sysinfo()) is the container's age", "visibility", "minor",
       "isolation/visibility",
       "The uptime command asks sysinfo(), which lxcfs does not virtualize."),
    _c("vis.loadavg", "/proc/loadavg is the container's own load", "visibility", "major",
       "isolation/visibility",
       "Load-based autoscalers and health checks must not react to a neighbour's load."),
    _c("vis.uptime-load", "uptime's load average (sysinfo()) is the container's own", "visibility", "minor",
       "isolation/visibility",
       "Scripts read the load from uptime, i.e. from sysinfo()."),
    _c("vis.diskstats", "/proc/diskstats shows only the container's own I/O", "visibility", "minor",
       "isolation/visibility",
       "I/O dashboards inside an instance must not show the host's disks' traffic."),
    _c("vis.swaps", "/proc/swaps shows no host swap device", "visibility", "minor",
       "isolation/visibility",
       "The host's swap devices are not the container's to see or use."),
    _c("vis.net-dev", "/proc/net/dev lists only the container's interfaces", "visibility", "major",
       "isolation/visibility",
       "Network agents must not see (or count) the host's interfaces."),
]}


# -- lifecycle: daemon independence (conformance/lifecycle/) ----------------------------------
# One pair of checks per daemon event: .live for the containers that were running or paused,
# .stopped for those that were created or exited (plus the image and volume lists).
_DAEMON_EVENTS = {
    "daemon-stop": "a graceful daemon stop (SIGTERM) + start",
    "daemon-kill": "a daemon SIGKILL + start",
    "containerd-kill": "a SIGKILL of the runtime's containerd + its recovery",
    "daemon-upgrade": "a daemon upgrade (stop, start with a changed configuration)",
}
_LIFECYCLE = [c for event, what in _DAEMON_EVENTS.items() for c in (
    _c(f"life.{event}.live", f"Running and paused containers survive {what}", "daemon-independence",
       "critical", "lifecycle/daemon-events",
       "T4 upgrades and restarts its daemon under running instances: each keeps its PID, state, "
       "exec (as root and as another user) and every log line, is not restarted, and stop, rm "
       "and its mounts behave as before."),
    _c(f"life.{event}.stopped", f"Created and exited containers, images and volumes are unchanged by {what}",
       "daemon-independence", "major", "lifecycle/daemon-events",
       "An instance an operator stopped must stay stopped, with its exit code and logs, and "
       "nothing the daemon stores may change across its restart."),
)] + [
    _c("life.lxcfs-restart", "Running containers' /proc stays readable across an LXCFS restart",
       "daemon-independence", "critical", "lifecycle/lxcfs",
       "LXCFS is part of the T4-like stack; upgrading or restarting it must not break /proc "
       "(\"Transport endpoint is not connected\") in every running container."),
    _c("life.stop-grace", "stop sends SIGTERM and sends SIGKILL only after the grace period",
       "daemon-independence", "major", "lifecycle/semantics",
       "Applications drain on SIGTERM within T4's grace period; an early SIGKILL loses work."),
    _c("life.exit-codes", "Exit codes 0, 137 and 143 are reported as the process ended",
       "daemon-independence", "major", "lifecycle/semantics",
       "Release tooling and alerts decide from the exit code whether an instance ended cleanly, "
       "was killed (137) or was terminated (143)."),
    _c("life.oom-kill", "An out-of-memory kill is reported as such", "daemon-independence", "major",
       "lifecycle/semantics",
       "Operators must tell an instance that ran out of its memory allocation from one that crashed."),
]
CHECKS.update({c.id: c for c in _LIFECYCLE})


# -- coexistence: two runtimes on one host (conformance/isolation/test_coexistence.py) ---------
# Parametrized over a pair of targets (--pair A,B); the record's target is 'A+B'.
_COEXISTENCE = [
    _c("coex.allocation", "Side by side, each runtime's container sees its own allocation", "coexistence",
       "critical", "isolation/coexistence",
       "During a gray release both runtimes run instances on one host; each instance must still "
       "see exactly what it was given (/proc/meminfo, online CPUs), not its neighbour's limits."),
    _c("coex.cgroup-paths", "The two runtimes' container cgroups neither coincide nor nest", "coexistence",
       "critical", "isolation/coexistence",
       "A runtime whose containers land inside the other's cgroup shares its limits and accounting "
       "and is killed with it."),
    _c("coex.accounting", "CPU time and memory are charged to the container that used them", "coexistence",
       "major", "isolation/coexistence",
       "Billing, autoscaling and OOM decisions read a container's own cgroup counters; a neighbour's "
       "burst must not show in them."),
    _c("coex.daemon-restart", "Restarting one runtime's daemon leaves the other's containers alone",
       "coexistence", "critical", "isolation/coexistence",
       "Upgrading Docker on a host mid-migration must not stop, restart or break T4/LXC instances "
       "next to it (same init PID, still running, /proc still readable)."),
]
CHECKS.update({c.id: c for c in _COEXISTENCE})

# -- images: image-based release (conformance/images/) ----------------------------------------
# One multi-layer app image per target (FROM scratch + busybox-static, see cutover/images.py);
# each check compares what a container shows with what the image really holds or declares.
_IMAGES = [
    _c("img.rootfs", "A new container's root tree is exactly the image's", "image-release", "critical",
       "images/build",
       "The image holds the application and its whole environment: a container must show those "
       "files and nothing else (the tree computed from the image's own layers)."),
    _c("img.env", "ENV is in every process's environment", "image-release", "major", "images/build",
       "Configuration shipped in the image must reach the application, in PID 1 and in exec."),
    _c("img.workdir", "WORKDIR is the working directory", "image-release", "major", "images/build",
       "Applications open relative paths from the directory the image declares."),
    _c("img.user", "USER is the user processes run as", "image-release", "critical", "images/build",
       "An image that drops root must not run as root (and file ownership must match)."),
    _c("img.entrypoint-cmd", "ENTRYPOINT and CMD start the application", "image-release", "critical",
       "images/build",
       "PID 1 must be the image's entrypoint with the image's default arguments."),
    _c("img.labels", "LABELs are on the image and its containers", "image-release", "minor", "images/build",
       "Inventory and release tooling read the version and owner from labels."),
    _c("img.expose", "EXPOSE declares exactly the image's ports", "image-release", "minor", "images/build",
       "Service discovery and firewall tooling read the declared ports from the config."),
    _c("img.stopsignal", "STOPSIGNAL is the signal a stop sends", "image-release", "major", "images/build",
       "Applications that drain on a specific signal lose work when sent another."),
    _c("img.healthcheck", "HEALTHCHECK runs the image's command and reports healthy", "image-release",
       "major", "images/build",
       "Rollouts wait for instances to report healthy through the image's own check."),
    _c("img.whiteout", "A file deleted in a later layer is invisible", "image-release", "critical",
       "images/build",
       "Secrets and stale files removed in a later layer must never reappear at run time."),
    _c("img.opaque-dir", "A directory replaced in a later layer hides the lower content", "image-release",
       "major", "images/build",
       "A replaced configuration directory must not mix old and new files."),
    _c("img.build-cache", "An unchanged rebuild comes from the cache, with the same image ID",
       "image-release", "major", "images/build",
       "An unchanged source must give the same image, so a release pipeline does not roll "
       "every host for nothing."),
    _c("img.rebuild-reproducible", "A --no-cache rebuild gives the same image ID (advisory)",
       "image-release", "minor", "images/build",
       "Reproducible images let anyone verify what a release contains; dockerd's classic "
       "builder stamps creation times, so this is an observation, not a gate."),
    _c("img.immutable", "Nothing written in a container survives its destruction", "image-release",
       "critical", "images/release",
       "T4's release destroys the old container: a new one from the same image starts from the "
       "image's files alone."),
    _c("img.release", "A release to a new image version gives exactly the new image's files",
       "image-release", "critical", "images/release",
       "After a release nothing of the old version or of what it wrote may remain."),
    _c("img.save-load", "A save/load round trip keeps the image ID", "image-release", "major",
       "images/distribution",
       "Images moved between hosts as files must arrive as the same image (loaded where the "
       "image was not: another daemon, or this one after its removal)."),
    _c("img.push-pull", "Push then pull on another daemon gives the same image ID and digest",
       "image-release", "critical", "images/distribution",
       "The same image, pulled anywhere, must be the same image (a daemon that does not hold it)."),
    _c("img.tamper-layer", "A layer blob tampered with in the registry never gives another image",
       "image-release", "critical", "images/distribution",
       "Corrupted or tampered layers must be refused with a digest error, never run: a layer "
       "flipped in place, and one rewritten with its config and manifest under the tag (only a "
       "site that pulls by digest can tell that one)."),
    _c("img.tamper-manifest", "A manifest tampered with in the registry never gives another image",
       "image-release", "major", "images/distribution",
       "A registry whose storage serves another image's manifest under a tag must not make "
       "hosts run that other image silently."),
    _c("img.portable", "An image built by one target runs the same on every target", "image-release",
       "critical", "images/portability",
       "During a gradual migration the same image runs on old and new runtimes and on every "
       "host: same files, same behaviour."),
]
CHECKS.update({c.id: c for c in _IMAGES})


# -- security isolation (conformance/isolation/test_security.py) ------------------------------
_SEC = "isolation/security"
_SECURITY = [
    _c("sec.capabilities", "Effective capabilities are the documented default set", "isolation", "critical",
       _SEC, "An extra capability (SYS_ADMIN, SYS_PTRACE, ...) is a way out of the container; a missing "
       "one breaks applications that T4 ran (ping needs NET_RAW)."),
    _c("sec.seccomp", "A seccomp filter is on", "isolation", "critical", _SEC,
       "The default seccomp profile blocks the system calls behind most container escapes (keyctl, "
       "unshare, mount, bpf)."),
    _c("sec.no-new-privs", "no_new_privs holds where a container asks for it", "isolation", "major", _SEC,
       "Sites run application containers with no-new-privileges so that a setuid binary cannot raise "
       "privileges; the runtime must apply it to the main process and to every exec'd one."),
    _c("sec.ns-pid", "The PID namespace is private", "isolation", "critical", _SEC,
       "In the host's PID namespace a container can signal and trace the host's processes."),
    _c("sec.ns-ipc", "The IPC namespace is private", "isolation", "major", _SEC,
       "Shared memory and semaphores of the host or neighbours must not be reachable."),
    _c("sec.ns-uts", "The UTS namespace is private", "isolation", "minor", _SEC,
       "A container that can set the host's hostname confuses monitoring and clustering."),
    _c("sec.ns-mnt", "The mount namespace is private and the host's is unreachable", "isolation", "critical",
       _SEC, "A process in (or able to reach) the host's mount namespace sees and changes the host's "
       "file systems."),
    _c("sec.ns-net", "The network namespace is private", "isolation", "critical", _SEC,
       "In the host's network namespace a container can bind the host's ports and sniff its traffic."),
    _c("sec.host-processes", "The host's processes are invisible", "isolation", "critical", _SEC,
       "ps inside a container must show only the container's processes, not the host's or the runtime's."),
    _c("sec.proc-sys-ro", "/proc/sys is read-only", "isolation", "critical", _SEC,
       "Kernel tunables under /proc/sys are host-wide: a container must not change them."),
    _c("sec.sys-ro", "/sys is read-only", "isolation", "major", _SEC,
       "Device and kernel attributes under /sys are the host's."),
    _c("sec.devices", "Device nodes beyond the default set cannot be opened", "isolation", "critical", _SEC,
       "Opening the host's disk or /dev/mem reads (and writes) everything on the host."),
    _c("sec.release-agent", "A cgroup release_agent write is refused", "isolation", "critical", _SEC,
       "The cgroup v1 release_agent runs a program as root on the host: the classic container escape."),
    _c("sec.neighbour-files", "One container cannot read another's files", "isolation", "critical", _SEC,
       "Neighbours on one host hold each other's secrets; /proc/<pid>/root and shared /dev/shm or /tmp "
       "must not reach them."),
]
CHECKS.update({c.id: c for c in _SECURITY})


# -- disk quota (conformance/isolation/test_disk_quota.py), one run per --quotas size ----------
_DQ = "isolation/disk-quota"
_DISK_QUOTA = [
    _c("dq.df-root", "df / shows the disk quota", "disk-quota", "critical", _DQ,
       "Applications and operators size logs and caches from df /; the host's or a shared pool's "
       "size makes them plan for space the container cannot have."),
    _c("dq.df-volume", "df of a quota'd volume shows its quota", "disk-quota", "major", _DQ,
       "Data volumes are sized by the same quota contract as the root file system."),
    _c("dq.write-limit", "Writing past the quota fails with ENOSPC or EDQUOT, not sooner", "disk-quota",
       "critical", _DQ,
       "A full container must fail cleanly at its quota, and must get all of it: an early limit "
       "is a lost allocation, a missing one fills the host."),
    _c("dq.rewrite-after-delete", "After deleting a file the container can write again", "disk-quota",
       "major", _DQ,
       "Log rotation frees space; the quota must give it back (no leaked accounting)."),
    _c("dq.neighbours", "Two containers each get their own quota; filling one leaves the other's",
       "disk-quota", "critical", _DQ,
       "Neighbours on one host must not share or steal each other's disk allocation."),
    _c("dq.container-restart", "The quota and the data survive a container restart", "disk-quota",
       "major", _DQ,
       "An instance restarted by its supervisor keeps its files and its limit."),
    _c("dq.daemon-restart", "The quota and the data survive a daemon restart", "disk-quota",
       "major", _DQ,
       "T4 restarts its daemon under running instances; their quotas must not be lost with it."),
    _c("dq.host-fs", "Filling a container's quota does not fill the host's file system", "disk-quota",
       "critical", _DQ,
       "The host's file system holding the runtime's storage must lose at most the quota, so a "
       "full container never takes the host or its neighbours down."),
]
CHECKS.update({c.id: c for c in _DISK_QUOTA})


# -- lifecycle: release upgrade in place (conformance/lifecycle/test_upgrade_inplace.py) --------
_UPGRADE = [
    _c("life.upgrade-inplace.live", "Running and paused containers are re-adopted by the next release "
       "of the daemon, upgraded in place", "daemon-independence", "critical", "lifecycle/upgrade-inplace",
       "Hosts are upgraded in place (old daemon out, new version in on the same data root, "
       "live-restore): every running instance must keep its PID and state and be managed by the new "
       "version (exec, logs, stop, rm) without a restart."),
    _c("life.upgrade-inplace.stopped", "Created and exited containers, images and volumes are unchanged "
       "by a release upgrade in place", "daemon-independence", "major", "lifecycle/upgrade-inplace",
       "An instance an operator stopped must stay stopped, with its exit code and logs, across a "
       "runtime release upgrade; nothing the daemon stores may change."),
]
CHECKS.update({c.id: c for c in _UPGRADE})

def get(check_id):
    """The catalogue entry for an ID, or None."""
    return CHECKS.get(check_id)


def by_suite():
    out = {}
    for c in CHECKS.values():
        out.setdefault(c.suite, []).append(c)
    return out
