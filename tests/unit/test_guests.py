"""Kernel-gate guests: specs, the qemu command line, the targets file and the guest scripts.

The guests themselves boot for real in ./kernel-gate.sh (README: "Kernel gate"); these are the
pure parts: what a bad --guests value says, what qemu is asked for (no network but the
forwarded ssh port on loopback, the cached image never written) and that the targets file a
guest writes is one the harness accepts, with daemon events the guest's script knows.
"""
import os
import subprocess
import types

import pytest
import yaml

from cutover import targets
from cutover.errors import CutoverError
from cutover.lab import guests as G

FILES = os.path.join(os.path.dirname(G.__file__), "guest_files")


@pytest.mark.parametrize("value, specs", [("6.1", ["6.1"]), ("6.1,6.12,6.12-cgroup2", ["6.1", "6.12", "6.12-cgroup2"]),
                                          (" 6.12 , 6.1-cgroup2 ", ["6.12", "6.1-cgroup2"]), ("none", [])])
def test_specs(value, specs):
    assert G.parse_specs(value) == specs


@pytest.mark.parametrize("value, words", [("7.0", "'7.0' is not KERNEL"), ("6.1-cgroup3", "'6.1-cgroup3'"),
                                          ("6.1,6.1", "names a guest twice"), ("latest", "'latest'")])
def test_bad_specs_get_one_line(value, words):
    with pytest.raises(CutoverError) as e:
        G.parse_specs(value)
    assert words in str(e.value) and "\n" not in str(e.value)


class FakeImage:
    disk = "/cache/disk-x.img"
    key = "/cache/id_ed25519"
    host_key = "ssh-ed25519 AAAA"
    info = {"kernels": {"6.1": "6.1.0-50-amd64", "6.12": "6.12.95+deb12-amd64"},
            "packages": {"docker.io": "20.10.24", "lxcfs": "5.0.3"}}

    def kernel(self, series):
        rel = self.info["kernels"][series]
        return f"/cache/vmlinuz-{rel}", f"/cache/initrd.img-{rel}", rel


def guest(tmp_path, spec):
    lab = types.SimpleNamespace(root=str(tmp_path), run_dir=str(tmp_path / "run"), log_dir=str(tmp_path / "log"))
    gs = types.SimpleNamespace(lab=lab, dir=str(tmp_path / "guests"), ssh_config=str(tmp_path / "guests/ssh_config"))
    os.makedirs(gs.dir)
    g = G.Guest(gs, spec)
    os.makedirs(g.dir)
    g.image = FakeImage()
    with open(g.port_path, "w") as f:
        f.write("40022")
    return g


def test_qemu_gets_no_network_but_the_forwarded_ssh_port_and_never_writes_the_image(tmp_path):
    argv = " ".join(guest(tmp_path, "6.12").argv())
    assert "user,id=n0,restrict=on,hostfwd=tcp:127.0.0.1:40022-:22" in argv
    assert "file=/cache/disk-x.img,format=raw,if=virtio,snapshot=on" in argv
    assert "-kernel /cache/vmlinuz-6.12.95+deb12-amd64" in argv and "unified_cgroup_hierarchy" not in argv
    assert str(tmp_path) in argv          # the pid file: how the lab knows the process is its own


def test_cgroup2_guest_boots_with_a_pure_v2_hierarchy(tmp_path):
    argv = guest(tmp_path, "6.1-cgroup2").argv()
    cmdline = argv[argv.index("-append") + 1]
    assert "systemd.unified_cgroup_hierarchy=1" in cmdline and "cgroup_no_v1=all" in cmdline
    assert "vmlinuz-6.1.0-50-amd64" in " ".join(argv)


def test_targets_file_parses_and_its_daemon_events_are_the_guest_scripts(tmp_path):
    g = guest(tmp_path, "6.1")
    open(g.guests.ssh_config, "w").close()
    g.write_targets()
    with open(g.targets_path) as f:
        data = yaml.safe_load(f)
    ts = targets.parse(data, source=g.targets_path, base_dir=os.path.dirname(g.targets_path))
    assert set(ts) == {"docker", "docker-lxcfs"}
    with open(os.path.join(FILES, "cutover-daemon")) as f:
        script = f.read()
    for t in ts.values():
        assert t.host == "ssh://vm-6.1" and t.ssh_config == g.guests.ssh_config and t.time_factor == G.TIME_FACTOR
        assert set(t.daemon) <= targets.DAEMON_KEYS
        for event, cmd in t.daemon.items():
            assert cmd == f"cutover-daemon {event}" and f"\n  {event})" in script
    assert "lxcfs-restart" in ts["docker-lxcfs"].daemon and "lxcfs-restart" not in ts["docker"].daemon


@pytest.mark.parametrize("name", ["cutover-boot", "cutover-daemon"])
def test_guest_scripts_are_valid_sh(name):
    res = subprocess.run(["sh", "-n", os.path.join(FILES, name)], capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
