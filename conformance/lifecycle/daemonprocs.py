"""Which processes serve a target's daemon: the proof that a daemon event really happened.

A stop, kill or upgrade command that does nothing (a wrong path, `true`, a service manager
that ignores it) leaves every container as it was, so every survival check would pass having
shown nothing. The scenario therefore asks the target's host, before and after the event:

- the daemon: the processes holding the endpoint's listening unix socket (PID 1 left out: a
  service manager that activates the daemon by socket holds it too, and is not the daemon);
- its helpers: the processes serving the unix sockets the daemon is connected to as a client
  (its containerd, whether the daemon supervises it or it runs as a service of its own).

A restart (stop/kill + start, upgrade) must leave a daemon process that did not serve the
endpoint before; a containerd kill must take away a helper that ran before. `ss -xapn` on the
host answers both (iproute2; it sees the host's network namespace, which a simulated host's
ssh lands in). When the host cannot tell, the event is an error: unproven is not a pass.
"""
import re
from dataclasses import dataclass, field

from cutover.drivers.base import RuntimeFailure

_USER = re.compile(r'\("((?:[^"\\]|\\.)*)",pid=(\d+),fd=\d+\)')


@dataclass
class Procs:
    socket: str
    server: dict = field(default_factory=dict)      # pid -> command name
    helpers: dict = field(default_factory=dict)

    def text(self):
        show = lambda d: ", ".join(f"{p} ({c})" for p, c in sorted(d.items())) or "none"
        return f"daemon {show(self.server)}; helpers {show(self.helpers)}"


def socket_path(target):
    """The endpoint's unix socket as the target's host names it, or None."""
    ep = target.endpoint or ""
    if ep.startswith("unix://"):
        return ep[len("unix://"):]
    if ep.startswith("ssh://"):
        from cutover.drivers import sshfwd
        return sshfwd.parse_endpoint(ep)[3]
    return None


def parse_ss(text):
    """`ss -xapn` lines -> [(local address, inode, peer inode, {pid: command})]."""
    out = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[5].isdigit() or not parts[7].isdigit():
            continue        # the header, or a line this parser does not understand
        users = {int(pid): name for name, pid in _USER.findall(" ".join(parts[8:]))}
        out.append((parts[4], int(parts[5]), int(parts[7]), users))
    return out


def from_sockets(sock, sockets):
    """Procs of the daemon listening on sock, from parse_ss() rows."""
    server = {}
    for local, _, peer, users in sockets:
        if local == sock and peer == 0:
            server.update(users)
    if len(server) > 1:
        server.pop(1, None)
    by_inode = {inode: users for _, inode, _, users in sockets}
    helpers = {}
    for local, _, peer, users in sockets:
        # The daemon's own client ends (no address of their own) of connections to a server.
        if local == "*" and peer and set(users) & set(server):
            helpers.update({p: c for p, c in by_inode.get(peer, {}).items() if p not in server})
    return Procs(sock, server, helpers)


def snapshot(driver):
    """Procs of the target's daemon now; RuntimeFailure when the host cannot say."""
    t = driver.target
    sock = socket_path(t)
    if not sock:
        raise RuntimeFailure(f"target '{t.name}': endpoint {t.endpoint} is not a unix socket on its host, so "
                             f"the harness cannot tell whether a daemon event happened")
    res = driver.host.run("ss -xapn")
    if res.rc != 0:
        raise RuntimeFailure(f"target '{t.name}': `ss -xapn` on {t.host} exited {res.rc} "
                             f"({(res.stderr or res.stdout).strip()[:120]}): cannot tell whether a daemon "
                             f"event happened (install iproute2)")
    procs = from_sockets(sock, parse_ss(res.stdout))
    if not procs.server:
        raise RuntimeFailure(f"target '{t.name}': no process listens on {sock} on {t.host}, so the harness "
                             f"cannot tell whether a daemon event happened")
    return procs


def restarted(before, after):
    """None if a new daemon process serves the endpoint, else what shows it did not restart."""
    same = sorted(set(before.server) & set(after.server))
    if same:
        return (f"pid {', '.join(f'{p} ({after.server[p]})' for p in same)} served {after.socket} "
                f"before and after it: the daemon never went away")
    return None


def helper_gone(before, after):
    """None if a helper process of the daemon that ran before is gone, else why not."""
    if not before.helpers:
        return (f"the daemon ({before.text()}) was connected to no helper process (containerd) "
                f"before it, so there was nothing to kill")
    if not set(before.helpers) - set(after.helpers):
        return f"every helper of the daemon still runs ({after.text()})"
    return None


PROOFS = {"restart": restarted, "helper": helper_gone}
