"""Loop-backed file systems: a sparse file, a loop device, a file system, a mount.

What the disk quota promise needs where the kernel has no project quota: the lab's btrfs for
docker's `--storage-opt size=`, and per-container (or per-volume) ext4 file systems whose size
*is* the quota (podman `--rootfs`, a docker volume mounted from a device).

Everything made here lives under an owner directory (the lab directory): the sparse file, the
mount point, and a record in `<owner>/loops.json`. `release_under(owner)` frees all of it even
after a crash, because it also finds loop devices by their backing file's path
(`losetup --list`), whatever the records say. Local host only: a remote target's host would
need the same commands run over its own connection.

ext4 is made with `-m 0`: root here (and in containers) lacks CAP_SYS_RESOURCE, so the 5%
reserved for root would be space `df` counts but no one in the container can write.
"""
import contextlib
import fcntl
import json
import os
import subprocess
import time

from cutover.errors import CutoverError, RuntimeTimeout

STATE = "loops.json"
# Every loop device allocation of Cutover's (here, and LXC's -B loop in the lxc driver) holds
# this lock: LXC does not retry when another process takes the free device it found first.
# Every detach by number holds it too, so a number freed and taken again is not detached.
LOCK = "/run/lock/cutover-loop.lock"
TIMEOUT = 60
MKFS = {"ext4": ["mkfs.ext4", "-q", "-F", "-m", "0", "-E", "nodiscard"],
        "btrfs": ["mkfs.btrfs", "-q", "-f"]}


def _run(argv, timeout=TIMEOUT):
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise RuntimeTimeout(f"{' '.join(argv)} did not finish within {timeout}s") from None
    except FileNotFoundError:
        raise CutoverError(f"'{argv[0]}' not found: install Debian's e2fsprogs/btrfs-progs/util-linux") from None
    return res


def _must(argv, timeout=TIMEOUT):
    res = _run(argv, timeout)
    if res.returncode != 0:
        raise CutoverError(f"{' '.join(argv)} failed ({res.returncode}): {(res.stderr or res.stdout).strip()[:300]}")
    return res.stdout


# -- records ------------------------------------------------------------------------------------

