"""The images suite's material: the app image (built from local parts), its file tree, registries.

Pure logic, no pytest and no runtime: build contexts, what each image declares, the
container-side script that lists a root tree, and the same tree computed independently
from the image's own layers (a saved image), so that a container can be compared with what
its image really holds -- not with what the runtime says about itself.
"""
import hashlib
import io
import json
import os
import re
import tarfile
import urllib.error
import urllib.request

from cutover import probe_image
from cutover.errors import CutoverError

REPO = "cutover-img/app"

# The app's entrypoint: reports how it was started, then serves until its stop signal.
# PID 1 is this shell; it handles each stop signal with its own exit code, so the exit
# code says which signal the runtime sent (a PID 1 ignores untrapped signals).
ENTRY = """#!/bin/sh
echo "entry: args=$* user=$(id -u):$(id -g) cwd=$(pwd) greeting=$GREETING mode=$APP_MODE home=$HOME"
case "$1" in
serve)
  trap 'echo "entry: got USR1"; exit 42' USR1
  trap 'echo "entry: got TERM"; exit 43' TERM
  trap 'echo "entry: got INT"; exit 44' INT
  while :; do sleep 1 & wait $!; done ;;
*) exec "$@" ;;
esac
"""

HEALTH_TEXT = "cutover-health-ok"
STOP_EXIT = {"SIGUSR1": 42, "SIGTERM": 43, "SIGINT": 44}

# Each instruction whose run-time effect a check observes. Several layers: the app files,
# then a RUN that deletes a file (whiteout) and replaces a directory (opaque directory).
# build-info (unique per run and target) comes first: every target's chain of build steps is
# its own, so another target's --no-cache build on the same daemon cannot give the cache a
# second candidate for a step (the classic builder may then pick either).
DOCKERFILE = """FROM scratch
COPY build-info /app/build-info
COPY rootfs/ /
COPY app/ /app/
RUN rm /app/secret.txt && rm -rf /app/conf && mkdir /app/conf && echo c=3 > /app/conf/c.conf
ENV GREETING="hello from the image" APP_MODE={mode}
WORKDIR /app/work
USER app
ENTRYPOINT ["/app/entry.sh"]
CMD ["serve"]
LABEL org.cutover.app="img-suite" org.cutover.version="{version}"
EXPOSE 8080/tcp 9090/udp
STOPSIGNAL SIGUSR1
HEALTHCHECK --interval=1s --timeout=5s --retries=3 CMD cat /app/health.txt
"""


class AppImage:
    """One version of the app image: its build context and what it declares."""

    def __init__(self, version, build_info):
        self.version = version
        self.mode = f"v{version}"
        self.build_info = build_info     # unique per run and target: layers no daemon has seen

    def files(self):
        f = {"app/entry.sh": (ENTRY, 0o755), "app/version": (f"{self.version}\n", 0o644),
             "app/health.txt": (HEALTH_TEXT + "\n", 0o644),
             "app/secret.txt": ("deleted by a later layer\n", 0o600),
             "app/conf/a.conf": ("a=1\n", 0o644), "app/conf/b.conf": ("b=2\n", 0o644),
             "build-info": (self.build_info + "\n", 0o644)}
        if self.version >= 2:
            f[f"app/release-{self.version}.txt"] = (f"only in version {self.version}\n", 0o644)
        return f

    def context(self):
        return probe_image.context_tar(
            dockerfile=DOCKERFILE.format(mode=self.mode, version=self.version),
            extra_files=self.files())

    # What the image declares (the expectations), straight from the Dockerfile above.
    env = property(lambda self: {"GREETING": "hello from the image", "APP_MODE": self.mode})
    workdir = "/app/work"
    user = "app"
    uid_gid = "1000:1000"
    home = "/home/app"
    entrypoint = ["/app/entry.sh"]
    cmd = ["serve"]
    labels = property(lambda self: {"org.cutover.app": "img-suite", "org.cutover.version": str(self.version)})
    exposed = ["8080/tcp", "9090/udp"]
    stop_signal = "SIGUSR1"
    health_test = ["CMD-SHELL", "cat /app/health.txt"]
    deleted = "/app/secret.txt"                      # whiteout
    opaque_dir, opaque_lower, opaque_upper = "/app/conf", ["a.conf", "b.conf"], ["c.conf"]

    def entry_line(self):
        return (f"entry: args={' '.join(self.cmd)} user={self.uid_gid} cwd={self.workdir} "
                f"greeting={self.env['GREETING']} mode={self.mode} home={self.home}")


