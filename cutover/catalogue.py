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


def get(check_id):
    """The catalogue entry for an ID, or None."""
    return CHECKS.get(check_id)


def by_suite():
    out = {}
    for c in CHECKS.values():
        out.setdefault(c.suite, []).append(c)
    return out
