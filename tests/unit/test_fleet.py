"""Fleet runs, pure logic: host selection, CI shards, the targets file's fleet keys, variants."""
import pytest
from hypothesis import given, strategies as st

from cutover import fleet, targets
from cutover.drivers import sshfwd
from cutover.errors import CutoverError
from cutover.lab.simhost import parse_variants


def fleet_of(hosts, per_host=2):
    data = {"targets": {f"{h.split('://')[1] or 'local'}-t{i}": {"driver": "docker", "endpoint": "unix:///x",
                                                                  "host": h}
                        for h in hosts for i in range(per_host)}}
    return targets.parse(data)


HOSTS = ["ssh://web-01", "ssh://web-02", "ssh://db-01", "ansible://web-03", "local://"]


def test_host_globs_match_url_or_name():
    ts = fleet_of(HOSTS)
    assert fleet.hosts_of(fleet.select(ts, hosts="web-*")) == ["ansible://web-03", "ssh://web-01", "ssh://web-02"]
    assert fleet.hosts_of(fleet.select(ts, hosts="ssh://*")) == ["ssh://db-01", "ssh://web-01", "ssh://web-02"]
    assert fleet.hosts_of(fleet.select(ts, hosts="db-01,local://")) == ["local://", "ssh://db-01"]
    with pytest.raises(CutoverError, match="no target is on a host matching 'mail-\\*'"):
        fleet.select(ts, hosts="mail-*")


def test_ansible_group_keeps_its_members_however_reached():
    ts = fleet_of(HOSTS)
    got = fleet.select(ts, ansible_group="web", group_members=lambda _ts, g: {"web-01", "web-03"})
    assert fleet.hosts_of(got) == ["ansible://web-03", "ssh://web-01"]


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=40))
def test_shards_are_disjoint_balanced_and_cover_every_host_whole(n_hosts, n_shards):
    ts = fleet_of([f"ssh://h{i:03d}" for i in range(n_hosts)])
    if n_shards > n_hosts:
        with pytest.raises(CutoverError, match="use at most"):
            fleet.select(ts, shard=f"1/{n_shards}")
        return
    shards = [fleet.select(ts, shard=f"{k}/{n_shards}") for k in range(1, n_shards + 1)]
    names = [n for s in shards for n in s]
    assert sorted(names) == sorted(ts)                      # every target exactly once
    sizes = [len(fleet.hosts_of(s)) for s in shards]
    assert max(sizes) - min(sizes) <= 1                     # balanced
    for s in shards:                                        # a host is never split
        for h in fleet.hosts_of(s):
            assert all(n in s for n, t in ts.items() if t.host == h)


@pytest.mark.parametrize("spec", ["0/3", "4/3", "3", "a/b", "1/0", " / "])
def test_bad_shard_is_one_line(spec):
    with pytest.raises(CutoverError) as e:
        fleet.select(fleet_of(HOSTS), shard=spec)
    assert "--shard" in str(e.value) and "\n" not in str(e.value)


def test_auto_workers_one_per_target_within_limits():
    assert fleet.auto_workers(fleet_of(["local://"], per_host=1), cpus=2) == 2
    assert fleet.auto_workers(fleet_of([f"ssh://h{i}" for i in range(2)]), cpus=2) == 4
    assert fleet.auto_workers(fleet_of([f"ssh://h{i}" for i in range(100)]), cpus=2) == 8


def test_fleet_keys_resolve_relative_to_the_targets_file(tmp_path):
    (tmp_path / "ssh_config").write_text("Host *\n")
    (tmp_path / "targets.yaml").write_text(
        "ssh_config: ssh_config\ntargets:\n  a:\n    host: ssh://web-01\n    driver: docker\n"
        "    endpoint: ssh://web-01\n")
    t = targets.load(str(tmp_path / "targets.yaml"))["a"]
    assert t.ssh_config == str(tmp_path / "ssh_config")
    assert t.host_options() == {"ssh_config": str(tmp_path / "ssh_config")}


@pytest.mark.parametrize("value,needle", [("nope", "not found"), (3, "must be a path")])
def test_bad_fleet_keys_are_one_line(tmp_path, value, needle):
    data = {"ansible_inventory": value, "targets": {"a": {"driver": "docker", "endpoint": "unix:///x"}}}
    with pytest.raises(CutoverError, match=needle):
        targets.parse(data, source="t.yaml", base_dir=str(tmp_path))


@pytest.mark.parametrize("endpoint,parsed", [
    ("ssh://h1", (None, "h1", None, "/var/run/docker.sock")),
    ("ssh://root@web-07:2222/run/podman/podman.sock", ("root", "web-07", 2222, "/run/podman/podman.sock")),
])
def test_ssh_endpoints(endpoint, parsed):
    assert sshfwd.parse_endpoint(endpoint) == parsed


@pytest.mark.parametrize("specs,needle", [
    (["2"], "expected HOST:VARIANT"), (["5:no-lxcfs"], "not one of 1..3"), (["1:fast"], "unknown variant 'fast'"),
])
def test_bad_host_variants(specs, needle):
    with pytest.raises(CutoverError, match=needle):
        parse_variants(specs, 3)


def test_host_variants():
    assert parse_variants(["2:lxcfs-default,ansible", "3:no-live-restore"], 3) == \
        {2: {"lxcfs-default", "ansible"}, 3: {"no-live-restore"}}