def tamper_context_scratch(payload):
    """A one-layer image (FROM scratch) holding content no daemon has seen: never run, only pulled."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, data in (("Dockerfile", "FROM scratch\nCOPY payload /payload\n"), ("payload", payload)):
            info = tarfile.TarInfo(name)
            info.size, info.mtime = len(data.encode()), 0
            tar.addfile(info, io.BytesIO(data.encode()))
    buf.seek(0)
    return buf


def ref_safe(*parts):
    """A tag made of run id and target name: [a-z0-9_.-], at most 128 characters."""
    return re.sub(r"[^a-z0-9_.-]+", "-", "-".join(parts).lower())[:120]


# -- the root tree ------------------------------------------------------------------------
# Paths a runtime supplies per container (not image content), excluded on both sides:
# kernel file systems, the files it writes for name resolution, docker's init layer
# (/etc/mtab -> /proc/mounts, /.dockerenv) and podman's marker (/run/.containerenv).
TREE_EXCLUDE = ("proc", "sys", "dev", "etc/hostname", "etc/hosts", "etc/resolv.conf", "etc/mtab",
                ".dockerenv", "run/.containerenv")

# Runs inside the container, as root, with busybox: one line per path (type, mode, owner,
# symlink target), then the sha256 of every regular file. Not `find -xdev`: a volume or a
# host directory mounted into the tree is exactly what must show.
_PRUNE = " -o ".join(f"-path ./{p}" for p in TREE_EXCLUDE)
TREE_SCRIPT = (f"cd / && find . -mindepth 1 \\( {_PRUNE} \\) -prune -o -print0 | xargs -0 stat -c '%F|%a|%u|%g|%N'"
               f" && echo '--- sha256' && find . -mindepth 1 \\( {_PRUNE} \\) -prune -o -type f -print0"
               f" | xargs -0 -r sha256sum")

_KINDS = {"regular file": "file", "regular empty file": "file", "directory": "dir", "symbolic link": "link"}


def tree_from_script(output):
    """{path: 'kind mode uid:gid [sha256|-> target]'} from TREE_SCRIPT's output."""
    head, sep, sums = output.partition("--- sha256\n")
    if not sep:
        raise CutoverError("tree listing is incomplete (no checksum section)")
    digests = {}
    for line in sums.splitlines():
        if line.strip():
            digest, _, path = line.partition("  ")
            digests[_norm(path)] = digest
    tree = {}
    for line in head.splitlines():
        if not line.strip():
            continue
        kind, mode, uid, gid, name = line.split("|", 4)
        kind = _KINDS.get(kind, "other")
        target = None
        if kind == "link":
            name, _, target = name.partition(" -> ")
            target = target.strip("'")
        path = _norm(name.strip("'"))
        tree[path] = _entry(kind, int(mode, 8), uid, gid, digests.get(path), target)
    return tree


def _norm(name):
    """'./etc/passwd', 'etc/passwd' or 'etc/' -> '/etc/passwd', '/etc'."""
    name = name.strip()
    if name.startswith("./"):
        name = name[2:]
    name = name.strip("/")
    return "/" + name if name not in ("", ".") else "/"


def _entry(kind, mode, uid, gid, digest=None, target=None):
    tail = f" {digest}" if kind == "file" else (f" -> {target}" if kind == "link" else "")
    return f"{kind} {mode:o} {uid}:{gid}{tail}"


def _excluded(path):
    p = path.lstrip("/")
    return any(p == e or p.startswith(e + "/") for e in TREE_EXCLUDE)


def tree_from_saved(saved, image_id=None):
    """The root tree an image holds, from its saved tar: its layers applied in order.

    Whiteouts (`.wh.name`) delete a path of the layers below, an opaque marker
    (`.wh..wh..opq`) empties a directory of their content: what a runtime must show.
    Returns (tree, facts) where facts says which whiteouts and opaque markers were seen.
    """
    outer = tarfile.open(fileobj=io.BytesIO(saved))
    manifest = json.load(outer.extractfile("manifest.json"))
    if image_id:
        want = image_id.split(":")[-1]
        manifest = [m for m in manifest if m["Config"].split(".")[0].split(":")[-1] == want] or manifest
    tree, facts = {}, {"whiteouts": [], "opaque": [], "layers": len(manifest[0]["Layers"])}
    for layer in manifest[0]["Layers"]:
        inner = tarfile.open(fileobj=outer.extractfile(layer))
        members = inner.getmembers()
        # Deletions apply to the layers below, so they go first; then this layer's entries.
        for m in members:
            path = _norm(m.name)
            base, parent = os.path.basename(path), os.path.dirname(path)
            if base == ".wh..wh..opq":
                facts["opaque"].append(parent)
                for p in [p for p in tree if p.startswith(parent.rstrip("/") + "/")]:
                    del tree[p]
            elif base.startswith(".wh."):
                gone = os.path.join(parent, base[4:])
                facts["whiteouts"].append(gone)
                for p in [p for p in tree if p == gone or p.startswith(gone + "/")]:
                    del tree[p]
        for m in members:
            path = _norm(m.name)
            if os.path.basename(path).startswith(".wh.") or path == "/":
                continue
            if m.isreg():
                digest = hashlib.sha256(inner.extractfile(m).read()).hexdigest()
                tree[path] = _entry("file", m.mode & 0o7777, m.uid, m.gid, digest)
            elif m.islnk():
                src = tree.get(_norm(m.linkname), "file 0 0:0 ?")
                tree[path] = src
            elif m.isdir():
                tree[path] = _entry("dir", m.mode & 0o7777, m.uid, m.gid)
            elif m.issym():
                tree[path] = _entry("link", m.mode & 0o7777, m.uid, m.gid, target=m.linkname)
            else:
                tree[path] = _entry("other", m.mode & 0o7777, m.uid, m.gid)
    return {p: e for p, e in tree.items() if not _excluded(p)}, facts


