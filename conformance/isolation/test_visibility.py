"""Visibility: inside a container, what you see is what you were given (T4 promise 1).

Each check reads through a file *or* a system call inside a probe container, under every
allocation, and compares with what the allocation promised.
"""
import time

import pytest

from cutover import parse
from cutover.expect import Approx, AtMost, Equals
from cutover.drivers.base import RuntimeFailure

KIB = 1024


def mem_kib(allocation):
    return allocation.memory // KIB


def cpus(driver, allocation):
    return allocation.expected_cpus(driver.facts_cache.get("ncpu") or 1)


@pytest.mark.check("vis.meminfo")
def test_meminfo(probe, allocation, check):
    mi = parse.meminfo(probe.read("/proc/meminfo"))
    limit = mem_kib(allocation)
    check.note("/proc/meminfo")
    check.expect({"MemTotal": Approx(limit, rel=0.01, unit="kB"),
                  "MemFree": AtMost(limit, unit="kB"),
                  "MemAvailable": AtMost(limit, unit="kB")}, mi)


@pytest.mark.check("vis.sysinfo-memory")
def test_free_sysinfo(probe, allocation, check):
    total = parse.free_total_kib(probe.sh("free"))
    check.note("free (sysinfo)")
    check.expect({"total": Approx(mem_kib(allocation), rel=0.01, unit="KiB")}, {"total": total})


@pytest.mark.check("vis.top-memory")
def test_top_memory(probe, allocation, check):
    total = parse.top_memory_kib(probe.sh("top -bn1 | head -3"))
    check.note("top -bn1")
    check.expect({"used+free": Approx(mem_kib(allocation), rel=0.02, unit="KiB")}, {"used+free": total})


@pytest.mark.check("vis.cpuinfo")
def test_cpuinfo(probe, driver, allocation, check):
    n = parse.cpuinfo_processors(probe.read("/proc/cpuinfo"))
    check.note("/proc/cpuinfo")
    check.expect({"processors": Equals(cpus(driver, allocation))}, {"processors": n})


@pytest.mark.check("vis.proc-stat-cpus")
def test_proc_stat_cpus(probe, driver, allocation, check):
    n = parse.stat_cpus(probe.read("/proc/stat"))
    check.note("/proc/stat")
    check.expect({"cpuN lines": Equals(cpus(driver, allocation))}, {"cpuN lines": n})


@pytest.mark.check("vis.cpu-online")
def test_cpu_online(probe, driver, allocation, check):
    online = parse.cpu_list(probe.read("/sys/devices/system/cpu/online"))
    check.note("/sys/devices/system/cpu/online")
    check.expect({"online CPUs": Equals(cpus(driver, allocation))}, {"online CPUs": len(online)})


@pytest.mark.check("vis.nproc")
def test_nproc(probe, driver, allocation, check):
    n = int(probe.sh("nproc").strip())
    check.note("nproc (sched_getaffinity)")
    check.expect({"nproc": Equals(cpus(driver, allocation))}, {"nproc": n})


def _host_uptime(driver):
    return float(driver.host.file("/proc/uptime").content_string.split()[0])


def _age_and_guard(probe, driver, margin):
    """Container age, and an error if the host is too young for the check to discriminate."""
    age = time.time() - probe.state().started_epoch
    host_up = _host_uptime(driver)
    if host_up < age + margin:
        raise RuntimeFailure(f"host up only {host_up:.0f}s, container {age:.0f}s: cannot tell them apart "
                             f"(needs {margin}s between them); rerun later")
    return age


@pytest.mark.check("vis.proc-uptime")
def test_proc_uptime(probe, driver, check):
    up = parse.uptime_seconds(probe.read("/proc/uptime"))
    # The age is taken after the read, so the bound holds however long the read took (a
    # remote host adds an ssh round trip or two).
    f = driver.target.time_factor        # an emulated host starts containers slowly
    age = _age_and_guard(probe, driver, margin=10 * f)
    check.note("/proc/uptime")
    check.expect({"uptime s": AtMost(round(age + 3 * f, 1), unit="s")}, {"uptime s": up})


@pytest.mark.check("vis.uptime-cmd")
def test_uptime_cmd(probe, driver, check):
    up = parse.uptime_cmd_seconds(probe.sh("uptime"))
    age = _age_and_guard(probe, driver, margin=130)       # after the read, as above
    check.note("uptime (sysinfo)")
    # `uptime` prints whole minutes.
    check.expect({"uptime s": AtMost(int(age) + 60, unit="s")}, {"uptime s": up})


@pytest.mark.check("vis.diskstats")
def test_diskstats(probe, driver, check):
    host = parse.diskstats_sectors(driver.host.file("/proc/diskstats").content_string)
    seen = parse.diskstats_sectors(probe.read("/proc/diskstats"))
    busy_host = {d: s for d, s in host.items() if s > 0}
    if not busy_host:
        raise RuntimeFailure("the host shows no disk I/O at all: nothing to tell apart")
    # An idle probe container did (next to) no I/O of its own: 1 MiB of slack per device.
    check.note("/proc/diskstats")
    check.expect({f"{d} sectors": AtMost(2048) for d in busy_host},
                 {f"{d} sectors": seen.get(d, 0) for d in busy_host})


@pytest.mark.check("vis.swaps")
def test_swaps(probe, driver, check):
    host = parse.swaps(driver.host.file("/proc/swaps").content_string)
    seen = parse.swaps(probe.read("/proc/swaps"))
    check.note(f"/proc/swaps (host has {len(host)} swap device(s))")
    check.expect({"host swap devices visible": Equals([])},
                 {"host swap devices visible": sorted(set(seen) & set(host))})


@pytest.mark.check("vis.net-dev")
def test_net_dev(probe, driver, check):
    """Interfaces are told apart by MAC address: names (eth0) may repeat in every namespace."""
    script = "for i in /sys/class/net/*; do echo ${i##*/} $(cat $i/address); done"
    host = dict(l.split() for l in driver.host.run(script).stdout.splitlines() if len(l.split()) == 2)
    own = dict(l.split() for l in probe.sh(script).splitlines() if len(l.split()) == 2)
    seen = parse.net_dev(probe.read("/proc/net/dev"))
    host_macs = {mac: name for name, mac in host.items() if mac.strip("0:")}
    leaked = sorted(f"{n} ({own[n]})" for n in seen if own.get(n) in host_macs)
    check.note("/proc/net/dev and /sys/class/net/*/address")
    check.expect({"host interfaces visible": Equals([])}, {"host interfaces visible": leaked})
