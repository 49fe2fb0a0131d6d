"""Fleet runs: which hosts a run (or a shard of a fleet) certifies, and how many workers.

Selection is by host, so a host is always certified whole (all its targets in one run):
- `--host web-*,ssh://db-0?` keeps targets whose host URL or host name matches a glob;
- `--ansible-group rack_a` keeps targets on the hosts of an Ansible group (the targets file's
  ansible_inventory), whether they are reached as ansible://name or ssh://name;
- `--shard K/N` keeps every N-th host of the sorted host list, starting at the K-th: N CI
  runners given the same targets file split the fleet into N disjoint, balanced shards whose
  results the gate merges (`cutover gate RUN1 RUN2 ...`).

Before any selection, a target on `ansible://PATTERN` (a group, or any Ansible host pattern)
becomes one target per inventory host of PATTERN, named `<target>@<host>` (see expand()).

Scheduling (fixtures/fleet.py hands these to xdist's own LoadScopeScheduling): every test is
about one target (or one pair of targets), named in its parametrization id; scope() maps the
test to its target's or its host's work unit, so that one worker runs all of that target's
(or host's) checks.
"""
import dataclasses
import fnmatch
import os
import re
import urllib.parse

from cutover.errors import CutoverError


def host_name(url):
    """ssh://root@web-07:22 -> web-07; ansible://web-07 -> web-07; local:// -> localhost."""
    u = urllib.parse.urlsplit(url)
    return u.hostname or "localhost"


def parse_shard(spec):
    m = re.fullmatch(r"\s*(\d+)\s*/\s*(\d+)\s*", spec or "")
    if not m or not 1 <= int(m.group(1)) <= int(m.group(2)):
        raise CutoverError(f"--shard '{spec}': expected K/N with 1 <= K <= N (e.g. 3/20)")
    return int(m.group(1)), int(m.group(2))


def hosts_of(targets):
    return sorted({t.host for t in targets.values()})


def select(targets, hosts=None, shard=None, ansible_group=None, group_members=None, inventory_hosts=None):
    """Keep the targets of the selected hosts; every problem is one CutoverError line."""
    targets = expand(targets, inventory_hosts)
    if hosts:
        pats = [p.strip() for p in hosts.split(",") if p.strip()]
        targets = {n: t for n, t in targets.items()
                   if any(fnmatch.fnmatchcase(t.host, p) or fnmatchcase_name(t.host, p) for p in pats)}
        if not targets:
            raise CutoverError(f"--host: no target is on a host matching '{hosts}'")
    if ansible_group:
        members = set((group_members or ansible_members)(targets, ansible_group))
        targets = {n: t for n, t in targets.items() if host_name(t.host) in members}
        if not targets:
            raise CutoverError(f"--ansible-group: no target is on a host of group '{ansible_group}'")
    if shard:
        k, n = parse_shard(shard)
        urls = hosts_of(targets)
        if n > len(urls):
            raise CutoverError(f"--shard {k}/{n}: only {len(urls)} host(s) to share out; use at most {len(urls)} shards")
        mine = set(urls[k - 1::n])
        targets = {name: t for name, t in targets.items() if t.host in mine}
    return targets


def fnmatchcase_name(url, pattern):
    return "://" not in pattern and fnmatch.fnmatchcase(host_name(url), pattern)


def ansible_members(targets, group):
    """Host names of an Ansible group (or host pattern), from the targets file's inventory."""
    inventories = {t.ansible_inventory for t in targets.values() if t.ansible_inventory}
    if not inventories:
        raise CutoverError("--ansible-group: the targets file names no ansible_inventory")
    from testinfra.utils.ansible_runner import AnsibleRunner
    use_venv_tools()
    out = set()
    for inv in inventories:
        try:
            out |= set(AnsibleRunner(inv).get_hosts(group))
        except Exception as e:
            raise CutoverError(f"--ansible-group: cannot read inventory {inv}: {str(e).splitlines()[0][:200]}") from None
    return out


def use_venv_tools():
    """testinfra runs ansible-inventory by name: find the one installed beside this Python."""
    import sys
    bindir = os.path.dirname(sys.executable)
    path = os.environ.get("PATH", "")
    if bindir not in path.split(os.pathsep):
        os.environ["PATH"] = bindir + (os.pathsep + path if path else "")


def auto_workers(targets, cpus=None):
    """xdist workers for `-n auto`: one per target, so that every target of every host is
    certified at the same time (a worker mostly waits on its host, and fixtures/fleet.py keeps
    each target on one worker); at least one per CPU, at most 4 per CPU."""
    cpus = cpus or os.cpu_count() or 1
    return max(cpus, min(len(targets), 4 * cpus))


