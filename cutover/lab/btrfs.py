"""A private dockerd on a loop-backed btrfs: the lab's runtime that *can* set a disk quota.

There is no XFS or ext4 project quota in this kernel, so overlay2 cannot take
`--storage-opt size=`. The btrfs storage driver can (a qgroup limit per container subvolume,
enforced with EDQUOT), but only on a btrfs data root: the lab makes one, a sparse file under
the lab directory on a loop device (cutover.looproot), mounted as this dockerd's data root.
`lab down` unmounts it and frees the loop device, also after a crash (looproot.release_under).
"""
import os
import subprocess

from cutover import looproot
from cutover.lab.daemon import say
from cutover.lab.dockerd import Dockerd

# Room for the probe image and every container a quota run makes at once (two workers, each
# holding at most two filled containers of the largest default quota, 160 MiB), with slack.
# Sparse: the host pays only for what containers write.
SIZE = 2 * 1024 ** 3


class BtrfsDockerd(Dockerd):
    kind = "dockerd"

    def __init__(self, lab, name, serves=None):
        super().__init__(lab, name, live_restore=True, serves=serves,
                         extra_config={"storage-driver": "btrfs"})
        self.image = os.path.join(self.dir, "btrfs.img")

    @property
    def data_root(self):
        return os.path.join(self.dir, "data")

    def prepare(self):
        # Idempotent: a daemon restart (lab start after lab signal) finds it mounted.
        if not looproot.is_mounted(self.data_root):
            if os.path.exists(self.image):       # left by a crash: start from a clean file system
                looproot.release(self.lab.root, self.image)
            dev = looproot.make(self.lab.root, self.image, self.data_root, SIZE, fstype="btrfs")
            # Qgroups on before dockerd makes its first subvolume: docker enables them lazily at
            # the first --storage-opt size, and qgroups enabled over existing subvolumes stay
            # "inconsistent" until a rescan -- limits were then seen not to hold at all.
            subprocess.run(["btrfs", "quota", "enable", self.data_root], check=True, timeout=60,
                           capture_output=True)
            subprocess.run(["btrfs", "quota", "rescan", "-w", self.data_root], check=True, timeout=120,
                           capture_output=True)
            say(f"lab: {self.name:<12} btrfs data root on {dev} ({SIZE // 2**20} MiB sparse)")
        super().prepare()

    def cleanup(self):
        super().cleanup()                        # unmounts what dockerd left under its directory
        looproot.release(self.lab.root, self.image)
