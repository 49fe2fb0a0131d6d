"""Fleet runs: which hosts a run (or a shard of a fleet) certifies, and how many workers.

Selection is by host, so a host is always certified whole (all its targets in one run):
- `--host web-*,ssh://db-0?` keeps targets whose host URL or host name matches a glob;
- `--ansible-group rack_a` keeps targets on the hosts of an Ansible group (the targets file's
  ansible_inventory), whether they are reached as ansible://name or ssh://name;
- `--shard K/N` keeps every N-th host of the sorted host list, starting at the K-th: N CI
  runners given the same targets file split the fleet into N disjoint, balanced shards whose
  results the gate merges (`cutover gate RUN1 RUN2 ...`).
"""
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


def select(targets, hosts=None, shard=None, ansible_group=None, group_members=None):
    """Keep the targets of the selected hosts; every problem is one CutoverError line."""
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