# -- ansible://PATTERN: one target per inventory host ------------------------------------------

def expand(targets, inventory_hosts=None):
    """{name: Target} with every `ansible://PATTERN` target replaced by its inventory hosts.

    PATTERN is what Ansible accepts (a group, a host, a glob). A pattern that is one host's own
    name keeps the target as it is; otherwise each host H of the pattern gets a copy named
    `<target>@H` on `ansible://H`. An ansible:// target is reached through its inventory only
    (testinfra's ansible backend reads ansible_host, ansible_port, ansible_user, the key and the
    ssh args from it), so the targets file's ssh_config is not passed to it; its `ssh://`
    endpoint must be its own host, written `ssh:///path/to/socket` (or `ssh://H/...`), and the
    forward to the daemon's socket uses the same inventory data (cutover/drivers/sshfwd.py).
    """
    resolve = inventory_hosts or _inventory_hosts
    out = {}
    for name, t in targets.items():
        if not t.host.startswith("ansible://"):
            out[name] = t
            continue
        pattern = t.host[len("ansible://"):]
        # No ansible_inventory: Ansible's default one, as testinfra's ansible backend would use.
        members = sorted(set(resolve(t.ansible_inventory, pattern)))
        if not members:
            raise CutoverError(f"target '{name}': host {t.host}: no host of inventory "
                               f"{t.ansible_inventory or '(Ansible default)'} matches '{pattern}'")
        for h in members:
            # '@' is not allowed in a targets file's names, so `<target>@<host>` is no one else's.
            copy = dataclasses.replace(t, name=name if members == [pattern] else f"{name}@{h}",
                                       host=f"ansible://{h}", endpoint=_own_endpoint(t, h), ssh_config=None)
            out[copy.name] = copy
    return out


def _own_endpoint(t, host):
    """An ansible:// target's ssh:// endpoint, on the inventory host it was expanded to."""
    if not t.endpoint.startswith("ssh://"):
        return t.endpoint
    u = urllib.parse.urlsplit(t.endpoint)
    if u.hostname and u.hostname != host and u.hostname != t.host[len("ansible://"):]:
        raise CutoverError(f"target '{t.name}': endpoint {t.endpoint}: an ansible:// target's daemon is on "
                           f"its own host; write ssh:///<socket> (reached with the inventory's connection data)")
    if u.username or u.port:
        raise CutoverError(f"target '{t.name}': endpoint {t.endpoint}: the user and port of an ansible:// "
                           "host come from its inventory (ansible_user, ansible_port), not from the endpoint")
    return f"ssh://{host}{u.path}"


def _inventory_hosts(inventory, pattern):
    from testinfra.utils.ansible_runner import AnsibleRunner
    use_venv_tools()
    try:
        return AnsibleRunner.get_runner(inventory).get_hosts(pattern)
    except Exception as e:
        raise CutoverError(f"cannot read inventory {inventory or '(Ansible default)'}: "
                           f"{str(e).splitlines()[0][:200]}") from None


# -- scheduling: which work unit a test belongs to ---------------------------------------------

def granularity(n_hosts, n_workers, choice="auto"):
    """'host' when there are at least as many hosts as workers (a worker then certifies whole
    hosts, and a host's daemon events never make another worker wait), else 'target' (so that
    the workers are not left idle: one host with two workers runs two targets at once)."""
    if choice in ("host", "target"):
        return choice
    return "host" if n_hosts >= n_workers else "target"


def subject_of(nodeid, names):
    """The target (or pair 'A+B') a test is about, from its parametrization id.

    pytest joins the ids of a test's parameters with '-', and a target's id is its name, so
    the subject is the longest known name that is a whole run of '-'-separated parts of the
    id (targets 'docker' and 'docker-crun' in `[docker-crun-cpuset1-256m]`: docker-crun).
    None when no name fits (a test about no target). xdist's '@group' suffix is ignored.
    """
    if nodeid.rfind("@") > nodeid.rfind("]"):
        nodeid = nodeid[:nodeid.rfind("@")]
    if not nodeid.endswith("]"):
        return None
    tail = nodeid.rsplit("::", 1)[-1]
    if "[" not in tail:
        return None
    padded = "-" + tail[tail.index("[") + 1:-1] + "-"
    best = None
    for n in names:
        if (best is None or len(n) > len(best)) and f"-{n}-" in padded:
            best = n
    return best


def scope(nodeid, where, granularity):
    """The work unit of a test: 'host URL' or 'target NAME'; the test id itself (a unit of its
    own) when it is about no known target. where: {target or pair name: host URL}."""
    s = subject_of(nodeid, where)
    if s is None:
        return nodeid
    return f"host {where[s]}" if granularity == "host" else f"target {s}"
