"""The images suite's pure logic: trees from layers and from a container listing, their
comparison, the app image's context, registry helpers and the targets file's registry key."""
import io
import json
import tarfile

import pytest

from cutover import images, targets
from cutover.errors import CutoverError


def _layer(entries):
    """A layer tar: (name, kind, data_or_target, mode)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        for name, kind, data, mode in entries:
            info = tarfile.TarInfo(name)
            info.mode = mode
            if kind == "dir":
                info.type = tarfile.DIRTYPE
                tar.addfile(info)
            elif kind == "link":
                info.type, info.linkname = tarfile.SYMTYPE, data
                tar.addfile(info)
            elif kind == "hard":
                info.type, info.linkname = tarfile.LNKTYPE, data
                tar.addfile(info)
            else:
                info.size = len(data)
                tar.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def _saved(layers):
    """A `docker save` tar holding the given layers, lowest first."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        names = []
        for i, data in enumerate(layers):
            names.append(f"l{i}/layer.tar")
            info = tarfile.TarInfo(names[-1])
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
        man = json.dumps([{"Config": "abc.json", "RepoTags": None, "Layers": names}]).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(man)
        tar.addfile(info, io.BytesIO(man))
    return buf.getvalue()


LOWER = _layer([("bin/", "dir", None, 0o755), ("bin/busybox", "file", b"bb", 0o755),
                ("bin/sh", "link", "busybox", 0o777), ("app/", "dir", None, 0o755),
                ("app/secret.txt", "file", b"s", 0o600), ("app/conf/", "dir", None, 0o755),
                ("app/conf/a.conf", "file", b"a", 0o644), ("proc/", "dir", None, 0o755),
                ("etc/", "dir", None, 0o755), ("etc/hostname", "file", b"img", 0o644)])
UPPER = _layer([("app/", "dir", None, 0o755), ("app/.wh.secret.txt", "file", b"", 0o600),
                ("app/conf/", "dir", None, 0o755), ("app/conf/.wh..wh..opq", "file", b"", 0o644),
                ("app/conf/c.conf", "file", b"c", 0o644), ("bin/ash", "hard", "bin/busybox", 0o755)])


def test_tree_from_saved_applies_whiteouts_and_opaque_dirs():
    tree, facts = images.tree_from_saved(_saved([LOWER, UPPER]))
    assert "/app/secret.txt" not in tree and "/app/conf/a.conf" not in tree
    assert tree["/app/conf/c.conf"].startswith("file 644 0:0 ")
    assert tree["/bin/sh"] == "link 777 0:0 -> busybox"
    assert tree["/bin/ash"] == tree["/bin/busybox"]             # a hard link is the same file
    assert "/proc" not in tree and "/etc/hostname" not in tree  # runtime-provided: excluded
    assert facts == {"whiteouts": ["/app/secret.txt"], "opaque": ["/app/conf"], "layers": 2}


def test_tree_from_script_matches_the_layers():
    digest = images.sha256(b"bb").split(":")[1]
    out = ("directory|755|0|0|./bin\nregular file|755|0|0|./bin/busybox\n"
           "symbolic link|777|0|0|'./bin/sh' -> 'busybox'\nregular empty file|600|0|0|./.dockerenvx\n"
           f"--- sha256\n{digest}  ./bin/busybox\n{images.sha256(b'').split(':')[1]}  ./.dockerenvx\n")
    tree = images.tree_from_script(out)
    assert tree["/bin/busybox"] == f"file 755 0:0 {digest}"
    assert tree["/bin/sh"] == "link 777 0:0 -> busybox"
    assert "/.dockerenvx" in tree                               # only the exact names are excluded
    with pytest.raises(CutoverError):
        images.tree_from_script("directory|755|0|0|./bin\n")     # cut short: no checksums


def test_tree_diff_names_extra_missing_and_changed():
    exp = {"/a": "file 644 0:0 x", "/b": "dir 755 0:0", "/l": "link 777 0:0 -> a"}
    assert images.tree_diff(exp, dict(exp, **{"/l": "link 755 0:0 -> a"})) == "none"   # link modes ignored
    obs = {"/a": "file 600 0:0 x", "/c": "file 644 0:0 y", "/l": exp["/l"]}
    assert images.tree_diff(exp, obs) == "extra /c; missing /b; changed /a"
    assert images.tree_hash(exp) != images.tree_hash(obs)
    many = {f"/x{i}": "dir 755 0:0" for i in range(12)}
    assert images.tree_diff({}, many, limit=3).endswith("(+9 more)")


def test_runtime_view_allows_only_what_a_runtime_creates():
    exp = {"/app": "dir 755 0:0"}
    obs = {"/app": "dir 755 0:0", "/app/work": "dir 755 0:0", "/run": "dir 755 0:0", "/data": "dir 755 0:0"}
    assert set(images.runtime_view(exp, obs, "/app/work")) == {"/app", "/data"}
    # Present in the image: compared like any path.
    assert images.compare_trees({"/run": "dir 700 0:0"}, {"/run": "dir 755 0:0"})[2] == "changed /run"


def test_app_context_and_declarations():
    app = images.AppImage(2, "run r target t")
    with tarfile.open(fileobj=app.context()) as tar:
        names = tar.getnames()
        dockerfile = tar.extractfile("Dockerfile").read().decode()
        assert tar.getmember("app/entry.sh").mode == 0o755
        assert tar.getmember("app").isdir()
    assert dockerfile.splitlines()[1] == "COPY build-info /app/build-info"
    assert "APP_MODE=v2" in dockerfile and "app/release-2.txt" in names
    assert app.entry_line() == ("entry: args=serve user=1000:1000 cwd=/app/work greeting=hello from the image "
                                "mode=v2 home=/home/app")
    assert images.ref_safe("20250101T0000Z-ab", "Docker_X") == "20250101t0000z-ab-docker_x"


