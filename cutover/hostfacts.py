"""Host facts, collected once per host per run and carried into every report."""
import shlex

from cutover.drivers import driver_for

SCRIPT = r"""
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
. /etc/os-release 2>/dev/null && echo "os=$PRETTY_NAME"
echo "cgroup=$( [ -f /sys/fs/cgroup/cgroup.controllers ] && echo v2 || { [ -d /sys/fs/cgroup/unified ] && echo v1-hybrid || echo v1; } )"
echo "cpus=$(nproc --all 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "mem_kib=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
echo "lxcfs=$(lxcfs --version 2>&1 | head -1 | tr -d '"')"
echo "runc=$(runc --version 2>/dev/null | head -1 | awk '{print $3}')"
echo "crun=$(crun --version 2>/dev/null | head -1 | awk '{print $3}')"
echo "hostname=$(hostname)"
"""


def host_facts(host, timeout=30):
    res = host.run(f"timeout {int(timeout)} sh -c {shlex.quote(SCRIPT)}")
    if res.rc != 0:
        return {"error": f"facts script exited {res.rc}: {(res.stderr or '').strip()[:200]}"}
    out = {}
    for line in res.stdout.splitlines():
        k, _, v = line.partition("=")
        if k:
            out[k.strip()] = v.strip()
    return out


def collect(targets, hosts, timeout=30):
    """{host url: {facts..., 'targets': {name: runtime facts}}}; errors are facts too."""
    facts = {}
    for t in targets.values():
        entry = facts.get(t.host)
        if entry is None:
            try:
                entry = host_facts(hosts.get(t.host), timeout)
            except Exception as e:
                entry = {"error": f"host unreachable: {str(e).splitlines()[0][:200] if str(e) else type(e).__name__}"}
            entry["targets"] = {}
            facts[t.host] = entry
        try:
            tf = driver_for(t, timeout=timeout).facts()
            tf["lxcfs_mount"] = t.lxcfs
            entry["targets"][t.name] = tf
        except Exception as e:
            entry["targets"][t.name] = {"error": str(e).splitlines()[0][:200] if str(e) else type(e).__name__}
    return facts
