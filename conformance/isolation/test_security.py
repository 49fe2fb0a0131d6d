"""Security isolation: a container cannot see or touch the host or its neighbours (T4 promise 6).

Read-only observations use the shared probe container; checks that try something (mount a
cgroup hierarchy, make device nodes, plant a secret) get containers of their own. Every write
a check attempts is harmless if it is accepted: it writes back the value it just read.
"""
import secrets

import pytest

from cutover import security
from cutover.drivers.base import RuntimeFailure
from cutover.expect import Equals

# Nothing here depends on the allocation; every container still gets one (T4 hands every
# instance an allocation), the first of the run's.
pytestmark = pytest.mark.one_allocation


def _status(probe, driver):
    """The status of the container's main process, read on the host (in the host's PID
    namespace a container's PID 1 is the host's), and of a process exec'd in the container."""
    pid = probe.state().pid
    main = driver.host.file(f"/proc/{pid}/status").content_string
    probe.check.attach(f"host: /proc/{pid}/status (main process)", main)
    return {"main": security.status_fields(main),
            "exec": security.status_fields(probe.sh("cat /proc/self/status"))}


@pytest.mark.check("sec.capabilities")
def test_capabilities(probe, driver, check):
    want = driver.documented_capabilities()
    extra, missing = set(), set()
    for st in _status(probe, driver).values():
        have = security.cap_names(st.get("CapEff"))
        extra |= have - want
        missing |= want - have
    check.note("CapEff of the main process (read on the host) and of /proc/self/status")
    check.expect({"capabilities beyond the default set": Equals([]),
                  "default capabilities missing": Equals([])},
                 {"capabilities beyond the default set": sorted(extra),
                  "default capabilities missing": sorted(missing)})


@pytest.mark.check("sec.seccomp")
def test_seccomp(probe, driver, check):
    st = _status(probe, driver)
    check.note("Seccomp of the main process (read on the host) and of /proc/self/status (2 = filter)")
    check.expect({"main process Seccomp": Equals("2"), "exec'd process Seccomp": Equals("2")},
                 {"main process Seccomp": st["main"].get("Seccomp"),
                  "exec'd process Seccomp": st["exec"].get("Seccomp")})


@pytest.mark.check("sec.no-new-privs")
def test_no_new_privs(containers, driver, allocation, check):
    """Decided: expected wherever the container asks for it (T4's application containers do),
    for the main process and for every exec'd process; by default neither Docker nor podman
    sets it, so a default container is not judged."""
    c = containers.run(driver, allocation, no_new_privileges=True).bind(check)
    st = _status(c, driver)
    check.note("a container created with no-new-privileges; NoNewPrivs of its processes")
    check.expect({"main process NoNewPrivs": Equals("1"), "exec'd process NoNewPrivs": Equals("1")},
                 {"main process NoNewPrivs": st["main"].get("NoNewPrivs"),
                  "exec'd process NoNewPrivs": st["exec"].get("NoNewPrivs")})


def _host_ns(driver, ns):
    """The host's namespace: its PID 1's, or (where PID 1 cannot be read, as here) that of a
    shell the harness runs on the host, which is where the runtime's daemon runs too."""
    res = driver.host.run(f"readlink /proc/1/ns/{ns} || readlink /proc/self/ns/{ns}")
    link = res.stdout.strip().splitlines()[-1:] if res.stdout.strip() else []
    if not link:
        raise RuntimeFailure(f"cannot read the host's {ns} namespace: {res.stderr.strip()[:200]}")
    return link[0]


NS_SCRIPT = ('echo "self: $(readlink /proc/self/ns/{ns})"; '
             'for p in /proc/[0-9]*; do l=$(readlink $p/ns/{ns} 2>/dev/null) && echo "${{p#/proc/}}: $l"; done; true')


@pytest.mark.parametrize("ns", [pytest.param(ns, marks=pytest.mark.check(f"sec.ns-{ns}"), id=ns)
                                for ns in security.NAMESPACES])