def test_flip_middle_keeps_the_size_and_changes_the_digest():
    data = bytes(range(256)) * 4
    flipped = images.flip_middle(data)
    assert len(flipped) == len(data) and images.sha256(flipped) != images.sha256(data)


def test_tampered_restores_the_file(tmp_path):
    p = tmp_path / "data"
    p.write_bytes(b"original")
    with images.Tampered(str(p), images.flip_middle):
        assert p.read_bytes() != b"original"
    assert p.read_bytes() == b"original"
    assert images.blob_path("/s", "sha256:abcdef") == "/s/docker/registry/v2/blobs/sha256/ab/abcdef/data"


BASE = {"driver": "docker", "endpoint": "unix:///x"}


def test_registry_key_defaults_and_values():
    t = targets.parse({"targets": {"d": dict(BASE, registry={"address": "127.0.0.1:5000"})}})["d"]
    assert t.registry == {"address": "127.0.0.1:5000", "pull_by": "tag"}
    assert targets.parse({"targets": {"d": BASE}})["d"].registry == {}


@pytest.mark.parametrize("reg,needle", [
    ("127.0.0.1:5000", "must be a mapping"),
    ({}, "registry.address: required"),
    ({"address": "http://r:5000"}, "must be host[:port]"),
    ({"address": "r:5000", "pull_by": "hash"}, "must be 'tag' or 'digest'"),
    ({"address": "r:5000", "mirror": 1}, "unknown key 'mirror'"),
])
def test_bad_registry_key(reg, needle):
    with pytest.raises(CutoverError) as e:
        targets.parse({"targets": {"d": dict(BASE, registry=reg)}}, source="t.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value)


def _pushed_image():
    """(manifest, config, layer) bytes of a one-layer image as a registry would store them."""
    import gzip
    tar = _layer([("payload", "file", b"the pushed payload\n", 0o644)])
    gz = gzip.compress(tar, mtime=0)
    config = json.dumps({"rootfs": {"type": "layers", "diff_ids": [images.sha256(tar)]},
                         "config": {"Labels": {"cutover.run": "r"}}}).encode()
    manifest = json.dumps({"schemaVersion": 2, "mediaType": images.MANIFEST_V2,
                           "config": {"digest": images.sha256(config), "size": len(config)},
                           "layers": [{"digest": images.sha256(gz), "size": len(gz)}]}).encode()
    return manifest, config, gz


def test_rewrite_is_self_consistent_and_changes_the_files():
    import gzip
    manifest, config, gz = _pushed_image()
    m2, c2, l2 = images.rewrite_image(manifest, config, gz, images.sha256(gz))
    m, c = json.loads(m2), json.loads(c2)
    # Every digest a client checks matches: layer blob, its diff ID, the config.
    assert m["layers"][0] == {"digest": images.sha256(l2), "size": len(l2)}
    assert m["config"] == {"digest": images.sha256(c2), "size": len(c2)}
    assert c["rootfs"]["diff_ids"] == [images.sha256(gzip.decompress(l2))]
    assert c["config"] == {"Labels": {"cutover.run": "r"}}          # the run's label stays: swept
    # ... and it is another image with other files.
    assert images.sha256(c2) != images.sha256(config)
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(l2))) as t:
        assert t.extractfile("payload").read() == b"rewritten in the registry: the pushed payload\n"


def test_rewritten_storage_points_the_tag_and_is_undone(tmp_path):
    storage, repo, tag = str(tmp_path), "cutover-img/app", "t1"
    repo_dir = tmp_path / "docker" / "registry" / "v2" / "repositories" / repo
    current = repo_dir / "_manifests" / "tags" / tag / "current" / "link"
    current.parent.mkdir(parents=True)
    current.write_bytes(b"sha256:" + b"0" * 64)
    blobs = images.rewrite_image(*_pushed_image()[:2], _pushed_image()[2], images.sha256(_pushed_image()[2]))
    before = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    with images.Rewritten(storage, repo, tag, blobs) as rw:
        assert current.read_bytes() == rw.digest.encode() == images.sha256(blobs[0]).encode()
        for data in blobs:
            assert open(images.blob_path(storage, images.sha256(data)), "rb").read() == data
        for d in blobs[1:]:
            assert (repo_dir / "_layers" / "sha256" / images.sha256(d)[7:] / "link").exists()
        assert (repo_dir / "_manifests" / "revisions" / "sha256" / rw.digest[7:] / "link").exists()
    assert current.read_bytes() == b"sha256:" + b"0" * 64
    assert sorted(p for p in tmp_path.rglob("*") if p.is_file()) == before


def test_push_digest_from_the_aux_record_or_the_status_line():
    from cutover.drivers import driver_for
    d = driver_for(targets.parse({"targets": {"t": {"driver": "docker", "endpoint": "unix:///nonexistent.sock"}}})["t"])
    digest = "sha256:" + "ab" * 32
    for stream in ([{"status": "The push refers to repository [r/x]"}, {"aux": {"Tag": "1", "Digest": digest}}],
                   [{"status": f"1: digest: {digest} size: 891"}]):        # podman 4.3's compatible API
        d._client = type("C", (), {"api": type("A", (), {"push": lambda *a, _s=stream, **k: iter(_s)})()})()
        assert d.push_image("r/x", "1") == digest
