"""Which runs this controller started, and which of them are still alive.

A run holds an exclusive flock on <state>/runs/<run id>.lock while it lives. A later run (or
`lab down`) may sweep containers labelled with a run id only when that run was started here
and its lock is free: so a crashed run's leftovers are removed, and a concurrent run's -- or
another controller's -- never are.
"""
import fcntl
import os

STATE = os.environ.get("CUTOVER_STATE", "/var/lib/cutover-state")


def _dir():
    d = os.path.join(STATE, "runs")
    os.makedirs(d, mode=0o700, exist_ok=True)
    return d


def hold(run_id):
    """Take the run's lock for the life of this process; returns the fd (keep it open).

    The lock file appears under its name only once it is locked (made and locked under a
    temporary name, then renamed): a `dead_runs` between the two would otherwise find a free
    lock, call a just-started run dead and forget its record.
    """
    d = _dir()
    tmp = os.path.join(d, f".{run_id}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.rename(tmp, os.path.join(d, f"{run_id}.lock"))
    except BaseException:
        os.close(fd)
        os.unlink(tmp)
        raise
    return fd


def release(run_id, fd, forget=True):
    """Drop the lock; keep the record (forget=False) when leftovers may remain to be swept."""
    if forget:
        try:
            os.unlink(os.path.join(_dir(), f"{run_id}.lock"))
        except FileNotFoundError:
            pass
    os.close(fd)


def dead_runs():
    """Run ids started on this controller whose process is gone (lock file free)."""
    out = []
    for name in os.listdir(_dir()):
        if not name.endswith(".lock"):
            continue
        path = os.path.join(_dir(), name)
        try:
            fd = os.open(path, os.O_RDWR)
        except FileNotFoundError:      # forgotten meanwhile by another sweep
            continue
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            out.append(name[:-5])
        except BlockingIOError:
            pass
        finally:
            os.close(fd)
    return out


def forget(run_id):
    try:
        os.unlink(os.path.join(_dir(), f"{run_id}.lock"))
    except FileNotFoundError:
        pass
