"""The harness's own security on the real lab: what its daemons expose, and to whom.

- No process of the lab listens on TCP beyond loopback in the machine's network namespace
  (its /proc/<pid>/net/tcp{,6} listeners matched to the process's own socket inodes).
- Every unix socket a lab process holds is reachable by root only: the sockets the lab names
  itself (run/*.sock, the daemons' -H endpoints) are 0600 in a 0700 directory, and those the
  daemons make on their own (containerd's 0660, dockerd's metrics.sock 0755, the shims' under
  /run/containerd/s) sit under a directory that only root may enter.
- The ssh configs the lab writes (simulated hosts, kernel-gate guests) use the lab's own keys
  and known_hosts, with StrictHostKeyChecking yes, as ssh itself reads them (`ssh -G`).

Each checker is also shown to catch the bad case (a wildcard listener, a world-writable
socket, a listening abstract socket, a config that accepts any host key), so none of these
checks can only pass. Simulated hosts (<lab>/hosts/, `lab up --hosts N`) are judged too when
the lab has them: their sockets on disk, and their ssh config.
"""
import os
import socket
import stat
import subprocess
import sys

import pytest

from cutover.lab import cgroups

# -- which processes are the lab's -------------------------------------------------------------


def _cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def lab_pids(lab):
    """Every process of the lab: in its cgroups, or naming its directory on the command line."""
    pids = set(cgroups.pids_under(lab.cgroup_name) or [])
    for name in os.listdir("/proc"):
        if name.isdigit() and lab.root + "/" in _cmdline(int(name)) + " ":
            pids.add(int(name))
    return {p for p in pids if os.path.exists(f"/proc/{p}")}


def socket_inodes(pid):
    out = set()
    try:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except OSError:
                continue
            if link.startswith("socket:["):
                out.add(int(link[8:-1]))
    except OSError:
        pass
    return out


def _netns(pid):
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


# -- TCP listeners ---------------------------------------------------------------------------

def _addr(hexaddr):
    """'0100007F:1F90' -> ('127.0.0.1', 8080); IPv6 likewise (kernel's per-word byte order)."""
    host, port = hexaddr.split(":")
    raw = bytes.fromhex(host)
    if len(raw) == 4:
        ip = socket.inet_ntop(socket.AF_INET, raw[::-1])
    else:
        ip = socket.inet_ntop(socket.AF_INET6, b"".join(raw[i:i + 4][::-1] for i in range(0, 16, 4)))
    return ip, int(port, 16)


def _loopback(ip):
    return ip.startswith("127.") or ip in ("::1", "::ffff:127.0.0.1") or ip.startswith("::ffff:127.")


def tcp_listeners(pids):
    """[(pid, ip, port, cmd)] of TCP listeners the pids hold in the machine's network namespace."""
    mine = _netns("self")
    out = []
    for pid in sorted(pids):
        if _netns(pid) != mine:
            continue                  # a container's or a simulated host's own namespace
        inodes = socket_inodes(pid)
        for table in ("tcp", "tcp6"):
            try:
                with open(f"/proc/{pid}/net/{table}") as f:
                    rows = f.read().splitlines()[1:]
            except OSError:
                continue
            for row in rows:
                cols = row.split()
                if cols[3] == "0A" and int(cols[9]) in inodes:          # 0A = LISTEN
                    ip, port = _addr(cols[1])
                    out.append((pid, ip, port, _cmdline(pid)[:80]))
    return out


def test_no_lab_daemon_listens_beyond_loopback(lab):
    pids = lab_pids(lab)
    assert len(pids) >= 5, f"found only {len(pids)} lab processes: is the lab up?"
    found = tcp_listeners(pids)
    print(f"\n{len(pids)} lab processes; TCP listeners in the machine's namespace:")
    for pid, ip, port, cmd in found:
        print(f"  {ip}:{port}  pid {pid}  {cmd}")
    wide = [f for f in found if not _loopback(f[1])]
    assert not wide, f"lab processes listening beyond loopback: {wide}"
    # The registry is the one TCP service of the lab (127.0.0.1:<port>): the scan must see it.
    assert any("registry" in cmd for _, _, _, cmd in found), found


