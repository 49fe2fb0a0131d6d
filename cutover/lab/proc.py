"""Processes the lab starts: detached, tracked by pid file and by the lab's own cgroup.

The lab never stops a process it did not start: a pid is only signalled when its command
line names the lab's own directory (pid files can go stale and pids get reused).
"""
import os
import signal
import subprocess
import time


def alive(pid):
    """True if pid runs and is not a zombie (PID 1 here reaps orphans slowly)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return False


def cmdline(pid):
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace")
    except OSError:
        return ""


def read_pidfile(path):
    try:
        with open(path) as f:
            return int(f.read().strip() or 0) or None
    except (OSError, ValueError):
        return None


def ours(pid, marker):
    """A live pid whose command line carries the lab's marker (its directory)."""
    return bool(pid) and alive(pid) and marker in cmdline(pid)


def start_detached(argv, log_path, cgroup_procs=None, env=None):
    """Start argv in its own session, logging to log_path, optionally inside a cgroup.

    The child joins the cgroup before exec, so everything it forks (containerd, shims) is
    tracked there too and can be swept after a crash.
    """
    def enter_cgroup():
        if cgroup_procs:
            with open(cgroup_procs, "w") as f:
                f.write(str(os.getpid()))
    log = open(log_path, "ab")
    try:
        p = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, preexec_fn=enter_cgroup, env=env,
                             close_fds=True)
    finally:
        log.close()
    return p


def wait_gone(pid, timeout):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if not alive(pid):
            return True
        time.sleep(0.05)
    return not alive(pid)


def terminate(pid, marker, grace=20.0):
    """SIGTERM, then SIGKILL after grace seconds; only if the pid is ours. Returns True if it ran."""
    if not ours(pid, marker):
        return False
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return True
    if not wait_gone(pid, grace):
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        wait_gone(pid, 5)
    return True


def run(argv, timeout=60, check=True):
    return subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=check)


def net_namespace(pid):
    """The network namespace of pid ('net:[4026...]'), or None once it is gone."""
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def kill_in_net_namespace(ns, timeout=10.0):
    """SIGKILL every process still in network namespace ns, until none is left.

    Only for a namespace the lab made itself (a simulated host's): everything in it is the
    lab's, e.g. the sshd session of a connection whose client went away without a word, which
    would otherwise keep the namespace alive for ever. Returns how many were killed."""
    killed, seen = 0, set()
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        left = [int(p) for p in os.listdir("/proc") if p.isdigit() and alive(int(p)) and net_namespace(p) == ns]
        if not left:
            break
        for pid in left:
            try:
                os.kill(pid, signal.SIGKILL)
                if pid not in seen:
                    seen.add(pid)
                    killed += 1
            except ProcessLookupError:
                pass
        time.sleep(0.1)
    return killed
