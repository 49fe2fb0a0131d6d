"""Host facts, collected once per host per run and carried into every report.

One shell script per host (through its testinfra backend: local, ssh or Ansible), plus the
runtime's own facts per target (daemon version, storage driver, live-restore, ...) and the
options of the lxcfs that serves the target's mount. Hosts are asked in parallel: a fleet's
facts take about as long as its slowest host. A host that cannot be reached is a fact too.
"""
import concurrent.futures
import shlex

from cutover.drivers import driver_for

SCRIPT = r"""
echo "kernel=$(uname -r)"
echo "arch=$(uname -m)"
. /etc/os-release 2>/dev/null && echo "os=$PRETTY_NAME" && echo "os_id=$ID" && echo "os_version=$VERSION_ID"
echo "cgroup=$( [ -f /sys/fs/cgroup/cgroup.controllers ] && echo v2 || { [ -d /sys/fs/cgroup/unified ] && echo v1-hybrid || echo v1; } )"
echo "cgroup_controllers=$(awk 'NR > 1 && $4 == 1 {printf "%s ", $1}' /proc/cgroups 2>/dev/null)"
echo "cpus=$(nproc --all 2>/dev/null || getconf _NPROCESSORS_ONLN)"
echo "cpu_model=$(awk -F': ' '/^model name/ {print $2; exit}' /proc/cpuinfo)"
echo "mem_kib=$(awk '/^MemTotal/ {print $2}' /proc/meminfo)"
echo "swap_kib=$(awk '/^SwapTotal/ {print $2}' /proc/meminfo)"
echo "lxcfs=$(lxcfs --version 2>&1 | head -1 | tr -d '"')"
echo "runc=$(runc --version 2>/dev/null | head -1 | awk '{print $3}')"
echo "crun=$(crun --version 2>/dev/null | head -1 | awk '{print $3}')"
echo "containerd=$(containerd --version 2>/dev/null | awk '{print $3}')"
echo "dockerd=$(dockerd --version 2>/dev/null | sed 's/^Docker version //; s/,.*//')"
echo "podman=$(podman --version 2>/dev/null | awk '{print $3}')"
echo "lxc=$(lxc-start --version 2>/dev/null)"
echo "hostname=$(hostname)"
""" + r"""
# Every lxcfs of this mount namespace, with its options (a host's own; not a neighbour's).
me=$(readlink /proc/self/ns/mnt)
echo "lxcfs_processes=$(for d in /proc/[0-9]*; do
  [ "$(cat $d/comm 2>/dev/null)" = lxcfs ] && [ "$(readlink $d/ns/mnt 2>/dev/null)" = "$me" ] &&
    printf '%s; ' "$(tr '\0' ' ' < $d/cmdline)"
done)"
echo "lxcfs_mounts=$(awk '$0 ~ / - fuse.lxcfs / {printf "%s ", $5}' /proc/self/mountinfo)"
"""


def _error(e):
    return str(e).splitlines()[0][:200] if str(e) else type(e).__name__


def host_facts(host, timeout=30):
    res = host.run(f"timeout {int(timeout)} sh -c {shlex.quote(SCRIPT)}")
    if res.rc != 0:
        return {"error": f"facts script exited {res.rc}: {(res.stderr or '').strip()[:200]}"}
    out = {}
    for line in res.stdout.splitlines():
        k, _, v = line.partition("=")
        if k:
            out[k.strip()] = v.strip().rstrip(";").strip()
    try:
        out["connection"] = f"{host.backend.get_connection_type()}://{host.backend.hostname}"
    except Exception:
        pass
    return out


def lxcfs_args(facts, mountpoint):
    """The options of the lxcfs serving mountpoint (its command line ends with the mount point)."""
    for cmd in (facts.get("lxcfs_processes") or "").split(";"):
        parts = cmd.split()
        if parts and parts[-1].rstrip("/") == mountpoint.rstrip("/"):
            return " ".join(parts[1:-1])
    return None


def _one_host(url, targets, hosts, timeout):
    try:
        entry = host_facts(hosts.get(url, **targets[0].host_options()), timeout)
    except Exception as e:
        entry = {"error": f"host {url} unreachable: {_error(e)}"}
    entry["targets"] = {}
    for t in targets:
        try:
            d = driver_for(t, timeout=timeout)
            tf = d.facts()
            tf["lxcfs_mount"] = t.lxcfs
            tf["supports"] = d.describe()     # what the driver can express (README)
            if t.lxcfs and "error" not in entry:
                tf["lxcfs_args"] = lxcfs_args(entry, t.lxcfs)
            entry["targets"][t.name] = tf
        except Exception as e:
            entry["targets"][t.name] = {"error": _error(e)}
    return entry


def collect(targets, hosts, timeout=30, parallel=16):
    """{host url: {facts..., 'targets': {name: runtime facts}}}; errors are facts too."""
    by_host = {}
    for t in targets.values():
        by_host.setdefault(t.host, []).append(t)
    if not by_host:
        return {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=min(parallel, len(by_host))) as pool:
        futures = {url: pool.submit(_one_host, url, ts, hosts, timeout) for url, ts in by_host.items()}
        return {url: f.result() for url, f in futures.items()}
