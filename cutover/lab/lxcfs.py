"""The lab's private lxcfs, on a mount point of its own."""
import os

from cutover.lab.daemon import Daemon, umount_all_under


class Lxcfs(Daemon):
    kind = "lxcfs"

    @property
    def mountpoint(self):
        return os.path.join(self.dir, "mnt")

    def prepare(self):
        os.makedirs(self.mountpoint, exist_ok=True)
        umount_all_under(self.mountpoint)

    def argv(self):
        # -l: virtualize loadavg; --enable-cfs: cpuinfo/stat/online follow a CFS quota.
        return ["lxcfs", "-l", "--enable-cfs", "-p", self.pidfile, self.mountpoint]

    def ready(self):
        return os.path.exists(os.path.join(self.mountpoint, "proc", "meminfo"))

    def cleanup(self):
        umount_all_under(self.mountpoint)
