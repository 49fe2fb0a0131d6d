"""Coexistence: pairs of targets on one host, and what their cgroups say (pure logic).

A pair is two targets of different runtimes on the same host, named 'A+B' in results. Pairs
come from `--pair A,B` (repeatable), else from the targets file's top-level `pairs:` list,
else every two targets on one host whose drivers differ.
"""
from dataclasses import dataclass

from cutover.errors import CutoverError, show

# v1 controllers whose paths decide limits and accounting (named hierarchies do not).
RESOURCE_CONTROLLERS = ("memory", "cpu", "cpuacct", "cpuset", "pids", "blkio", "devices", "freezer")


@dataclass(frozen=True)
class Pair:
    a: object      # cutover.targets.Target
    b: object

    @property
    def name(self):
        return f"{self.a.name}+{self.b.name}"

    @property
    def host(self):
        return self.a.host

    @property
    def targets(self):
        return (self.a, self.b)


def _pair(names, targets, where, strict):
    if len(names) != 2 or not all(isinstance(n, str) and n.strip() for n in names):
        raise CutoverError(f"{where}: a pair is two target names (A,B), got {show(names)}")
    a, b = (n.strip() for n in names)
    if a == b:
        raise CutoverError(f"{where}: '{a}' cannot coexist with itself")
    missing = [n for n in (a, b) if n not in targets]
    if missing:
        if not strict:
            return None      # the run selected fewer targets: that pair is not owed
        raise CutoverError(f"{where}: unknown target '{missing[0]}' (known: {', '.join(targets)})")
    ta, tb = targets[a], targets[b]
    if ta.host != tb.host:
        raise CutoverError(f"{where}: {a} is on {ta.host} and {b} on {tb.host}: a pair shares one host")
    return Pair(ta, tb)


def check_file_pairs(from_file, targets, source="targets file"):
    """Validate a targets file's `pairs:` against every target of that file (at load time)."""
    if not isinstance(from_file, list):
        raise CutoverError(f"{source}: pairs: must be a list of [A, B] target name pairs")
    for p in from_file:
        _pair(p if isinstance(p, list) else [p], targets, f"{source}: pairs", strict=True)


def resolve(targets, cli=None, from_file=None):
    """[Pair] from --pair values, else the file's pairs, else derived; bad input -> CutoverError."""
    if cli:
        pairs = [_pair(v.split(","), targets, "--pair", strict=True) for v in cli]
    elif from_file is not None:
        if not isinstance(from_file, list):
            raise CutoverError("targets file: pairs: must be a list of [A, B] target name pairs")
        pairs = [_pair(p if isinstance(p, list) else [p], targets, "targets file: pairs", strict=False)
                 for p in from_file]
    else:
        ts = list(targets.values())
        pairs = [Pair(x, y) for i, x in enumerate(ts) for y in ts[i + 1:]
                 if x.host == y.host and x.driver != y.driver]
    out, seen = [], set()
    for p in pairs:
        if p is not None and p.name not in seen:
            seen.add(p.name)
            out.append(p)
    return out


# -- cgroups ------------------------------------------------------------------------------

def proc_cgroup(text):
    """{controller: path} from /proc/<pid>/cgroup; the v2 line is 'unified'."""
    out = {}
    for line in text.splitlines():
        parts = line.strip().split(":", 2)
        if len(parts) != 3:
            continue
        _, ctrls, path = parts
        for c in (ctrls.split(",") if ctrls else ["unified"]):
            out[c] = path
    return out


def _within(inner, outer):
    return inner == outer or outer == "/" or inner.startswith(outer.rstrip("/") + "/")


def collisions(a, b):
    """Controllers where two processes' cgroups are the same or one holds the other.

    On a v1 (or hybrid) host the resource controllers decide; on a pure v2 host, the unified one.
    """
    ctrls = [c for c in RESOURCE_CONTROLLERS if c in a and c in b] or \
        [c for c in ("unified",) if c in a and c in b]
    out = []
    for c in ctrls:
        pa, pb = a[c], b[c]
        if pa == pb:
            out.append(f"{c}: both in {pa}")
        elif _within(pa, pb) or _within(pb, pa):
            out.append(f"{c}: {pa} and {pb} nested")
    return out


def hierarchy_mounts(mountinfo):
    """{controller: mount point} of the cgroup hierarchies in a /proc/self/mountinfo text."""
    out = {}
    for line in mountinfo.splitlines():
        parts = line.split()
        if "-" not in parts:
            continue
        sep = parts.index("-")
        fstype, mnt, opts = parts[sep + 1], parts[4], parts[-1]
        if fstype == "cgroup2":
            out.setdefault("unified", mnt)
        elif fstype == "cgroup":
            for o in opts.split(","):
                if o in RESOURCE_CONTROLLERS:
                    out.setdefault(o, mnt)
    return out


def accounting_files(cgroups, mounts):
    """{'cpu': file, 'memory': file} of a process's own cgroup (v1 files, else v2 ones)."""
    if "cpuacct" in cgroups and "cpuacct" in mounts and "memory" in mounts:
        return {"cpu": f"{mounts['cpuacct']}{cgroups['cpuacct']}/cpuacct.usage".replace("//", "/"),
                "memory": f"{mounts['memory']}{cgroups['memory']}/memory.usage_in_bytes".replace("//", "/")}
    if "unified" in cgroups and "unified" in mounts:
        base = f"{mounts['unified']}{cgroups['unified']}".rstrip("/")
        return {"cpu": f"{base}/cpu.stat", "memory": f"{base}/memory.current"}
    raise CutoverError("no cpuacct/memory cgroup (v1) or unified hierarchy (v2) for the process")


def cpu_seconds(text):
    """CPU time from cpuacct.usage (ns) or cpu.stat (usage_usec)."""
    text = text.strip()
    if text.isdigit():
        return int(text) / 1e9
    for line in text.splitlines():
        k, _, v = line.partition(" ")
        if k == "usage_usec":
            return int(v) / 1e6
    raise ValueError(f"no CPU usage in {text[:80]!r}")
