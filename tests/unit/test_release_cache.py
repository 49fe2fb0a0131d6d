"""The release root cache: a second `lab up --release` must not bootstrap again."""
import json
import os
import subprocess

from cutover.lab import release


def test_bootstrap_runs_once_then_uses_the_stamp(tmp_path, monkeypatch):
    calls = []

    def fake_run(argv, **kw):
        calls.append(argv[0])
        if argv[0] == "debootstrap":          # what debootstrap leaves: a root file system
            os.makedirs(argv[4])
            return subprocess.CompletedProcess(argv, 0)
        if argv[0] == "chroot":               # dpkg-query in the new root
            out = "".join(f"{p}\t1.0\n" for p in release.PACKAGES)
            return subprocess.CompletedProcess(argv, 0, stdout=out, stderr="")
        raise AssertionError(f"unexpected command {argv}")

    monkeypatch.setattr(release.subprocess, "run", fake_run)
    monkeypatch.setattr(release, "available", lambda rel, path=None: (True, ""))
    root = str(tmp_path / "rootfs" / "trixie")
    assert release.bootstrap(root, "trixie", release.PACKAGES) == root
    assert calls == ["debootstrap", "chroot"]
    stamp = json.load(open(os.path.join(root, release.STAMP)))
    assert stamp["release"] == "trixie" and stamp["packages"]["docker.io"] == "1.0"
    assert release.bootstrap(root, "trixie", release.PACKAGES) == root
    assert calls == ["debootstrap", "chroot"], "the second call bootstrapped again"


def test_a_root_without_a_stamp_is_made_again(tmp_path, monkeypatch):
    """A partial root (a crash mid-bootstrap leaves no stamp) is not taken for a cached one."""
    root = tmp_path / "trixie"
    root.mkdir()
    (root / "etc").mkdir()
    assert release.read_stamp(str(root)) is None
    (root / release.STAMP).write_text("{not json")
    assert release.read_stamp(str(root)) is None
