"""Visibility: inside a container, what you see is what you were given (T4 promise 1).

Each check reads through a file *or* a system call inside a probe container, under every
allocation, and compares with what the allocation promised.
"""
import time

import pytest

from cutover import parse
from cutover.expect import Approx, AtMost, Between, Equals
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
    # An idle probe uses a few MiB of its allocation: at least half of it is free, and none of
    # it more than the limit (a file that says 0, or the host's free memory, is wrong).
    check.expect({"MemTotal": Approx(limit, rel=0.01, unit="kB"),
                  "MemFree": Between(limit // 2, limit, unit="kB"),
                  "MemAvailable": Between(limit // 2, limit, unit="kB")}, mi)


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


def _started_and_guard(probe, driver, margin, min_age=0):
    """The container's start (epoch), once it is at least min_age old; an error if the host
    is too young for the check to tell the container's age from its own."""
    started = probe.state().started_epoch
    young = min_age - (time.time() - started)
    if young > 0:           # a fresh probe: give a lower bound room to tell its age from 0
        time.sleep(young)
    age = time.time() - started
    host_up = _host_uptime(driver)
    if host_up < age + margin:
        raise RuntimeFailure(f"host up only {host_up:.0f}s, container {age:.0f}s: cannot tell them apart "
                             f"(needs {margin}s between them); rerun later")
    return started


UPTIME_SLACK_S = 2.0     # runtimes record a start a little after the container's init began


@pytest.mark.check("vis.proc-uptime")
def test_proc_uptime(probe, driver, check):
    f = driver.target.time_factor        # an emulated host starts containers slowly
    slack = UPTIME_SLACK_S * f
    started = _started_and_guard(probe, driver, margin=10 * f, min_age=2 * slack + 1)
    # The container's age at the start and at the end of the read bound what it may say,
    # however long the read took (a remote host adds an ssh round trip or two).
    t0 = time.time()
    up = parse.uptime_seconds(probe.read("/proc/uptime"))
    t1 = time.time()
    check.note("/proc/uptime")
    check.expect({"uptime s": Between(round(t0 - started - slack, 1), round(t1 - started + slack, 1), unit="s")},
                 {"uptime s": up})


@pytest.mark.check("vis.uptime-cmd")
def test_uptime_cmd(probe, driver, check):
    started = _started_and_guard(probe, driver, margin=130)
    t0 = time.time()
    up = parse.uptime_cmd_seconds(probe.sh("uptime"))
    t1 = time.time()
    # `uptime` prints whole minutes: a minute of slack each way (so 0 fails only once the
    # container is over a minute old; the host's uptime fails the upper bound at any age).
    check.note("uptime (sysinfo)")
    check.expect({"uptime s": Between(max(0, int(t0 - started) - 60), int(t1 - started) + 60, unit="s")},
                 {"uptime s": up})


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
