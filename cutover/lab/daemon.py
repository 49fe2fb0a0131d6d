"""A long-running process of the lab, known by its pid file, and the lab's mount helpers."""
import json
import os
import subprocess
import sys
import time

from cutover.errors import CutoverError
from cutover.lab import proc


def load_state(path):
    """A lab part's JSON state file ({} when it is missing or unreadable: nothing configured)."""
    try:
        with open(path) as f:
            data = json.load(f)
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def say(msg):
    print(msg, file=sys.stderr, flush=True)


class Daemon:
    """One long-running process of the lab, known by its pid file."""
    kind = "daemon"
    writes_pidfile = True      # the program writes self.pidfile itself (dockerd, lxcfs -p)

    def __init__(self, lab, name):
        self.lab, self.name = lab, name
        self.dir = os.path.join(lab.root, name)
        self.pidfile = os.path.join(lab.run_dir, f"{name}.pid")
        self.log = os.path.join(lab.log_dir, f"{name}.log")

    def pid(self):
        pid = proc.read_pidfile(self.pidfile)
        return pid if proc.ours(pid, self.lab.root) else None

    def argv(self):
        raise NotImplementedError

    def ready(self):
        raise NotImplementedError

    def start(self, timeout=30):
        if self.pid():
            return False
        os.makedirs(self.dir, exist_ok=True)
        self.prepare()
        p = proc.start_detached(self.argv(), self.log, cgroup_procs=self.lab.cgroup_procs(),
                                env=self.environment())
        self._write_pid_if_needed(p.pid)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if p.poll() is not None:
                raise CutoverError(f"lab: {self.name} exited with {p.returncode} at start; see {self.log}: "
                                   f"{tail(self.log)}")
            if self.ready():
                return True
            time.sleep(0.1)
        raise CutoverError(f"lab: {self.name} not ready after {timeout}s; see {self.log}: {tail(self.log)}")

    def prepare(self):
        pass

    def environment(self):
        """The daemon's environment; None inherits ours (podman takes its config files here)."""
        return None

    def _write_pid_if_needed(self, pid):
        """For programs that write no pid file of their own (set writes_pidfile = False)."""
        if not self.writes_pidfile:
            with open(self.pidfile, "w") as f:
                f.write(str(pid))

    def stop(self, grace=20):
        pid = proc.read_pidfile(self.pidfile)
        stopped = proc.terminate(pid, self.lab.root, grace) if pid else False
        self.cleanup()
        try:
            os.unlink(self.pidfile)
        except FileNotFoundError:
            pass
        return stopped

    def cleanup(self):
        pass

    def targets(self):
        """{target name: targets-file entry} this daemon serves (none by default)."""
        return {}

    def daemon_commands(self):
        """The targets file's daemon.stop/kill/start for this daemon."""
        me = self.lab.cutover_cmd()
        # `lab signal` signals only a process of the lab's, and returns once it is gone, so
        # that a start can follow at once (a bare kill returns while the daemon shuts down).
        return {"stop": f"{me} lab signal {self.name} TERM",
                "kill": f"{me} lab signal {self.name} KILL",
                "start": f"{me} lab start {self.name}"}

    def status(self):
        pid = self.pid()
        return {"name": self.name, "kind": self.kind, "running": bool(pid), "pid": pid}



def remove_all_containers(endpoint, name, volumes=True):
    """Remove every container (and volume) behind a lab daemon's Docker-compatible API.

    Everything on a lab daemon is the lab's or a harness run's. A half-dead daemon only gets
    a note: the cgroup sweep that follows in `lab down` takes care of what is left.
    """
    import docker
    try:
        c = docker.DockerClient(base_url=endpoint, timeout=30)
        ids = [x["Id"] for x in c.api.containers(all=True)]
        for cid in ids:
            c.api.remove_container(cid, force=True, v=True)
        for v in (c.api.volumes().get("Volumes") or []) if volumes else []:
            c.api.remove_volume(v["Name"], force=True)
        return len(ids)
    except Exception as e:
        say(f"lab: could not clean containers of {name}: {str(e).splitlines()[0][:200]}")
        return 0


def mounts_under(root):
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            mnt = line.split()[4].replace("\\040", " ")
            if mnt == root or mnt.startswith(root.rstrip("/") + "/"):
                out.append(mnt)
    return out


def umount_all_under(root):
    """Unmount everything at or under root; returns how many mounts went away."""
    before = len(mounts_under(root))
    # A mount can hide others under the same path (the lab directory's own bind mount made
    # after lxcfs mounted): repeat until nothing is left, a few passes at most.
    for _ in range(4):
        mounts = mounts_under(root)
        if not mounts:
            break
        for m in sorted(set(mounts), key=lambda m: -m.count("/")):
            subprocess.run(["umount", "-l", m], capture_output=True, timeout=30)
    return before - len(mounts_under(root))


def tail(path, n=3):
    try:
        with open(path, errors="replace") as f:
            lines = [l.strip() for l in f.readlines()[-n:]]
        return " | ".join(lines)[-400:]
    except OSError:
        return "(no log)"
