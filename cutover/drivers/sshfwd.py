"""A remote daemon's unix socket, forwarded to a local one by the ssh binary.

How Cutover reaches the Docker API of a remote host (endpoint `ssh://[user@]host[:port][/socket]`,
default socket /var/run/docker.sock): one `ssh -N -L local.sock:remote.sock` per endpoint per
process, started on first use with the targets file's ssh config, and the docker SDK then talks
plain unix:// to the local end. Why this and not the SDK's own ssh:// support is in the README
("Fleets"): it honours an explicit ssh config (-F), needs no docker CLI on the host, keeps one
connection per endpoint, and a dead host shows as a dead forwarder instead of slow timeouts.

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


def local_url(target, timeout=30):
    """unix:// URL of a local socket forwarded to the target's ssh:// endpoint (started once)."""
    user, host, port, remote = parse_endpoint(target.endpoint)
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
    proc = _spawn(ssh_argv(ssh_config, user, host, port, extra), errlog)
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