def test_the_listener_scan_catches_a_wildcard_listener(lab):
    """Negative control: a process of the lab's (it names the lab directory) on 0.0.0.0."""
    code = ("import socket, sys, time; a = socket.socket(); a.bind(('0.0.0.0', 0)); a.listen(); "
            "b = socket.socket(); b.bind(('127.0.0.1', 0)); b.listen(); print('ready', flush=True); time.sleep(60)")
    p = subprocess.Popen([sys.executable, "-c", code, os.path.join(lab.root, "selftest-listener")],
                         stdout=subprocess.PIPE, text=True)
    try:
        assert p.stdout.readline().strip() == "ready"
        found = [f for f in tcp_listeners(lab_pids(lab)) if f[0] == p.pid]
        assert sorted(_loopback(ip) for _, ip, _, _ in found) == [False, True], found
    finally:
        p.kill()
        p.wait(timeout=10)


# -- unix sockets ----------------------------------------------------------------------------

def unix_sockets(pids):
    """{path: (pid, listening, type)} of the unix sockets with a name that the pids hold;
    abstract names start with '@'."""
    inodes = {}
    for pid in pids:
        for i in socket_inodes(pid):
            inodes.setdefault(i, pid)
    out = {}
    with open("/proc/net/unix") as f:
        for row in f.read().splitlines()[1:]:
            cols = row.split()       # Num RefCount Protocol Flags Type St Inode Path
            if len(cols) >= 8 and int(cols[6]) in inodes:
                listening = bool(int(cols[3], 16) & 0x10000)      # __SO_ACCEPTCON
                kind = {"0001": "stream", "0002": "dgram", "0005": "seqpacket"}.get(cols[4], cols[4])
                out[cols[7]] = (inodes[int(cols[6])], listening, kind)
    return out


def abstract_problem(name, listening, kind, lxcpath=None):
    """An abstract socket has no file permissions: anyone in the namespace may connect to it.

    Allowed: the kernel's autobind names (@ + 5 hex digits) of sockets that do not listen (a
    client's own address, e.g. a datagram socket for syslog); and, while an LXC container
    runs, its monitor's command socket @<lxcpath>/<name>/command, which LXC itself guards:
    it takes the peer's SCM_CREDENTIALS and refuses any peer that is not root (or its own
    uid/gid) with EACCES (lxc_abstract_unix_rcv_credential). Nothing else that serves.
    """
    import re
    if not listening and re.fullmatch(r"@[0-9a-f]{5}", name):
        return ""
    if lxcpath and kind == "stream" and re.fullmatch(re.escape("@" + lxcpath) + r"/[^/]+/command", name):
        return ""
    return f"abstract {kind} socket {name}{' listening' if listening else ''}: no file permissions guard it"


def private_dir(path):
    """The nearest ancestor directory that only root may enter, or None."""
    d = os.path.dirname(path)
    while d and d != "/":
        st = os.stat(d)
        if st.st_uid == 0 and not st.st_mode & 0o077:
            return d
        d = os.path.dirname(d)
    return None


def socket_problems(path, lab_root):
    """Why a socket is not private to root ('' when it is)."""
    st = os.lstat(path)
    if not stat.S_ISSOCK(st.st_mode):
        return "not a socket"
    if st.st_uid != 0:
        return f"owned by uid {st.st_uid}"
    mode = stat.S_IMODE(st.st_mode)
    if os.path.dirname(path) == os.path.join(lab_root, "run") and mode != 0o600:
        return f"a lab endpoint with mode {mode:o}, not 600"
    if mode & 0o002:
        return f"world-writable (mode {mode:o})"
    if mode & 0o077 and private_dir(path) is None:
        return f"mode {mode:o} and no root-only directory above it"
    return ""


