"""Coexistence: two runtimes side by side on one host (T4 promise 5).

Each check runs per pair of targets on one host (`--pair A,B`; the record's target is 'A+B').
A's container gets the run's first allocation and B's the second, so that a view or a limit
that leaks from one side to the other shows. One scenario per pair feeds three checks: both
containers run at once; each one's view is read, each init's cgroups are read on the host,
then each burns CPU and writes page cache in turn while the other's counters are watched.
The daemon check restarts a daemon of the pair and is disruptive (it holds that daemon alone).
"""
import pytest

from cutover import coexist, parse
from cutover.drivers.base import RuntimeFailure, Unsupported
from cutover.expect import Approx, AtLeast, AtMost, Equals
from fixtures.pairs import restartable
from fixtures.runtime import Containers

BURN_S = 3                  # each side burns one CPU in rounds of this long, in turn,
BURN_ROUNDS = 5             # until it was charged CPU_OWN_MIN (a loaded host gives it less)
CPU_OWN_MIN = 0.5           # s of CPU the burner must be charged: proof the counter is its own
CPU_OTHER_SHARE = 0.05      # its idle neighbour may be charged 5% of that (at least 0.05 s)
FILL_MIB = 64               # page cache each side writes, in turn
MEM_OWN_MIN_MIB = 32
MEM_OTHER_MAX_MIB = 8


def pair_allocations(ctx, pair):
    if len(ctx.allocations) < 2:
        raise RuntimeFailure("coexistence needs two allocations: give --allocations with at least two")
    return {pair.a.name: ctx.allocations[0], pair.b.name: ctx.allocations[1]}


def expected_view(driver, allocation):
    return {"MemTotal kB": allocation.memory // 1024,
            "online CPUs": allocation.expected_cpus(driver.facts_cache.get("ncpu") or 1)}


def read_view(probe):
    """What a container sees of its memory and CPUs (None where /proc is unreadable)."""
    mem = probe.exec(["cat", "/proc/meminfo"])
    cpus = probe.exec(["cat", "/sys/devices/system/cpu/online"])
    return {"MemTotal kB": parse.meminfo(mem.stdout).get("MemTotal") if mem.exit_code == 0 else None,
            "online CPUs": len(parse.cpu_list(cpus.stdout)) if cpus.exit_code == 0 else None,
            "raw": mem.evidence()[:600] + "\n" + cpus.evidence()}


def _counters(host, files):
    """{side: {'cpu': seconds, 'memory': bytes}} read on the host in one command."""
    paths = [files[s][k] for s in sorted(files) for k in ("cpu", "memory")]
    res = host.run(" ; ".join(f"echo ==; cat {p}" for p in paths))
    chunks = res.stdout.split("==\n")[1:]
    if len(chunks) != len(paths) or res.rc != 0:
        raise RuntimeFailure(f"cannot read cgroup counters {paths}: {res.stderr.strip()[:200]}")
    out, i = {}, 0
    for s in sorted(files):
        out[s] = {"cpu": coexist.cpu_seconds(chunks[i]), "memory": int(chunks[i + 1].split()[0])}
        i += 2
    return out


def _scenario(pair, drivers, ctx):
    allocs = pair_allocations(ctx, pair)
    ds = {t.name: drivers.get(t) for t in pair.targets}
    host = ds[pair.a.name].host
    pool = Containers(ctx, f"coexistence:{pair.name}")
    obs = {"allocations": allocs, "view": {}, "cgroup": {}, "cpu": {}, "memory": {}, "evidence": {}}
    try:
        # Both containers run at once from here on.
        side = {n: pool.run(d, allocs[n]) for n, d in ds.items()}
        for n, p in side.items():
            obs["view"][n] = read_view(p)
            obs["evidence"][f"{n}: /proc/meminfo, cpu online"] = obs["view"][n].pop("raw")
        for n, p in side.items():
            pid = p.state().pid
            text = host.file(f"/proc/{pid}/cgroup").content_string
            obs["cgroup"][n] = coexist.proc_cgroup(text)
            obs["evidence"][f"{n}: /proc/{pid}/cgroup (its init, on the host)"] = text
        mounts = coexist.hierarchy_mounts(host.file("/proc/self/mountinfo").content_string)
        files = {n: coexist.accounting_files(obs["cgroup"][n], mounts) for n in side}
        obs["evidence"]["counters"] = "\n".join(f"{n}: {f['cpu']} {f['memory']}" for n, f in files.items())
        for n, p in side.items():
            before = _counters(host, files)
            for _ in range(BURN_ROUNDS):
                p.exec(["timeout", str(BURN_S), "sh", "-c", "while :; do :; done"])
                after = _counters(host, files)
                if after[n]["cpu"] - before[n]["cpu"] >= CPU_OWN_MIN:
                    break
            obs["cpu"][n] = {m: round(after[m]["cpu"] - before[m]["cpu"], 3) for m in side}
        for n, p in side.items():
            before = _counters(host, files)
            p.sh(f"dd if=/dev/zero of=/tmp/coex.fill bs=1M count={FILL_MIB} 2>/dev/null")
            after = _counters(host, files)
            p.sh("rm -f /tmp/coex.fill")
            obs["memory"][n] = {m: round((after[m]["memory"] - before[m]["memory"]) / 2**20, 1) for m in side}
    finally:
        pool.remove_all()
    return obs


