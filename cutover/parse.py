"""Parsers for what a probe reads inside a container. Pure functions, unit-tested."""
import re


def meminfo(text):
    """{'MemTotal': kB, ...} from /proc/meminfo."""
    out = {}
    for line in text.splitlines():
        m = re.match(r"^(\w+(?:\(\w+\))?):\s+(\d+)", line)
        if m:
            out[m.group(1)] = int(m.group(2))
    return out


def cpuinfo_processors(text):
    return len(re.findall(r"^processor\s*:", text, re.M))


def stat_cpus(text):
    return len(re.findall(r"^cpu\d+\s", text, re.M))


def cpu_list(text):
    """'0-1,3' -> [0, 1, 3]."""
    cpus = []
    for part in text.strip().split(","):
        if not part:
            continue
        lo, _, hi = part.partition("-")
        cpus.extend(range(int(lo), int(hi or lo) + 1))
    return cpus


def free_total_kib(text):
    """Total memory in KiB from busybox/procps `free` (default KiB units)."""
    for line in text.splitlines():
        if line.strip().startswith("Mem:"):
            return int(line.split()[1])
    raise ValueError("no 'Mem:' line in free output")


def top_memory_kib(text):
    """used + free KiB from busybox top's 'Mem: 1188K used, 260956K free, ...' header."""
    m = re.search(r"Mem:\s*(\d+)K used,\s*(\d+)K free", text)
    if not m:
        raise ValueError("no 'Mem: ...K used, ...K free' line in top output")
    return int(m.group(1)) + int(m.group(2))


def uptime_seconds(text):
    """Seconds from /proc/uptime."""
    return float(text.split()[0])


def uptime_cmd_seconds(text):
    """Seconds (minute resolution) from `uptime`: 'up 1 min', 'up 2:03', 'up 3 days, 4:05'..."""
    m = re.search(r"up\s+(.*?),\s+(?:load|\d+\s+users?)", text)
    if not m:
        raise ValueError(f"cannot find 'up ...' in {text.strip()!r}")
    total = 0
    for part in [p.strip() for p in m.group(1).split(",")]:
        if re.fullmatch(r"\d+\s+days?", part):
            total += int(part.split()[0]) * 86400
        elif re.fullmatch(r"\d+:\d+", part):
            h, mi = part.split(":")
            total += int(h) * 3600 + int(mi) * 60
        elif re.fullmatch(r"\d+\s+min", part):
            total += int(part.split()[0]) * 60
        elif re.fullmatch(r"\d+\s+sec", part):
            total += int(part.split()[0])
        else:
            raise ValueError(f"unknown uptime part {part!r}")
    return total


def loadavg(text):
    """(load1, load5, load15) from /proc/loadavg."""
    a = text.split()
    return float(a[0]), float(a[1]), float(a[2])


def uptime_cmd_load1(text):
    m = re.search(r"load average:\s*([\d.]+)", text)
    if not m:
        raise ValueError(f"no load average in {text.strip()!r}")
    return float(m.group(1))


def diskstats_sectors(text):
    """{device: sectors read + written} from /proc/diskstats."""
    out = {}
    for line in text.splitlines():
        f = line.split()
        if len(f) >= 10:
            out[f[2]] = int(f[5]) + int(f[9])
    return out


def swaps(text):
    """Swap device names from /proc/swaps (header skipped)."""
    return [l.split()[0] for l in text.splitlines()[1:] if l.strip()]


def net_dev(text):
    """Interface names from /proc/net/dev."""
    return sorted(l.split(":")[0].strip() for l in text.splitlines()[2:] if ":" in l)