def test_lab_sockets_are_root_only(lab):
    pids = lab_pids(lab)
    held = unix_sockets(pids)
    on_disk = {}
    for d, dirs, files in os.walk(lab.root):          # simulated hosts' (<lab>/hosts/) included
        for n in files:
            p = os.path.join(d, n)
            if stat.S_ISSOCK(os.lstat(p).st_mode):
                on_disk[p] = None
    st = os.stat(lab.root)
    assert st.st_uid == 0 and stat.S_IMODE(st.st_mode) == 0o700, f"{lab.root} is {stat.S_IMODE(st.st_mode):o}"
    run = os.stat(os.path.join(lab.root, "run"))
    assert stat.S_IMODE(run.st_mode) == 0o700
    paths = sorted(set(on_disk) | {p for p in held if not p.startswith("@")})
    print(f"\n{len(paths)} unix sockets of the lab (mode, the root-only directory above it):")
    problems = {}
    for p in paths:
        if not os.path.exists(p):
            print(f"  {p}: in another mount namespace (podman's), not visible here")
            continue
        why = socket_problems(p, lab.root)
        print(f"  {stat.S_IMODE(os.lstat(p).st_mode):o} {p}  [{private_dir(p)}]{'  PROBLEM: ' + why if why else ''}")
        if why:
            problems[p] = why
    for p in sorted(p for p in held if p.startswith("@")):
        pid, listening, kind = held[p]
        why = abstract_problem(p, listening, kind)
        print(f"  abstract {kind} {p} (pid {pid}, {'listening' if listening else 'not listening'})"
              f"{'  PROBLEM: ' + why if why else ''}")
        if why:
            problems[p] = why
    assert not problems, problems
    # What the lab serves its targets on must be among them: the scan saw the real thing.
    for name in ("docker.sock", "docker-nlr.sock", "podman.sock"):
        assert os.path.join(lab.root, "run", name) in paths
    # Sockets outside the lab directory (containerd's shims use /run/containerd/s/<hash>)
    # are private too, or the scan above would have said so.
    outside = [p for p in paths if not p.startswith(lab.root + "/")]
    assert all(socket_problems(p, lab.root) == "" for p in outside)


def test_the_socket_check_catches_an_open_socket():
    """Negative controls: a world-writable socket, a 0660 one under open directories only, a
    lab endpoint that is not 0600; and the same socket passes once it is 0600."""
    import shutil
    import tempfile
    d = tempfile.mkdtemp(prefix="cv-sock-", dir="/tmp")         # /tmp itself is open to all
    s, s2 = socket.socket(socket.AF_UNIX), socket.socket(socket.AF_UNIX)
    try:
        os.chmod(d, 0o755)
        path = os.path.join(d, "x.sock")
        s.bind(path)
        os.chmod(path, 0o666)
        assert "world-writable" in socket_problems(path, d)
        os.chmod(path, 0o660)
        assert "no root-only directory" in socket_problems(path, d)
        os.chmod(d, 0o700)
        assert socket_problems(path, d) == ""                  # now only root may enter d
        os.makedirs(os.path.join(d, "run"), mode=0o700)
        ep = os.path.join(d, "run", "docker.sock")
        s2.bind(ep)
        os.chmod(ep, 0o644)
        assert "not 600" in socket_problems(ep, d)
        os.chmod(ep, 0o600)
        assert socket_problems(ep, d) == ""
    finally:
        s.close()
        s2.close()
        shutil.rmtree(d)


def test_sockets_while_containers_run(lab):
    """The same scan with a container on docker, podman and lxc-t4: the shims' and conmon's
    sockets (outside the lab directory too) and LXC's monitor socket appear, all root-only."""
    from cutover import allocations
    from cutover.drivers import driver_for
    from cutover.drivers.base import ContainerSpec
    ts = lab.targets()
    alloc = allocations.parse_spec("sec:cpuset=0,mem=128m")[0]
    made = []
    try:
        for name in ("docker", "podman", "lxc-t4"):
            d = driver_for(ts[name])
            made.append((d, d.run(ContainerSpec(image=ts[name].image, command=["sleep", "120"], allocation=alloc,
                                                labels={"cutover": "1", "cutover.run": "selftest-security",
                                                        "cutover.test": "test_sockets_while_containers_run"}))))
        lxcpath = ts["lxc-t4"].endpoint[len("lxc://"):].rstrip("/")
        held = unix_sockets(lab_pids(lab))
        problems = {}
        print(f"\nwith {len(made)} containers running, {len(held)} named unix sockets of the lab:")
        for p, (pid, listening, kind) in sorted(held.items()):
            if p.startswith("@"):
                why = abstract_problem(p, listening, kind, lxcpath)
            elif not os.path.exists(p):
                continue             # in podman's own mount namespace
            else:
                why = socket_problems(p, lab.root)
            if not p.startswith(lab.root + "/") or p.startswith("@"):
                print(f"  {p} (pid {pid}, {kind}{', listening' if listening else ''})"
                      f"{'  PROBLEM: ' + why if why else ''}")
            if why:
                problems[p] = why
        assert not problems, problems
        assert any(p.startswith("@" + lxcpath + "/") for p in held), "the LXC monitor's socket was not seen"
        assert all(_loopback(ip) for _, ip, _, _ in tcp_listeners(lab_pids(lab)))
    finally:
        for d, cid in reversed(made):
            d.remove(cid)


