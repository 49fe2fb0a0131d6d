"""The kernel gate's guest: one Debian 12 disk image, bootable with more than one kernel.

Made once and cached under /var/cache/cutover/guest/ (or $CUTOVER_CACHE/guest):
- rootfs/: `debootstrap --variant=minbase` of bookworm with docker.io, lxcfs, openssh-server and
  Debian 12's kernel (6.1), then bookworm-backports' kernel (6.12) installed in a chroot, so that
  one userspace (dockerd 20.10, runc, lxcfs 5.0.3) meets both kernels (about 2.5 min);
- disk-<digest>.img: an ext4 image of that root plus Cutover's guest files (guest_files/: the
  busybox init, the boot script, the daemon-event script, daemon.json as the lab's dockerd has
  it, sshd_config and a client key), made by `mkfs.ext4 -d` without mounting anything (about
  5 s); a change of the guest files makes a new image, not a new bootstrap;
- the kernels and initrds copied out of /boot, for qemu's -kernel/-initrd.
Guests boot it with snapshot=on: the cached image is never written.
"""
import fcntl
import glob
import hashlib
import json
import os
import shutil
import subprocess
import time

from cutover.errors import CutoverError
from cutover.lab import release
from cutover.lab.daemon import say

DIR = os.path.join(release.CACHE, "guest")
ROOTFS = os.path.join(DIR, "rootfs")
FILES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "guest_files")
PACKAGES = ("docker.io", "containerd", "runc", "lxcfs", "busybox-static", "openssh-server", "procps",
            "iproute2", "kmod", "util-linux", "e2fsprogs", "initramfs-tools", "linux-image-amd64")
# The kernels a guest can boot: the series -> the suite it comes from.
KERNELS = {"6.1": "bookworm", "6.12": "bookworm-backports"}
DISK_SIZE = "6G"
KEY = os.path.join(DIR, "id_ed25519")


def _daemon_json():
    """The guest dockerd's configuration: the lab's dockerd's, minus its private paths."""
    from cutover.lab.dockerd import Dockerd
    base = {"live-restore": True, **Dockerd.BASE_CONFIG}
    return {"daemon.json": base, "daemon-upgraded.json": dict(base, **Dockerd.VARIANTS["upgraded"])}


def _install_backports_kernel(root, log):
    """bookworm-backports' kernel into the fresh root (chroot, in a mount namespace of its own)."""
    with open(os.path.join(root, "etc/apt/sources.list.d/backports.list"), "w") as f:
        f.write(f"deb {release.MIRROR} bookworm-backports main\n")
    script = ("mount -t proc proc \"$1/proc\" && mount --rbind /dev \"$1/dev\" && mount -t sysfs sys \"$1/sys\" && "
              "chroot \"$1\" sh -c 'apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q "
              "--no-install-recommends -t bookworm-backports linux-image-amd64 && apt-get clean'")
    say("lab: guest image: installing bookworm-backports' kernel (about 30 s)")
    with open(log, "a") as lf:
        try:
            res = subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh", root],
                                 stdout=lf, stderr=subprocess.STDOUT, timeout=release.BOOTSTRAP_TIMEOUT)
        except subprocess.TimeoutExpired:
            raise CutoverError(f"lab: installing the backports kernel took too long; see {log}") from None
    if res.returncode != 0:
        raise CutoverError(f"lab: installing the backports kernel failed ({res.returncode}); see {log}")


def kernels(root=ROOTFS):
    """{series: kernel release} of the kernels installed in the root, e.g. {'6.1': '6.1.0-50-amd64'}."""
    out = {}
    for path in glob.glob(os.path.join(root, "boot", "vmlinuz-*")):
        rel = os.path.basename(path)[len("vmlinuz-"):]
        series = ".".join(rel.split("-")[0].split(".")[:2])
        out[series] = rel
    return out


def _files_digest():
    h = hashlib.sha256(json.dumps(_daemon_json(), sort_keys=True).encode())
    for name in sorted(os.listdir(FILES)):
        with open(os.path.join(FILES, name), "rb") as f:
            h.update(name.encode() + b"\0" + f.read())
    return h.hexdigest()[:12]