def test_namespace_private(ns, probe, driver, check):
    host = _host_ns(driver, ns)
    links = security.ns_links(probe.sh(NS_SCRIPT.format(ns=ns)))
    own = dict(links).get("self")
    in_host_ns = sorted(int(label) for label, link in links if label != "self" and link == host)
    check.attach("host namespace", f"{ns}: {host}")
    check.note(f"/proc/self/ns/{ns} and /proc/*/ns/{ns} inside vs the host's /proc/1/ns/{ns}")
    check.expect({f"own {ns} namespace": Equals("private"),
                  f"visible processes in the host's {ns} namespace": Equals(0)},
                 {f"own {ns} namespace": "private" if own and own != host else f"the host's {host}",
                  f"visible processes in the host's {ns} namespace": len(in_host_ns)})


@pytest.mark.check("sec.host-processes")
def test_host_processes_invisible(probe, driver, check):
    """Host processes are told apart by command line: the host's PID 1, and the container's
    own monitor (containerd-shim, conmon), which runs on the host with the container's ID."""
    def host_cmdline(pid):
        raw = driver.host.file(f"/proc/{pid}/cmdline").content
        return raw.replace(b"\0", b" ").decode(errors="replace").strip()
    state = probe.state()
    parent = driver.host.run(f"cut -d' ' -f4 /proc/{state.pid}/stat").stdout.strip()
    markers = {"host PID 1": host_cmdline(1), "the container's monitor": host_cmdline(parent)}
    check.attach("host-side command lines", "\n".join(f"{k}: {v}" for k, v in markers.items()))
    out = probe.sh("for p in /proc/[0-9]*; do echo \"${p#/proc/} $(tr '\\0' ' ' < $p/cmdline 2>/dev/null)\"; done")
    seen = []
    for line in out.splitlines():
        pid, _, cmd = line.partition(" ")
        for what, marker in markers.items():
            if marker and cmd.strip() == marker:
                seen.append(f"{what} (pid {pid} here)")
    check.note(f"/proc/*/cmdline inside ({len(out.splitlines())} processes visible)")
    check.expect({"host processes visible": Equals([])}, {"host processes visible": seen})


# wb FILE: write FILE's own value back; say ACCEPTED or REFUSED (with the error).
WRITE_BACK = r"""
wb() {
  v=$(cat "$1") || { echo "UNREADABLE $1"; return; }
  if err=$( { printf '%s\n' "$v" > "$1"; } 2>&1 ); then echo "ACCEPTED $1"; else echo "REFUSED $1 $err"; fi
}
"""


def _write_back(probe, path):
    """Write a file's own value back to it: refused, or accepted (and then nothing changed)."""
    out = probe.sh(WRITE_BACK + f"wb {path}")
    if security.marked(out, "UNREADABLE"):
        raise RuntimeFailure(f"{path} is not readable in the container: nothing to write back")
    return "accepted" if security.marked(out, "ACCEPTED") else "refused"


@pytest.mark.check("sec.proc-sys-ro")
def test_proc_sys_read_only(probe, check):
    # A host-wide tunable (not namespaced): accepted, it would change the host's setting.
    path = "/proc/sys/vm/overcommit_ratio"
    check.note(f"writing {path} its own value back")
    check.expect({f"write to {path}": Equals("refused")}, {f"write to {path}": _write_back(probe, path)})


@pytest.mark.check("sec.sys-ro")
def test_sys_read_only(probe, check):
    path = probe.sh("ls /sys/block/*/queue/read_ahead_kb /sys/kernel/mm/transparent_hugepage/"
                    "khugepaged/pages_to_scan 2>/dev/null | grep -v -e /loop -e /zram -e /ram | head -1").strip()
    if not path:
        raise RuntimeFailure("no writable /sys attribute to try (no block device, no THP)")
    check.note(f"writing {path} its own value back")
    check.expect({f"write to {path}": Equals("refused")}, {f"write to {path}": _write_back(probe, path)})