def _link_mode_free(tree):
    # A symlink's own mode is meaningless (0777 on Linux, whatever a tar says).
    return {p: (re.sub(r"^link \d+ ", "link ", e)) for p, e in tree.items()}


# What a runtime may create in the root tree when the image lacks it: the working directory
# (dockerd's builder puts WORKDIR in a layer, buildah does not; both runtimes create it at
# start) and /run (podman creates it for /run/.containerenv). Only when absent from the image.
RUNTIME_CREATED = ("/run",)


def runtime_view(expected, observed, workdir=None):
    """observed without what a runtime may add (RUNTIME_CREATED, the workdir) to an image lacking it."""
    allowed = set(RUNTIME_CREATED)
    if workdir and workdir != "/":
        parts = workdir.strip("/").split("/")
        allowed |= {"/" + "/".join(parts[:i]) for i in range(1, len(parts) + 1)}
    return {p: e for p, e in observed.items() if p in expected or p not in allowed}


def tree_hash(tree):
    lines = "".join(f"{p} {e}\n" for p, e in sorted(_link_mode_free(tree).items()))
    return "sha256:" + hashlib.sha256(lines.encode()).hexdigest()


def tree_diff(expected, observed, limit=8):
    """'none', or a short account of what differs: extra, missing and changed paths."""
    exp, obs = _link_mode_free(expected), _link_mode_free(observed)
    extra = sorted(set(obs) - set(exp))
    missing = sorted(set(exp) - set(obs))
    changed = sorted(p for p in set(exp) & set(obs) if exp[p] != obs[p])
    parts = []
    for label, paths in (("extra", extra), ("missing", missing), ("changed", changed)):
        if paths:
            more = f" (+{len(paths) - limit} more)" if len(paths) > limit else ""
            parts.append(f"{label} {', '.join(paths[:limit])}{more}")
    return "; ".join(parts) or "none"


def compare_trees(expected, observed, workdir=None):
    """(expected hash, observed hash, short diff, long diff) of a container's tree vs its image's."""
    seen = runtime_view(expected, observed, workdir)
    return tree_hash(expected), tree_hash(seen), tree_diff(expected, seen), tree_diff(expected, seen, limit=100)


def tree_text(tree):
    return "".join(f"{p} {e}\n" for p, e in sorted(tree.items()))


# -- the registry, seen from the controller ----------------------------------------------------
MANIFEST_V2 = "application/vnd.docker.distribution.manifest.v2+json"