def test_the_abstract_socket_check_catches_a_listener():
    s = socket.socket(socket.AF_UNIX)
    s.bind("\0cutover-selftest-%d" % os.getpid())
    s.listen()
    try:
        held = unix_sockets({os.getpid()})
        name = "@cutover-selftest-%d" % os.getpid()
        assert held[name][1] is True
        assert "listening" in abstract_problem(name, *held[name][1:])
        assert abstract_problem("@9c028", False, "dgram") == ""
        assert abstract_problem("@/l/c1/command", True, "stream", "/l") == ""
        assert "listening" in abstract_problem("@/elsewhere/c1/command", True, "stream", "/l")
    finally:
        s.close()


# -- ssh configs -----------------------------------------------------------------------------

def ssh_effective(config, host):
    """ssh's own reading of config for host (`ssh -G`): {option: [values]}."""
    res = subprocess.run(["ssh", "-G", "-F", config, host], capture_output=True, text=True, timeout=10)
    assert res.returncode == 0, res.stderr
    out = {}
    for line in res.stdout.splitlines():
        k, _, v = line.partition(" ")
        out.setdefault(k.lower(), []).append(v)
    return out


def ssh_problems(config, host, lab_root):
    g = ssh_effective(config, host)
    why = []
    if g.get("stricthostkeychecking") != ["true"]:
        why.append(f"StrictHostKeyChecking {g.get('stricthostkeychecking')}")
    for k in ("userknownhostsfile", "identityfile"):
        vals = " ".join(g.get(k, [])).split()
        if not vals or not all(v.startswith(lab_root + "/") for v in vals):
            why.append(f"{k} {vals} not the lab's own")
    if g.get("globalknownhostsfile") != ["/dev/null"]:
        why.append(f"GlobalKnownHostsFile {g.get('globalknownhostsfile')}")
    if g.get("identitiesonly") != ["yes"]:
        why.append("IdentitiesOnly not yes (an agent's keys would be offered)")
    return why


def _hosts_of(config):
    with open(config) as f:
        return [w for line in f if line.strip().lower().startswith("host ")
                for w in line.split()[1:] if w != "*"]


def lab_ssh_configs(lab):
    out = []
    for d, _, files in os.walk(lab.root):
        out += [os.path.join(d, n) for n in files if n == "ssh_config"]
    return sorted(out)


def test_lab_ssh_configs_use_lab_keys_and_strict_host_keys(lab):
    configs = lab_ssh_configs(lab)
    if not configs:
        pytest.skip("this lab has no simulated hosts or guests (lab up --hosts N): no ssh config to check")
    for cfg in configs:
        hosts = _hosts_of(cfg)
        assert hosts, cfg
        for h in hosts:
            assert ssh_problems(cfg, h, lab.root) == [], (cfg, h)
            key = ssh_effective(cfg, h)["identityfile"][0]
            assert stat.S_IMODE(os.stat(key).st_mode) == 0o600, key
        print(f"\n{cfg}: {', '.join(hosts)}: lab key, lab known_hosts, StrictHostKeyChecking yes")


def test_the_ssh_check_catches_a_lax_config(tmp_path):
    lab_root = str(tmp_path)
    key = tmp_path / "id"
    key.write_text("")
    good = (f"Host h1\n  HostName 10.0.0.1\nHost *\n  IdentityFile {key}\n  IdentitiesOnly yes\n"
            f"  UserKnownHostsFile {tmp_path}/known_hosts\n  GlobalKnownHostsFile /dev/null\n"
            "  StrictHostKeyChecking yes\n")
    cfg = tmp_path / "ssh_config"
    cfg.write_text(good)
    assert ssh_problems(str(cfg), "h1", lab_root) == []
    for lax, needle in (("StrictHostKeyChecking accept-new", "StrictHostKeyChecking"),
                        ("StrictHostKeyChecking no", "StrictHostKeyChecking"),
                        ("UserKnownHostsFile ~/.ssh/known_hosts", "userknownhostsfile"),
                        ("IdentityFile ~/.ssh/id_rsa", "identityfile")):
        key_, _ = lax.split(" ", 1)
        text = "\n".join(l for l in good.splitlines() if not l.strip().startswith(key_)) + "\n"
        cfg.write_text(text.replace("Host *\n", f"Host *\n  {lax}\n"))
        assert any(needle.lower() in w.lower() for w in ssh_problems(str(cfg), "h1", lab_root)), lax