@pytest.fixture(scope="session")
def coexisting(drivers, cutover_ctx):
    """{pair name: observations}: one scenario per pair, run on first use; its containers are
    removed at once (a later disruptive check must not find them)."""
    done = {}

    def run(pair):
        if pair.name not in done:
            try:
                done[pair.name] = _scenario(pair, drivers, cutover_ctx)
            except Exception as e:          # every check of the pair reports the same error
                done[pair.name] = e
        if isinstance(done[pair.name], Exception):
            raise done[pair.name]
        return done[pair.name]
    return run


def _attach(check, obs, *keys):
    for k, text in obs["evidence"].items():
        if not keys or any(x in k for x in keys):
            check.attach(k, text)


@pytest.mark.check("coex.allocation")
def test_allocation(pair, coexisting, drivers, check):
    obs = coexisting(pair)
    _attach(check, obs, "meminfo")
    expected, observed = {}, {}
    for t in pair.targets:
        a = obs["allocations"][t.name]
        want = expected_view(drivers.get(t), a)
        expected[f"{t.name} MemTotal"] = Approx(want["MemTotal kB"], rel=0.01, unit="kB")
        expected[f"{t.name} online CPUs"] = Equals(want["online CPUs"])
        observed[f"{t.name} MemTotal"] = obs["view"][t.name]["MemTotal kB"]
        observed[f"{t.name} online CPUs"] = obs["view"][t.name]["online CPUs"]
        check.note(f"{t.name}: {a.name} ({a.describe()})")
    check.note("both containers running, /proc/meminfo and /sys/devices/system/cpu/online")
    check.expect(expected, observed)


@pytest.mark.check("coex.cgroup-paths")
def test_cgroup_paths(pair, coexisting, check):
    obs = coexisting(pair)
    _attach(check, obs, "/cgroup")
    a, b = (obs["cgroup"][t.name] for t in pair.targets)
    check.note("/proc/<init pid>/cgroup of each container, read on the host")
    check.expect({"controllers where the two collide": Equals([])},
                 {"controllers where the two collide": coexist.collisions(a, b)})


@pytest.mark.check("coex.accounting")
def test_accounting(pair, coexisting, check):
    obs = coexisting(pair)
    _attach(check, obs, "counters")
    expected, observed = {}, {}
    for busy in pair.targets:
        for t in pair.targets:
            own = t.name == busy.name
            k = f"{t.name} CPU s while {busy.name} burns"
            burnt = obs["cpu"][busy.name][busy.name]
            expected[k] = AtLeast(CPU_OWN_MIN, unit="s") if own else \
                AtMost(round(max(0.05, CPU_OTHER_SHARE * burnt), 3), unit="s")
            observed[k] = obs["cpu"][busy.name][t.name]
            k = f"{t.name} memory MiB while {busy.name} writes {FILL_MIB} MiB"
            expected[k] = AtLeast(MEM_OWN_MIN_MIB, unit="MiB") if own else AtMost(MEM_OTHER_MAX_MIB, unit="MiB")
            observed[k] = obs["memory"][busy.name][t.name]
    check.note("cpuacct.usage and memory.usage_in_bytes of each container's own cgroup, "
               f"burns of up to {BURN_ROUNDS}x{BURN_S}s")
    check.expect(expected, observed)


def _look(probe):
    """The other side's container as it is now: init pid, state, and whether /proc still works."""
    try:
        st = probe.state()
        pid, status = st.pid, st.status
    except RuntimeFailure as e:
        pid, status = None, f"gone ({str(e)[:80]})"
    mem = None
    if status == "running":
        try:
            res = probe.exec(["cat", "/proc/meminfo"])
            mem = parse.meminfo(res.stdout).get("MemTotal") if res.exit_code == 0 else None
        except RuntimeFailure as e:          # it stopped between the two looks
            status = f"{status}, then {str(e)[:80]}"
    return {"pid": pid, "status": status, "MemTotal": mem}


@pytest.mark.disruptive("daemon")
@pytest.mark.check("coex.daemon-restart")
def test_daemon_restart(pair, drivers, containers, cutover_ctx, check):
    events = [(x, y) for x, y in (pair.targets, pair.targets[::-1]) if restartable(x)]
    if not events:
        raise Unsupported(f"neither {pair.a.name} nor {pair.b.name} has a daemon to stop and start "
                          "(daemon.stop and daemon.start in the targets file)")
    allocs = pair_allocations(cutover_ctx, pair)
    probes = {t.name: containers.run(drivers.get(t), allocs[t.name]).bind(check) for t in pair.targets}
    expected, observed = {}, {}
    for x, y in events:
        dx, other = drivers.get(x), probes[y.name]
        before = _look(other)
        dx.daemon("stop")
        try:
            seen = {"stopped": _look(other)}
        finally:
            dx.daemon("start")
            if not dx.wait_ready(cutover_ctx.timeout):
                raise RuntimeFailure(f"{x.name}'s daemon did not answer {cutover_ctx.timeout}s after its start")
        seen["restarted"] = _look(other)
        want_mem = allocs[y.name].memory // 1024
        for when, o in seen.items():
            at = f"({x.name}'s daemon {when})"
            expected.update({f"{y.name} init pid {at}": Equals(before["pid"]),
                             f"{y.name} state {at}": Equals("running"),
                             f"{y.name} MemTotal {at}": Approx(want_mem, rel=0.01, unit="kB")})
            observed.update({f"{y.name} init pid {at}": o["pid"], f"{y.name} state {at}": o["status"],
                             f"{y.name} MemTotal {at}": o["MemTotal"]})
        check.note(f"daemon.stop + daemon.start of {x.name} with {y.name}'s container running")
    check.expect(expected, observed)
