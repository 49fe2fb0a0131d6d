"""Disk quota: the disk a container sees is its quota, and the quota holds (T4 promise 2).

Every check runs per target x quota size (`--quotas`, default 64m,160m: small enough to fill
in a second). A size (df) or a write limit must lie within cutover.quota's tolerance: at most
the quota, and at most 8 MiB + 10% below it (file system overhead; see cutover/quota.py).

A runtime that cannot set a disk quota at all (the driver raises QuotaUnavailable, e.g. docker
on overlay2 without xfs project quota) *fails* every check with the reason "runtime cannot set
a disk quota": T4 always could, so this is a broken promise, not a harness error and not a
check the target cannot express. Fills write zeros with busybox dd up to a cap beyond the
quota, so a quota that does not hold shows as "none" (no error) and a written size past it.
"""
import dataclasses
import secrets

import pytest

from cutover import quota
from cutover.drivers.base import QuotaUnavailable, RuntimeFailure, Unsupported
from cutover.expect import AtMost, Equals, OneOf
from cutover.quota import MIB, mib

pytestmark = pytest.mark.disk_quota

FILL = "/cutover-fill"
DATA = "/cutover-data"
DATA_MIB = 8                 # the data that must survive restarts
LIMIT_ERRORS = OneOf("ENOSPC", "EDQUOT")
DAEMON_BACK_S = 60
# PID 1 that ends on SIGTERM (and LXC's SIGPWR): a bare `sleep` as PID 1 ignores it, and every
# stop or forced removal would wait out the runtime's grace period (podman: 10 s).
KEEP = ["sh", "-c", "trap 'exit 0' TERM PWR INT; sleep 86400 & wait"]


def cap(q, factor=1.25):
    """How many MiB a fill tries: past the quota, so that a quota that does not hold shows."""
    return int(q * factor) // MIB + 1


def run_quota_container(containers, driver, check, allocation, **kw):
    """A running container with the allocation's disk quota; fails the check if none can be set."""
    try:
        return containers.run(driver, allocation, command=KEEP, **kw).bind(check)
    except QuotaUnavailable as e:
        refused = str(e)
    check.attach("create with a disk quota", refused)
    check.expect({"disk quota": Equals(f"{allocation.disk // MIB} MiB set")}, {"disk quota": refused})


def fill(p, path, count_mib):
    """(error, bytes written) of writing up to count_mib MiB to path in the container."""
    try:
        return quota.fill_outcome(p.sh(quota.fill_script(path, count_mib)))
    except ValueError as e:
        raise RuntimeFailure(str(e)) from None


def df_size(p, path):
    """df's size of the file system holding path in the container, in bytes."""
    lines = p.sh(f"df -P -k {path}").strip().splitlines()
    try:
        return int(lines[-1].split()[1]) * 1024
    except (IndexError, ValueError):
        raise RuntimeFailure(f"df -P -k {path}: unexpected output: {lines[-1:]}") from None


def write_data(p):
    """DATA_MIB of random data; its checksum."""
    return p.sh(f"dd if=/dev/urandom of={DATA} bs=1M count={DATA_MIB} conv=fsync 2>/dev/null && "
                f"md5sum {DATA}").split()[0]


def observe_after_restart(p, allocation, check, checksum, what):
    """The data is intact and the quota still holds: data + a fill stay within the quota."""
    seen = p.sh(f"md5sum {DATA} 2>&1 || true").split()
    err, n = fill(p, FILL, cap(allocation.disk))
    check.note(f"{DATA} and a fill of / after {what}")
    check.expect({"data md5": Equals(checksum), "fill error": LIMIT_ERRORS,
                  "data + fill": quota.expected(allocation.disk)},
                 {"data md5": seen[0] if seen else None, "fill error": err,
                  "data + fill": mib(n + DATA_MIB * MIB)})


@pytest.mark.check("dq.df-root")
def test_df_root(containers, driver, allocation, check):
    p = run_quota_container(containers, driver, check, allocation)
    size = df_size(p, "/")
    check.note("df /")
    check.expect({"df / size": quota.expected(allocation.disk)}, {"df / size": mib(size)})


@pytest.fixture
def quota_volumes(containers, driver, cutover_ctx, request):
    """Quota'd volumes, removed after the test's containers (which mount them)."""
    made = []

    def make(size):
        name = f"cutover-dq-{secrets.token_hex(4)}"
        labels = dict(cutover_ctx.labels, **{"cutover.test": request.node.nodeid})
        driver.create_quota_volume(name, size, labels=labels)
        made.append(name)
        return name
    yield make
    containers.remove_all()
    for name in made:
        driver.remove_volume(name)


@pytest.mark.check("dq.df-volume")
def test_df_volume(containers, driver, allocation, check, quota_volumes):
    try:
        vol, refused = quota_volumes(allocation.disk), None
    except QuotaUnavailable as e:
        vol, refused = None, str(e)
    if refused:
        check.attach("create a quota'd volume", refused)
        check.expect({"volume quota": Equals(f"{allocation.disk // MIB} MiB set")}, {"volume quota": refused})
    # The container itself needs no disk quota here: the volume's is the subject.
    p = containers.run(driver, dataclasses.replace(allocation, disk=None), command=KEEP,
                       volumes={vol: "/vol"}).bind(check)
    size = df_size(p, "/vol")
    check.note(f"df /vol (volume {vol})")
    check.expect({"df /vol size": quota.expected(allocation.disk)}, {"df /vol size": mib(size)})


