"""Disk quota sizes, the tolerance the disk quota suite allows, and reading a fill's outcome.

Pure logic (no pytest, no runtime).

Tolerance. A file system spends part of its size on itself, so a container with a quota of Q
sees (df) and can write somewhat less than Q. The suite allows ALLOWANCE(Q) = 8 MiB + 10% of
Q below Q, and nothing above it. What fills the allowance on a default `mkfs.ext4` (the
"small" type below 512 MiB: 1 KiB blocks, one 256-byte inode per 4 KiB = 6.25% inode tables,
a 4 MiB journal, bitmaps, group descriptors and the resize reserve, about 1-2%) plus the
image's own files in a root file system (the probe image: 2 MiB). Measured here:

    quota    ext4 df size   ext4 root writable   ext4 volume writable   btrfs qgroup writable
    64 MiB   54.7 MiB       51.0 MiB             53.0 MiB               62.0 MiB
    160 MiB  144.4 MiB      139.0 MiB            141.0 MiB              158.0 MiB

ext4's 5% root reserve is *not* in the allowance: root here (and in containers) lacks
CAP_SYS_RESOURCE, so reserved blocks are space df counts that no one in the container can
write; file systems Cutover makes use `mkfs.ext4 -m 0`, and a runtime that keeps the reserve
shows up as a write limit below the tolerance at larger quotas.
"""
import re

from cutover.allocations import Allocation, parse_size
from cutover.errors import CutoverError
from cutover.expect import Between

MIB = 2 ** 20
DEFAULT = "64m,160m"
MEMORY = 256 * MIB            # the memory of a quota allocation (the page cache of a fill)
MIN_QUOTA = 32 * MIB          # below this the allowance is most of the quota


def parse(spec):
    """'64m,160m' -> allocations named disk64m, disk160m (256 MiB of memory each); two at least."""
    out = []
    for part in [p.strip() for p in str(spec).split(",") if p.strip()]:
        size = parse_size(part, "--quotas")
        if size < MIN_QUOTA:
            raise CutoverError(f"--quotas: {part} is below {MIN_QUOTA // MIB} MiB: the file system's own "
                               f"overhead would be most of it")
        if size % MIB:
            raise CutoverError(f"--quotas: {part} is not a whole number of MiB")
        out.append(Allocation(name=f"disk{size // MIB}m", memory=MEMORY, disk=size))
    if len({a.disk for a in out}) != len(out):
        raise CutoverError(f"--quotas: sizes repeat in '{spec}'")
    # Two sizes at least (issue 5): a runtime that hard-codes one quota passes under one size.
    if len(out) < 2:
        raise CutoverError(f"--quotas: give at least two sizes, e.g. 64m,160m (got '{spec}')")
    return out


def allowance(quota):
    """Bytes below the quota the suite accepts (file system overhead, see the module doc)."""
    return 8 * MIB + quota // 10


def mib(n):
    return round(n / MIB, 1)


def expected(quota):
    """What a size (df) or a write limit in MiB must be for a quota in bytes."""
    return Between(mib(quota - allowance(quota)), mib(quota), unit="MiB")


def neighbour_quota(quota, quotas):
    """A different quota for the neighbour container: the next size given, else twice this."""
    sizes = [a.disk for a in quotas]
    others = [s for s in sizes if s != quota]
    if not others:
        return 2 * quota
    bigger = sorted(s for s in others if s > quota)
    return bigger[0] if bigger else max(others)


ERRNOS = {"No space left on device": "ENOSPC", "Disk quota exceeded": "EDQUOT"}


def fill_script(path, count_mib, src="/dev/zero"):
    """Shell for busybox: write up to count_mib MiB to path; print dd's words, rc and the size."""
    return (f"dd if={src} of={path} bs=1M count={count_mib} conv=fsync 2>&1; echo \"rc=$?\"; "
            f"stat -c 'size=%s' {path}")


def fill_outcome(output):
    """(errno name or 'none' or dd's own words, bytes written) from fill_script's output."""
    size = re.search(r"^size=(\d+)$", output, re.M)
    rc = re.search(r"^rc=(\d+)$", output, re.M)
    if not size or not rc:
        raise ValueError(f"fill: unexpected output: {output.strip()[-300:]}")
    err = "none"
    if rc.group(1) != "0":
        m = re.search(r"^dd: .*?: (.+)$", output, re.M)
        words = m.group(1).strip() if m else f"dd exited {rc.group(1)}"
        err = ERRNOS.get(words, words)
    return err, int(size.group(1))
