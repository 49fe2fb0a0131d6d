"""A remote daemon's unix socket, forwarded to a local one by the ssh binary.

How Cutover reaches the Docker API of a remote host (endpoint `ssh://[user@]host[:port][/socket]`,
default socket /var/run/docker.sock): one `ssh -N -L local.sock:remote.sock` per endpoint per
process, started on first use with the targets file's ssh config, and the docker SDK then talks
plain unix:// to the local end. Why this and not the SDK's own ssh:// support is in the README
("Fleets"): it honours an explicit ssh config (-F), needs no docker CLI on the host, keeps one
connection per endpoint, and a dead host shows as a dead forwarder instead of slow timeouts.

How ssh reaches the endpoint's host: for a target on `ansible://H` whose endpoint is on H, the
connection data of H in the inventory (ansible_host, ansible_port, ansible_user,
ansible_ssh_private_key_file, ansible_ssh_common_args / _extra_args), read by testinfra's own
inventory code, so the forward goes exactly where testinfra's ansible backend goes; for any
other target, `ssh -F <the targets file's ssh_config>` and the endpoint's user and port.

Forwarders die with the process that started them (PR_SET_PDEATHSIG). That signal follows the
*thread* that forked, so every forwarder is forked by one long-lived spawner thread.
"""
import atexit
import itertools
import ctypes
import os
import queue
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.parse

from cutover.errors import CutoverError

DEFAULT_REMOTE_SOCKET = "/var/run/docker.sock"
_PR_SET_PDEATHSIG = 1

_lock = threading.Lock()
_key_locks = {}
_forwards = {}          # key -> Forward
_dir = None
_spawn_q = None
_seq = itertools.count(1)


class Forward:
    def __init__(self, proc, local, errlog):
        self.proc, self.local, self.errlog = proc, local, errlog

    @property
    def url(self):
        return f"unix://{self.local}"

    def alive(self):
        return self.proc.poll() is None

    def error(self):
        try:
            with open(self.errlog, errors="replace") as f:
                lines = [l.strip() for l in f if l.strip()]
            return lines[-1][:300] if lines else f"ssh exited {self.proc.returncode}"
        except OSError:
            return f"ssh exited {self.proc.returncode}"


def parse_endpoint(endpoint):
    """ssh://[user@]host[:port][/path] -> (user, host, port, remote socket path)."""
    u = urllib.parse.urlsplit(endpoint)
    if u.scheme != "ssh" or not u.hostname:
        raise CutoverError(f"endpoint '{endpoint}': expected ssh://[user@]host[:port][/socket]")
    try:
        port = u.port
    except ValueError:
        raise CutoverError(f"endpoint '{endpoint}': bad port") from None
    return u.username, u.hostname, port, u.path if u.path not in ("", "/") else DEFAULT_REMOTE_SOCKET


def ssh_argv(ssh_config, user, host, port, extra=()):
    argv = ["ssh"]
    if ssh_config:
        argv += ["-F", ssh_config]
    argv += list(extra)
    if user:
        argv += ["-l", user]
    if port:
        argv += ["-p", str(port)]
    return argv + ["--", host]


def inventory_argv(inventory, host, extra=()):
    """ssh argv to inventory host `host`, from its connection data (extra options first: for
    ssh the first value of an option wins, and the forward's ControlMaster=no must)."""
    import shlex
    from cutover import fleet
    from testinfra.utils.ansible_runner import AnsibleRunner
    fleet.use_venv_tools()
    try:
        h = AnsibleRunner.get_runner(inventory).get_host(host)
    except Exception as e:
        raise CutoverError(f"cannot read inventory {inventory}: {str(e).splitlines()[0][:200]}") from None
    b = getattr(h, "backend", None)
    if b is None or getattr(b, "NAME", None) != "ssh":
        how = getattr(b, "NAME", "no connection testinfra knows") if b is not None else "no connection testinfra knows"
        raise CutoverError(f"inventory {inventory}: host {host} is reached by {how}, not ssh: "
                           "its ssh:// endpoint cannot be forwarded")
    if b.host.password:
        raise CutoverError(f"inventory {inventory}: host {host} logs in with a password; the forward needs a key")
    argv = ["ssh", *extra, *shlex.split(b.ssh_extra_args or "")]
    if b.ssh_config:
        argv += ["-F", b.ssh_config]
    if b.ssh_identity_file:
        argv += ["-i", b.ssh_identity_file]
    if b.host.user:
        argv += ["-l", b.host.user]
    if b.host.port:
        argv += ["-p", str(b.host.port)]
    return argv + ["--", b.host.name]


