"""An LXCFS restart must leave running containers' /proc readable.

A site injects LXCFS by bind-mounting files of one FUSE mount into every container; when that
lxcfs process is stopped and started (an upgrade, a crash), the container keeps the bind mounts
of the *old* FUSE connection, and every read fails with "Transport endpoint is not connected"
until the container is recreated. The check reads each LXCFS-served file in a running
container, restarts the lxcfs the target uses (daemon.lxcfs-restart), and reads them again.
A target without LXCFS has nothing to break: its files are read twice, with no restart between.
This check disrupts every container that uses the same lxcfs, so it runs alone on it.
"""
import pytest

from cutover.expect import Equals

FILES = ["/proc/cpuinfo", "/proc/diskstats", "/proc/loadavg", "/proc/meminfo", "/proc/stat",
         "/proc/swaps", "/proc/uptime", "/sys/devices/system/cpu/online"]
READ_ALL = ("for f in " + " ".join(FILES) + "; do "
            "if cat $f >/dev/null 2>/tmp/err; then echo \"$f: ok\"; "
            "else echo \"$f: $(sed 's/^cat: //' /tmp/err | head -1)\"; fi; done")


def _unreadable(probe):
    out = probe.sh(READ_ALL)
    return sorted(l for l in out.splitlines() if l.strip() and not l.endswith(": ok"))


@pytest.mark.disruptive("lxcfs")
@pytest.mark.check("life.lxcfs-restart")
def test_lxcfs_restart_keeps_proc_readable(containers, driver, target, check):
    c = containers.run(driver).bind(check)
    before = _unreadable(c)
    if target.lxcfs:
        if not target.daemon.get("lxcfs-restart"):
            from cutover.drivers.base import Unsupported
            raise Unsupported(f"target '{target.name}' injects LXCFS but has no daemon.lxcfs-restart command")
        res = driver.daemon("lxcfs-restart")
        check.attach("daemon.lxcfs-restart", f"$ {target.daemon['lxcfs-restart']}\n[exit {res.rc}]\n"
                                              f"{res.stdout}{res.stderr}")
        check.note(f"lxcfs at {target.lxcfs} stopped and started under a running container")
        # A container made after the restart sees the new lxcfs (evidence only: not the promise).
        fresh = containers.run(driver).bind(check)
        check.attach("a container made after the restart", "\n".join(_unreadable(fresh)) or "all readable")
    else:
        check.note("target uses no LXCFS: nothing to restart, nothing to break")
    after = _unreadable(c)
    check.expect({"unreadable before the restart": Equals([]), "unreadable after the restart": Equals([])},
                 {"unreadable before the restart": before, "unreadable after the restart": after})
