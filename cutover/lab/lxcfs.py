"""The lab's private lxcfs, on a mount point of its own."""
import os

from cutover.lab.daemon import Daemon, umount_all_under


class Lxcfs(Daemon):
    kind = "lxcfs"

    @property
    def mountpoint(self):
        return os.path.join(self.dir, "mnt")

    def prepare(self):
        # A crashed lxcfs leaves a dead FUSE mount ("Transport endpoint is not connected")
        # that even mkdir trips over: unmount first.
        umount_all_under(self.mountpoint)
        os.makedirs(self.mountpoint, exist_ok=True)

    def argv(self):
        # -l: virtualize loadavg; --enable-cfs: cpuinfo/stat/online follow a CFS quota.
        return ["lxcfs", "-l", "--enable-cfs", "-p", self.pidfile, self.mountpoint]

    def ready(self):
        return os.path.exists(os.path.join(self.mountpoint, "proc", "meminfo"))

    def cleanup(self):
        umount_all_under(self.mountpoint)

    def restart_command(self):
        """daemon.lxcfs-restart of the targets that inject this lxcfs (a plain stop + start)."""
        me = self.lab.cutover_cmd()
        return f"{me} lab signal {self.name} TERM && {me} lab start {self.name}"