def _add_files(root):
    """Cutover's guest files into the root (idempotent: the same files every time)."""
    sbin = os.path.join(root, "usr/local/sbin")
    for name in ("cutover-boot", "cutover-daemon"):
        shutil.copyfile(os.path.join(FILES, name), os.path.join(sbin, name))
        os.chmod(os.path.join(sbin, name), 0o755)
    shutil.copyfile(os.path.join(FILES, "inittab"), os.path.join(root, "etc/inittab"))
    shutil.copyfile(os.path.join(FILES, "sshd_config"), os.path.join(root, "etc/ssh/sshd_config"))
    init = os.path.join(root, "sbin/init")
    if os.path.lexists(init):
        os.unlink(init)
    os.symlink("/bin/busybox", init)       # busybox init: reaps orphans, runs the boot script
    os.makedirs(os.path.join(root, "etc/docker"), exist_ok=True)
    for name, cfg in _daemon_json().items():
        with open(os.path.join(root, "etc/docker", name), "w") as f:
            json.dump(cfg, f, indent=1)
    if not os.path.exists(KEY):
        subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "cutover-guest", "-f", KEY],
                       check=True, capture_output=True, timeout=30)
    ssh = os.path.join(root, "root/.ssh")
    os.makedirs(ssh, mode=0o700, exist_ok=True)
    shutil.copyfile(KEY + ".pub", os.path.join(ssh, "authorized_keys"))


class Image:
    """The cached guest image: disk, kernels, client key, host key and versions."""

    def __init__(self, disk, info):
        self.disk, self.info = disk, info

    def kernel(self, series):
        rel = self.info["kernels"].get(series)
        if not rel:
            raise CutoverError(f"lab: the guest image has no {series} kernel (has: {', '.join(sorted(self.info['kernels']))})")
        return os.path.join(DIR, f"vmlinuz-{rel}"), os.path.join(DIR, f"initrd.img-{rel}"), rel

    @property
    def key(self):
        return KEY

    @property
    def host_key(self):
        """The guest's ed25519 host key (public), for a strict known_hosts."""
        return self.info["host_key"]


def ensure():
    """The guest image, bootstrapped and made once; returns an Image."""
    if not shutil.which("mkfs.ext4"):
        raise CutoverError("lab: 'mkfs.ext4' not found: install Debian's e2fsprogs package (see README)")
    os.makedirs(DIR, mode=0o700, exist_ok=True)
    release.bootstrap(ROOTFS, "bookworm", PACKAGES, finish=_install_backports_kernel,
                      what="kernel-gate guest root (Debian 12, kernels 6.1 and 6.12)")
    digest = _files_digest()
    disk = os.path.join(DIR, f"disk-{digest}.img")
    info_path = disk + ".json"
    fd = os.open(os.path.join(DIR, ".disk.lock"), os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        if not os.path.exists(info_path):
            t0 = time.monotonic()
            _add_files(ROOTFS)
            tmp = disk + ".tmp"
            res = subprocess.run(["mkfs.ext4", "-q", "-F", "-d", ROOTFS, "-L", "cutover-guest", tmp, DISK_SIZE],
                                 capture_output=True, text=True, timeout=600)
            if res.returncode != 0:
                raise CutoverError(f"lab: mkfs.ext4 of the guest image failed: {res.stderr.strip()[:300]}")
            ks = kernels()
            for rel in ks.values():
                for name in (f"vmlinuz-{rel}", f"initrd.img-{rel}"):
                    shutil.copyfile(os.path.join(ROOTFS, "boot", name), os.path.join(DIR, name))
            with open(os.path.join(ROOTFS, "etc/ssh/ssh_host_ed25519_key.pub")) as f:
                host_key = " ".join(f.read().split()[:2])
            info = {"kernels": ks, "packages": release.read_stamp(ROOTFS)["packages"], "host_key": host_key,
                    "files_digest": digest}
            os.replace(tmp, disk)
            with open(info_path + ".tmp", "w") as f:
                json.dump(info, f, indent=1)
            os.replace(info_path + ".tmp", info_path)
            for old in glob.glob(os.path.join(DIR, "disk-*.img*")):   # images of older guest files
                if not old.startswith(disk):
                    os.unlink(old)
            say(f"lab: guest image  {disk} made in {time.monotonic() - t0:.0f}s (kernels "
                + ", ".join(sorted(ks.values())) + ")")
        with open(info_path) as f:
            return Image(disk, json.load(f))
    finally:
        os.close(fd)