@pytest.mark.check("dq.write-limit")
def test_write_limit(containers, driver, allocation, check):
    p = run_quota_container(containers, driver, check, allocation)
    err, n = fill(p, FILL, cap(allocation.disk))
    check.note(f"dd to {FILL} until it fails")
    check.expect({"error": LIMIT_ERRORS, "written": quota.expected(allocation.disk)},
                 {"error": err, "written": mib(n)})


@pytest.mark.check("dq.rewrite-after-delete")
def test_rewrite_after_delete(containers, driver, allocation, check):
    p = run_quota_container(containers, driver, check, allocation)
    err1, n1 = fill(p, FILL, cap(allocation.disk))
    p.sh(f"rm {FILL}")
    err2, n2 = fill(p, FILL, cap(allocation.disk))
    check.note(f"dd to {FILL} until it fails, rm, dd again")
    check.expect({"first fill error": LIMIT_ERRORS, "written after delete": quota.expected(allocation.disk),
                  "error after delete": LIMIT_ERRORS},
                 {"first fill error": err1, "written after delete": mib(n2), "error after delete": err2})


@pytest.mark.check("dq.neighbours")
def test_neighbours(containers, driver, allocation, check, cutover_ctx):
    q2 = quota.neighbour_quota(allocation.disk, cutover_ctx.quota_allocations)
    other = dataclasses.replace(allocation, name=f"disk{q2 // MIB}m", disk=q2)
    a = run_quota_container(containers, driver, check, allocation)
    b = run_quota_container(containers, driver, check, other)
    err_a, n_a = fill(a, FILL, cap(allocation.disk))        # A stays full while B fills
    err_b, n_b = fill(b, FILL, cap(q2))
    ka, kb = f"A ({allocation.disk // MIB} MiB) written", f"B ({q2 // MIB} MiB) written, A full"
    check.note(f"container A with {allocation.disk // MIB} MiB filled, then neighbour B with {q2 // MIB} MiB")
    check.expect({ka: quota.expected(allocation.disk), kb: quota.expected(q2),
                  "A error": LIMIT_ERRORS, "B error": LIMIT_ERRORS},
                 {ka: mib(n_a), kb: mib(n_b), "A error": err_a, "B error": err_b})


@pytest.mark.check("dq.container-restart")
def test_container_restart(containers, driver, allocation, check):
    p = run_quota_container(containers, driver, check, allocation)
    checksum = write_data(p)
    driver.stop(p.id, grace=10)
    driver.start(p.id)
    observe_after_restart(p, allocation, check, checksum, "a container restart")


@pytest.mark.check("dq.daemon-restart")
@pytest.mark.disruptive("daemon")
def test_daemon_restart(containers, driver, allocation, check):
    for action in ("stop", "start"):
        if action not in driver.target.daemon:
            raise Unsupported(f"target '{driver.target.name}' has no daemon.{action} command")
    p = run_quota_container(containers, driver, check, allocation)
    checksum = write_data(p)
    driver.daemon("stop")
    driver.daemon("start")
    if not driver.wait_ready(DAEMON_BACK_S):
        raise RuntimeFailure(f"the daemon of target '{driver.target.name}' did not answer within "
                             f"{DAEMON_BACK_S}s after its restart")
    # Whether containers outlive their daemon is the lifecycle suite's check; this one asks
    # whether the quota and the data do, so a container the restart stopped is started again.
    if driver.inspect(p.id).status != "running":
        check.note("the container stopped with its daemon and was started again")
        driver.start(p.id)
    observe_after_restart(p, allocation, check, checksum, "a daemon restart")


def host_bytes(driver, path):
    """Bytes the host's file system spends on path (du: allocated blocks, sparse files count
    what was written). Host-wide free space is evidence only: on a shared host other writers
    move it by more than the tolerance."""
    res = driver.host.run(f"du -s -B1 {path} && stat -f -c 'free %a x %S bytes' {path}")
    if res.rc != 0:
        raise RuntimeFailure(f"du -s {path} on {driver.target.host}: {res.stderr.strip()[:200]}")
    return int(res.stdout.split()[0]), res.stdout


@pytest.mark.check("dq.host-fs")
def test_host_fs(containers, driver, allocation, check):
    p = run_quota_container(containers, driver, check, allocation)
    path = driver.storage_path(p.id)
    before, ev_before = host_bytes(driver, path)
    err, n = fill(p, FILL, cap(allocation.disk, factor=2))
    after, ev_after = host_bytes(driver, path)
    check.attach(f"host du/stat -f {path}", f"before:\n{ev_before}after:\n{ev_after}")
    check.note(f"host: the container's storage {path}, before and after a fill of / up to twice the quota")
    limit = allocation.disk + quota.allowance(allocation.disk)
    check.expect({"host space taken": AtMost(mib(limit), unit="MiB"), "fill error": LIMIT_ERRORS},
                 {"host space taken": mib(after - before), "fill error": err})