DEVICES_SCRIPT = r"""
disk=$(for d in /sys/block/*; do case ${d##*/} in loop*|ram*|zram*|nbd*) ;; *) echo ${d##*/}; break;; esac; done)
try() {  # name type major minor: open the node (without reading), making it first if absent
  p=/dev/$1
  [ -e "$p" ] || { p=/tmp/.cutover-dev-$1; rm -f "$p"; mknod "$p" $2 $3 $4 2>/dev/null || { echo "NOMKNOD $1"; return; }; }
  if (exec 3< "$p") 2>/dev/null; then echo "OPENED $1"; else echo "DENIED $1"; fi
}
try mem c 1 1
try kmsg c 1 11
try loop0 b 7 0
[ -n "$disk" ] && try "$disk" b $(tr ':' ' ' < /sys/block/$disk/dev)
"""


@pytest.mark.check("sec.devices")
def test_devices(containers, driver, allocation, check):
    """Opened, not read: /dev/mem (absent from some kernels), /dev/kmsg (its open also needs
    CAP_SYSLOG), /dev/loop0 (a block device every host has, openable by root without any
    capability: only the device cgroup stands in the way) and the host's first disk."""
    c = containers.run(driver, allocation).bind(check)
    out = c.sh(DEVICES_SCRIPT)
    tried = len(out.splitlines())
    check.note(f"/dev/mem, /dev/kmsg, /dev/loop0 and the host's disk, made with mknod where absent "
               f"({tried} tried)")
    check.expect({"device nodes opened": Equals([])}, {"device nodes opened": security.marked(out, "OPENED")})


RELEASE_AGENT_SCRIPT = WRITE_BACK + r"""
for f in /sys/fs/cgroup/release_agent /sys/fs/cgroup/*/release_agent; do [ -e "$f" ] && wb "$f"; done
mkdir -p /tmp/.cutover-cg
if err=$(mount -t cgroup -o memory cgroup /tmp/.cutover-cg 2>&1); then
  echo "MOUNTED memory"; wb /tmp/.cutover-cg/release_agent; umount /tmp/.cutover-cg
else
  echo "NOMOUNT $err"
fi
"""


@pytest.mark.check("sec.release-agent")
def test_release_agent(containers, driver, allocation, check):
    """Visible release_agent files, and the root of a cgroup v1 hierarchy the container mounts
    itself (the classic escape); each is written its own value back."""
    c = containers.run(driver, allocation).bind(check)
    out = c.sh(RELEASE_AGENT_SCRIPT)
    check.note("release_agent under /sys/fs/cgroup and in a freshly mounted memory hierarchy")
    check.expect({"release_agent writes accepted": Equals([])},
                 {"release_agent writes accepted": security.marked(out, "ACCEPTED")})


@pytest.mark.check("sec.neighbour-files")
def test_neighbour_files(containers, driver, allocation, check):
    token = secrets.token_hex(8)
    name = f".cutover-secret-{token}"
    a = containers.run(driver, allocation).bind(check)
    b = containers.run(driver, allocation).bind(check)
    places = [f"/tmp/{name}", f"/dev/shm/{name}"]
    a.sh(" && ".join(f"echo {token} > {p}" for p in places))
    try:
        # From the neighbour: the same paths, and every visible process's root.
        out = b.sh(f"for f in {' '.join(places)} /proc/[0-9]*/root/tmp/{name}; do "
                   f"grep -qs {token} $f && echo \"FOUND $f\"; done; true")
    finally:
        # /dev/shm may be the host's (ipc: host): never leave the secret behind.
        a.sh(f"rm -f {' '.join(places)}")
    check.note("a secret in one container's /tmp and /dev/shm, looked for from another")
    check.expect({"neighbour's secret readable at": Equals([])},
                 {"neighbour's secret readable at": security.marked(out, "FOUND")})
