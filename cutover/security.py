"""Pure helpers of the security suite: capability masks, /proc status lines, namespace links.

No pytest and no runtime here, so that the parsing is unit-tested on its own.
"""
import re

from cutover.errors import CutoverError

# linux/capability.h, by bit number.
CAP_NAMES = [
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE"]

NAMESPACES = ("pid", "ipc", "uts", "mnt", "net")


def cap_names(mask):
    """Capability names of a CapEff-style hex mask ('00000000a80425fb')."""
    try:
        value = int(mask, 16)
    except (TypeError, ValueError):
        raise CutoverError(f"not a capability mask: {mask!r}") from None
    names = set()
    for bit in range(value.bit_length()):
        if value >> bit & 1:
            names.add(CAP_NAMES[bit] if bit < len(CAP_NAMES) else f"CAP_{bit}")
    return names


def status_fields(text):
    """/proc/<pid>/status as {field: value}."""
    out = {}
    for line in text.splitlines():
        key, sep, value = line.partition(":")
        if sep:
            out[key.strip()] = value.strip()
    return out


_NS = re.compile(r"^(?:(\S+?):\s*)?(\w+):\[(\d+)\]$")


def ns_links(text):
    """Lines '<label>: pid:[4026531836]' (or bare 'pid:[...]') as [(label, 'pid:[...]')]."""
    out = []
    for line in text.splitlines():
        m = _NS.match(line.strip())
        if m:
            out.append((m.group(1), f"{m.group(2)}:[{m.group(3)}]"))
    return out


def marked(text, mark):
    """Lines 'MARK <rest>' of a probe script's output, as the list of <rest>."""
    return [line.split(" ", 1)[1] if " " in line else "" for line in text.splitlines()
            if line.split(" ", 1)[0] == mark]