def registry_get(address, path, accept=None, timeout=10):
    """(headers, body) of GET http://address/v2/path."""
    req = urllib.request.Request(f"http://{address}/v2/{path}", headers={"Accept": accept} if accept else {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return dict(r.headers), r.read()
    except (urllib.error.URLError, OSError) as e:
        raise CutoverError(f"registry {address}: GET /v2/{path}: {getattr(e, 'reason', e)}") from None


def registry_delete(address, repo, digest, timeout=10):
    req = urllib.request.Request(f"http://{address}/v2/{repo}/manifests/{digest}", method="DELETE")
    try:
        urllib.request.urlopen(req, timeout=timeout).close()
    except (urllib.error.URLError, OSError):
        pass     # best effort: the lab's storage goes with `lab down`


def registry_delete_tags(address, repo, marker, timeout=10):
    """Delete the manifests of repo's tags that contain marker (a run's tags)."""
    try:
        _, body = registry_get(address, f"{repo}/tags/list", timeout=timeout)
    except CutoverError:
        return                           # no such repository: nothing was pushed
    for tag in json.loads(body).get("tags") or []:
        if marker in tag:
            headers, _ = registry_get(address, f"{repo}/manifests/{tag}", accept=MANIFEST_V2, timeout=timeout)
            if headers.get("Docker-Content-Digest"):
                registry_delete(address, repo, headers["Docker-Content-Digest"], timeout)


def manifest(address, repo, ref):
    _, body = registry_get(address, f"{repo}/manifests/{ref}", accept=MANIFEST_V2)
    return json.loads(body)


def blob_path(storage, digest):
    """Where distribution's filesystem driver keeps a blob (layer, config or manifest)."""
    algo, hexd = digest.split(":", 1)
    return os.path.join(storage, "docker", "registry", "v2", "blobs", algo, hexd[:2], hexd, "data")


def sha256(data):
    return "sha256:" + hashlib.sha256(data).hexdigest()


class Tampered:
    """Replace a blob file's bytes in the registry's storage; restore them on exit."""

    def __init__(self, path, new_bytes):
        self.path, self.new = path, new_bytes
        self.old = None

    def __enter__(self):
        try:
            with open(self.path, "rb") as f:
                self.old = f.read()
        except OSError as e:
            raise CutoverError(f"cannot read registry blob {self.path}: {e.strerror}") from None
        with open(self.path, "wb") as f:
            f.write(self.new(self.old) if callable(self.new) else self.new)
        return self

    def __exit__(self, *exc):
        with open(self.path, "wb") as f:
            f.write(self.old)


def flip_middle(data, n=16):
    """The same size, n bytes inverted in the middle: a digest can no longer match."""
    b = bytearray(data)
    mid = len(b) // 2
    for i in range(mid, min(mid + n, len(b))):
        b[i] ^= 0xFF
    return bytes(b)


# -- a consistent rewrite: what an attacker who can write the registry's storage does ----------
def _repo_dir(storage, repo):
    return os.path.join(storage, "docker", "registry", "v2", "repositories", repo)


def rewritten_layer(blob):
    """A gzip'd layer tar with every regular file's content changed (the same paths and modes)."""
    import gzip
    src = tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob)))
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w") as dst:
        for m in src.getmembers():
            if m.isreg():
                data = b"rewritten in the registry: " + src.extractfile(m).read()
                m.size = len(data)
                dst.addfile(m, io.BytesIO(data))
            else:
                dst.addfile(m)
    return out.getvalue(), gzip.compress(out.getvalue(), mtime=0)


def rewrite_image(manifest_bytes, config_bytes, layer_blob, layer_digest):
    """(manifest, config, layer) blobs of an image whose one layer is rewritten, and whose config
    and manifest name the new layer: self-consistent, so every digest a client checks matches."""
    tar, gz = rewritten_layer(layer_blob)
    config = json.loads(config_bytes)
    m = json.loads(manifest_bytes)
    index = [l["digest"] for l in m["layers"]].index(layer_digest)
    config["rootfs"]["diff_ids"][index] = sha256(tar)
    new_config = json.dumps(config, separators=(",", ":")).encode()
    m["config"].update(digest=sha256(new_config), size=len(new_config))
    m["layers"][index].update(digest=sha256(gz), size=len(gz))
    return json.dumps(m, indent=3).encode(), new_config, gz


class Rewritten:
    """Registry storage in which repo:tag names a rewritten image (new layer, config and manifest
    blobs, linked into the repository, the tag's current link pointed at the new manifest), as
    an attacker with write access to the storage would leave it; everything undone on exit."""

    def __init__(self, storage, repo, tag, blobs):
        self.storage, self.repo, self.tag = storage, repo, tag
        self.blobs = blobs                       # [manifest, config, layer] bytes
        self.made, self.old_link = [], None

    def _write(self, path, data):
        if os.path.exists(path):
            return                               # a blob already there is the same bytes
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
        self.made.append(path)

    def __enter__(self):
        repo = _repo_dir(self.storage, self.repo)
        manifest, config, layer = self.blobs
        digests = [sha256(b) for b in self.blobs]
        for data, d in zip(self.blobs, digests):
            self._write(blob_path(self.storage, d), data)
        for d in digests[1:]:
            self._write(os.path.join(repo, "_layers", "sha256", d.split(":")[1], "link"), d.encode())
        self._write(os.path.join(repo, "_manifests", "revisions", "sha256", digests[0].split(":")[1], "link"),
                    digests[0].encode())
        tag_dir = os.path.join(repo, "_manifests", "tags", self.tag)
        self._write(os.path.join(tag_dir, "index", "sha256", digests[0].split(":")[1], "link"), digests[0].encode())
        current = os.path.join(tag_dir, "current", "link")
        try:
            with open(current, "rb") as f:
                self.old_link = f.read()
        except OSError as e:
            raise CutoverError(f"cannot read the registry's tag link {current}: {e.strerror}") from None
        with open(current, "wb") as f:
            f.write(digests[0].encode())
        self.digest = digests[0]
        return self

    def __exit__(self, *exc):
        if self.old_link is not None:
            with open(os.path.join(_repo_dir(self.storage, self.repo), "_manifests", "tags", self.tag,
                                   "current", "link"), "wb") as f:
                f.write(self.old_link)
        for path in reversed(self.made):
            try:
                os.unlink(path)
            except OSError:
                pass