def _via_inventory(target, host):
    return bool(target.ansible_inventory) and target.host == f"ansible://{host}"


def local_url(target, timeout=30):
    """unix:// URL of a local socket forwarded to the target's ssh:// endpoint (started once)."""
    user, host, port, remote = parse_endpoint(target.endpoint)
    if _via_inventory(target, host):
        key = (("inventory", target.ansible_inventory), None, host, None, remote)
    else:
        key = (target.ssh_config, user, host, port, remote)
    with _lock:
        klock = _key_locks.setdefault(key, threading.Lock())
    with klock:
        fwd = _forwards.get(key)
        if fwd is not None and fwd.alive():
            return fwd.url
        fwd = _start(key, timeout)
        if not fwd.alive() or not os.path.exists(fwd.local):
            msg = fwd.error() if not fwd.alive() else f"no forwarded socket after {timeout}s"
            _stop(fwd)
            raise CutoverError(f"target '{target.name}': host {target.host} unreachable: "
                               f"ssh forward to {target.endpoint} failed: {msg}")
        _forwards[key] = fwd
        return fwd.url


def docker_client(target, timeout=30):
    """A docker SDK client on the local end of the target's forwarded socket."""
    from cutover.drivers.exactconn import unix_client
    return unix_client(local_url(target, timeout), timeout)


def _start(key, timeout):
    ssh_config, user, host, port, remote = key
    d = _sockdir()
    n = next(_seq)
    local = os.path.join(d, f"f{n}.sock")
    errlog = os.path.join(d, f"f{n}.err")
    extra = ["-N", "-T", "-o", "BatchMode=yes", "-o", "ExitOnForwardFailure=yes",
             # A forwarder has its own connection: a shared master would outlive it.
             "-o", "ControlMaster=no", "-o", "ControlPath=none",
             "-o", f"ConnectTimeout={max(1, int(timeout))}",
             "-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3",
             "-o", "StreamLocalBindUnlink=yes", "-L", f"{local}:{remote}"]
    if isinstance(ssh_config, tuple):       # ("inventory", path): the inventory's connection data
        argv = inventory_argv(ssh_config[1], host, extra)
    else:
        argv = ssh_argv(ssh_config, user, host, port, extra)
    proc = _spawn(argv, errlog)
    fwd = Forward(proc, local, errlog)
    deadline = time.monotonic() + timeout + 5
    while time.monotonic() < deadline and fwd.alive() and not os.path.exists(local):
        time.sleep(0.02)
    return fwd


def _sockdir():
    global _dir
    with _lock:
        if _dir is None:
            _dir = tempfile.mkdtemp(prefix="cutover-fwd-")   # 0700: the sockets are root's API
            atexit.register(stop_all)
        return _dir


def _pdeathsig():
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


def _spawner(q):
    while True:
        argv, errlog, box, done = q.get()
        try:
            with open(errlog, "ab") as err:
                box.append(subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                            stderr=err, preexec_fn=_pdeathsig, close_fds=True))
        except Exception as e:  # reported to the caller
            box.append(e)
        done.set()


def _spawn(argv, errlog):
    global _spawn_q
    with _lock:
        if _spawn_q is None:
            _spawn_q = queue.Queue()
            threading.Thread(target=_spawner, args=(_spawn_q,), name="cutover-sshfwd", daemon=True).start()
    box, done = [], threading.Event()
    _spawn_q.put((argv, errlog, box, done))
    done.wait()
    if isinstance(box[0], Exception):
        raise CutoverError(f"cannot start ssh: {box[0]}")
    return box[0]


def _stop(fwd):
    if fwd.alive():
        fwd.proc.terminate()
        try:
            fwd.proc.wait(5)
        except subprocess.TimeoutExpired:
            fwd.proc.kill()
            fwd.proc.wait(5)


def stop_all():
    with _lock:
        fwds = list(_forwards.values())
        _forwards.clear()
    for f in fwds:
        _stop(f)
    global _dir
    if _dir:
        shutil.rmtree(_dir, ignore_errors=True)
        _dir = None
