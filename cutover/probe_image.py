"""The probe image: FROM scratch + Debian's busybox-static, built locally (no registry).

Built as a tar build context in memory, so any driver can build it on any host whose runtime
can build images, from the controller's own busybox-static.
"""
import io
import os
import subprocess
import tarfile

from cutover.errors import CutoverError

BUSYBOX = "/bin/busybox"
TAG = "cutover/probe:1"
LABELS = {"cutover.image": "probe"}

PASSWD = "root:x:0:0:root:/root:/bin/sh\napp:x:1000:1000:app:/home/app:/bin/sh\nnobody:x:65534:65534:nobody:/:/bin/false\n"
GROUP = "root:x:0:\napp:x:1000:\nnogroup:x:65534:\n"
DOCKERFILE = """FROM scratch
COPY rootfs/ /
LABEL cutover.image=probe
CMD ["/bin/sh"]
"""


def busybox_path():
    path = BUSYBOX
    try:
        with open(path, "rb") as f:
            head = f.read(8192)
    except OSError:
        raise CutoverError(f"{path} not found: install Debian's busybox-static") from None
    if b"ld-linux" in head:
        raise CutoverError(f"{path} is dynamically linked: install busybox-static, not busybox")
    return path


def applets(path):
    out = subprocess.run([path, "--list"], capture_output=True, text=True, timeout=10, check=True).stdout
    return [a for a in out.split() if a and a != "busybox"]


def _add(tar, name, data=None, mode=0o644, kind=tarfile.REGTYPE, link=None):
    info = tarfile.TarInfo(name)
    info.mode, info.type, info.mtime = mode, kind, 0
    if link:
        info.linkname = link
    if data is not None:
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    else:
        tar.addfile(info)


def context_tar(extra_files=None, dockerfile=DOCKERFILE):
    """A gzip-less tar of the build context: Dockerfile + rootfs/ with busybox and its applets.

    mtimes are fixed so the context, and so the build cache key, is stable across calls.
    """
    bb = busybox_path()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        _add(tar, "Dockerfile", dockerfile.encode())
        for d in ("rootfs", "rootfs/bin", "rootfs/etc", "rootfs/root", "rootfs/home",
                  "rootfs/proc", "rootfs/sys", "rootfs/dev", "rootfs/data"):
            _add(tar, d, mode=0o755, kind=tarfile.DIRTYPE)
        _add(tar, "rootfs/tmp", mode=0o1777, kind=tarfile.DIRTYPE)
        _add(tar, "rootfs/home/app", mode=0o755, kind=tarfile.DIRTYPE)
        with open(bb, "rb") as f:
            _add(tar, "rootfs/bin/busybox", f.read(), mode=0o755)
        for a in applets(bb):
            _add(tar, f"rootfs/bin/{a}", kind=tarfile.SYMTYPE, link="busybox", mode=0o777)
        _add(tar, "rootfs/etc/passwd", PASSWD.encode())
        _add(tar, "rootfs/etc/group", GROUP.encode())
        # Extra files: name -> data, or (data, mode). Their parent directories get entries
        # of their own (fixed mode and mtime) so the build cache key stays stable.
        dirs = set()
        for name, data in (extra_files or {}).items():
            data, mode = data if isinstance(data, tuple) else (data, 0o644)
            parent = os.path.dirname(name)
            while parent and parent not in dirs and not parent.startswith("rootfs"):
                dirs.add(parent)
                _add(tar, parent, mode=0o755, kind=tarfile.DIRTYPE)
                parent = os.path.dirname(parent)
            _add(tar, name, data if isinstance(data, bytes) else data.encode(), mode=mode)
    buf.seek(0)
    return buf


def rootfs_dir(dest):
    """Unpack the probe root file system into dest (for runtimes that take a rootfs)."""
    with tarfile.open(fileobj=context_tar()) as tar:
        members = [m for m in tar.getmembers() if m.name.startswith("rootfs/")]
        for m in members:
            m.name = m.name[len("rootfs/"):]
        tar.extractall(dest, members=[m for m in members if m.name], filter="fully_trusted")
    os.chmod(dest, 0o755)
    return dest