@contextlib.contextmanager
def _state(owner):
    """The owner's records {image path: {dev, mountpoint}}, read-modify-written under a lock."""
    os.makedirs(owner, mode=0o700, exist_ok=True)
    path = os.path.join(owner, STATE)
    fd = os.open(path + ".lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        try:
            with open(path) as f:
                data = json.load(f)
        except (OSError, ValueError):
            data = {}
        yield data
        tmp = f"{path}.{os.getpid()}"
        with open(tmp, "w") as f:
            json.dump(data, f, indent=1)
        os.replace(tmp, path)
    finally:
        os.close(fd)


@contextlib.contextmanager
def loop_lock(timeout=120):
    os.makedirs(os.path.dirname(LOCK), exist_ok=True)
    fd = os.open(LOCK, os.O_CREAT | os.O_RDWR, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    raise RuntimeTimeout(f"{LOCK} held by another loop user for {timeout}s") from None
                time.sleep(0.02)
        yield
    finally:
        os.close(fd)


def records(owner):
    try:
        with open(os.path.join(owner, STATE)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return {}


def note(owner, image, **fields):
    """Add fields to image's record (e.g. the container it is the root of), for find()."""
    with _state(owner) as st:
        if image in st:
            st[image].update(fields)


def find(owner, **fields):
    """The image file whose record holds all of fields, or None."""
    for image, rec in records(owner).items():
        if all(rec.get(k) == v for k, v in fields.items()):
            return image
    return None


# -- the kernel's view ------------------------------------------------------------------------

def loop_devices():
    """{device: backing file} of every loop device (a deleted file keeps its old path)."""
    res = _run(["losetup", "--list", "--json", "-O", "NAME,BACK-FILE"])
    try:
        devs = json.loads(res.stdout or "{}").get("loopdevices") or []
    except ValueError:
        devs = []
    return {d["name"]: (d.get("back-file") or "").removesuffix(" (deleted)") for d in devs}


def _under(path, root):
    root = os.path.abspath(root).rstrip("/")
    return path == root or path.startswith(root + "/")


def devices_under(root, state_dirs=()):
    """Loop devices backed by a file under root, or by one recorded in a state dir's records.

    The kernel names a backing file by its path as seen now: once the mount it was opened
    through is gone (a lazily unmounted lab directory) the path is relative to that mount
    ("/loops/x.img"). A recorded device still backed by a path that ends its recorded file's
    path is therefore ours too.
    """
    devs = loop_devices()
    out = {dev for dev, back in devs.items() if _under(back, root)}
    for d in state_dirs:
        for image, rec in records(d).items():
            back = devs.get(rec.get("dev"))
            if back and back.startswith("/") and image.endswith(back):
                out.add(rec["dev"])
    return sorted(out)


def mounts_of(dev):
    """Mount points (in this mount namespace) whose source is the device."""
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            parts = line.split()
            sep = parts.index("-")
            if parts[sep + 2] == dev:
                out.append(parts[4].replace("\\040", " "))
    return out


def is_mounted(mountpoint):
    mp = os.path.abspath(mountpoint)
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].replace("\\040", " ") == mp for line in f)


# -- make and release ---------------------------------------------------------------------------

def make(owner, image, mountpoint, size, fstype="ext4", populate=None):
    """A `size`-byte sparse `image` with a fresh `fstype` mounted at `mountpoint`; its device.

    `populate(mountpoint)` fills the new file system before it is handed over. The device is
    recorded before anything else can fail, so a crash half way is still released. With
    mountpoint None the device is left attached and unmounted, for a runtime to mount (a
    docker volume with type/device options); release() detaches it.
    """
    if fstype not in MKFS:
        raise CutoverError(f"loop file system: fstype must be one of {', '.join(MKFS)}, not {fstype!r}")
    for p in (image, mountpoint):
        if p and not _under(os.path.abspath(p), owner):
            raise CutoverError(f"loop file system: {p} is not under {owner}")
    os.makedirs(os.path.dirname(image), mode=0o700, exist_ok=True)
    if mountpoint:
        os.makedirs(mountpoint, exist_ok=True)
    with open(image, "wb") as f:
        f.truncate(size)                       # sparse: the host pays only for what is written
    with _state(owner) as st, loop_lock():
        dev = _must(["losetup", "--find", "--show", image]).strip()
        st[image] = {"dev": dev, "mountpoint": mountpoint and os.path.abspath(mountpoint), "fstype": fstype}
    try:
        _must(MKFS[fstype] + [dev], timeout=120)
        if not mountpoint:
            return dev
        _must(["mount", "-t", fstype, dev, mountpoint])
        if populate:
            populate(mountpoint)
    except BaseException:
        release(owner, image)
        raise
    # Detaching a mounted device only marks it autoclear: the kernel frees it at the last
    # unmount, so even a lazy unmount by a crashed lab's sweep leaves no device behind.
    _run(["losetup", "-d", dev])
    return dev


def _umount(mp):
    if _run(["umount", mp]).returncode != 0:
        # Busy (a process still has files open there): detach now, freed when they go.
        _run(["umount", "-l", mp])


def _detach_if_ours(devs, ours):
    """Detach each of devs that ours() (a fresh set of devices) still names, under LOCK.

    A loop device is known by a number the kernel reuses: one that make() left to autoclear is
    freed at its last unmount, and another loop user may take the number at once. Detaching by
    number a device that was ours before the unmount pulls a neighbour's device from under its
    mkfs ("Device size reported to be zero", "apparently in use by the system"). Every loop
    allocation of Cutover's holds LOCK, so under it what the backing file is now stays true
    until the detach.
    """
    if not devs:
        return
    with loop_lock():
        still = ours()
        for dev in devs:
            if dev in still:
                _run(["losetup", "-d", dev])


def release(owner, image):
    """Unmount, detach and delete one loop file system made by make()."""
    rec = records(owner).get(image, {})

    def ours():
        return {d for d, back in loop_devices().items() if back == os.path.abspath(image)}
    devs = ours()
    mps = set()
    if rec.get("mountpoint") and is_mounted(rec["mountpoint"]):
        mps.add(rec["mountpoint"])
    for dev in devs:
        mps.update(mounts_of(dev))
    for mp in sorted(mps, key=lambda m: -m.count("/")):
        _umount(mp)
    _detach_if_ours(devs, ours)
    with contextlib.suppress(FileNotFoundError):
        os.unlink(image)
    if rec.get("mountpoint"):
        with contextlib.suppress(OSError):
            os.rmdir(rec["mountpoint"])
    with _state(owner) as st:
        st.pop(image, None)


def release_under(root, state_dirs=(), wait=10):
    """Free every loop device whose backing file is (or was) under root; how many there were.

    `state_dirs`: owner directories whose records also name devices (see devices_under). Each
    device's mounts are unmounted first (lazily if busy: the kernel then frees the device at
    the last reference). Returns after the devices are gone, or after `wait` seconds.
    """
    dirs = [root, *state_dirs]
    devs = devices_under(root, dirs)
    for dev in devs:
        for mp in sorted(mounts_of(dev), key=lambda m: -m.count("/")):
            _umount(mp)
    # Other labs on the machine may be taking the numbers these free (see _detach_if_ours).
    _detach_if_ours(devs, lambda: set(devices_under(root, dirs)))
    deadline = time.monotonic() + wait
    while devices_under(root, dirs) and time.monotonic() < deadline:
        time.sleep(0.1)
    return len(devs)
