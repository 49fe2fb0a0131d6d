"""An LXCFS restart must leave running containers' /proc readable.

A site injects LXCFS by bind-mounting files of one FUSE mount into every container; when that
lxcfs process is stopped and started (an upgrade, a crash), the container keeps the bind mounts
of the *old* FUSE connection, and every read fails with "Transport endpoint is not connected"
until the container is recreated. The check reads each LXCFS-served file in a running
container, restarts the lxcfs the target uses (daemon.lxcfs-restart), and reads them again.
The restart must really happen: the lxcfs process serving the target's mount point (the one
whose command line names it) must be a new one afterwards, else the check is an error -- a
restart command that does nothing would leave /proc readable and pass having shown nothing.
A target without LXCFS has no lxcfs to restart: 'unsupported', not a pass.
This check disrupts every container that uses the same lxcfs, so it runs alone on it.
"""
import pytest

from cutover.drivers.base import RuntimeFailure, Unsupported
from cutover.expect import Equals

FILES = ["/proc/cpuinfo", "/proc/diskstats", "/proc/loadavg", "/proc/meminfo", "/proc/stat",
         "/proc/swaps", "/proc/uptime", "/sys/devices/system/cpu/online"]
READ_ALL = ("for f in " + " ".join(FILES) + "; do "
            "if cat $f >/dev/null 2>/tmp/err; then echo \"$f: ok\"; "
            "else echo \"$f: $(sed 's/^cat: //' /tmp/err | head -1)\"; fi; done")


# pid and command line of every process named lxcfs on the host (one grep, not one cat per pid).
LXCFS_PROCS = ("for f in $(grep -lx lxcfs /proc/[0-9]*/comm 2>/dev/null); do p=${f%/comm}; "
               "echo \"${p#/proc/} $(tr '\\0' ' ' < $p/cmdline)\"; done")


def lxcfs_pids(driver, mountpoint):
    """PIDs of the lxcfs processes on the target's host that serve mountpoint."""
    want = mountpoint.rstrip("/")
    res = driver.host.run(LXCFS_PROCS)
    pids = set()
    for line in res.stdout.splitlines():
        pid, _, args = line.partition(" ")
        if pid.isdigit() and want in (a.rstrip("/") for a in args.split()):
            pids.add(int(pid))
    return pids


def _unreadable(probe):
    out = probe.sh(READ_ALL)
    return sorted(l for l in out.splitlines() if l.strip() and not l.endswith(": ok"))


@pytest.mark.disruptive("lxcfs")
@pytest.mark.check("life.lxcfs-restart")
def test_lxcfs_restart_keeps_proc_readable(containers, driver, target, check):
    if not target.lxcfs:
        raise Unsupported(f"target '{target.name}' injects no LXCFS: there is no lxcfs to restart")
    if not target.daemon.get("lxcfs-restart"):
        raise Unsupported(f"target '{target.name}' injects LXCFS but has no daemon.lxcfs-restart command")
    c = containers.run(driver).bind(check)
    before = _unreadable(c)
    pids_before = lxcfs_pids(driver, target.lxcfs)
    if not pids_before:
        raise RuntimeFailure(f"no lxcfs process on {target.host} names {target.lxcfs}: cannot tell whether "
                             f"daemon.lxcfs-restart restarts it")
    res = driver.daemon("lxcfs-restart")
    pids_after = lxcfs_pids(driver, target.lxcfs)
    check.attach("daemon.lxcfs-restart", f"$ {target.daemon['lxcfs-restart']}\n[exit {res.rc}]\n"
                                          f"{res.stdout}{res.stderr}\nlxcfs pid {sorted(pids_before)} -> "
                                          f"{sorted(pids_after)}")
    if pids_after & pids_before or not pids_after:
        raise RuntimeFailure(f"daemon.lxcfs-restart of target '{target.name}' did not restart lxcfs: pid "
                             f"{sorted(pids_before)} before, {sorted(pids_after) or 'none'} after; nothing was shown")
    check.note(f"lxcfs at {target.lxcfs} stopped and started under a running container "
               f"(pid {sorted(pids_before)} -> {sorted(pids_after)})")
    # A container made after the restart sees the new lxcfs (evidence only: not the promise).
    fresh = containers.run(driver).bind(check)
    check.attach("a container made after the restart", "\n".join(_unreadable(fresh)) or "all readable")
    after = _unreadable(c)
    check.expect({"unreadable before the restart": Equals([]), "unreadable after the restart": Equals([])},
                 {"unreadable before the restart": before, "unreadable after the restart": after})
