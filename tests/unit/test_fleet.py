"""Fleet runs, pure logic: host selection, CI shards, the targets file's fleet keys, variants,
ansible:// group expansion, and the work units xdist schedules."""
import functools

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
# Selection tests: every ansible:// name is a host of its own (no inventory is read).
_select = fleet.select
fleet_select = functools.partial(_select, inventory_hosts=lambda inv, pattern: [pattern])


def test_host_globs_match_url_or_name():
    ts = fleet_of(HOSTS)
    assert fleet.hosts_of(fleet_select(ts, hosts="web-*")) == ["ansible://web-03", "ssh://web-01", "ssh://web-02"]
    assert fleet.hosts_of(fleet_select(ts, hosts="ssh://*")) == ["ssh://db-01", "ssh://web-01", "ssh://web-02"]
    assert fleet.hosts_of(fleet_select(ts, hosts="db-01,local://")) == ["local://", "ssh://db-01"]
    with pytest.raises(CutoverError, match="no target is on a host matching 'mail-\\*'"):
        fleet_select(ts, hosts="mail-*")


def test_ansible_group_keeps_its_members_however_reached():
    ts = fleet_of(HOSTS)
    got = fleet_select(ts, ansible_group="web", group_members=lambda _ts, g: {"web-01", "web-03"})
    assert fleet.hosts_of(got) == ["ansible://web-03", "ssh://web-01"]


@given(st.integers(min_value=1, max_value=40), st.integers(min_value=1, max_value=40))
def test_shards_are_disjoint_balanced_and_cover_every_host_whole(n_hosts, n_shards):
    ts = fleet_of([f"ssh://h{i:03d}" for i in range(n_hosts)])
    if n_shards > n_hosts:
        with pytest.raises(CutoverError, match="use at most"):
            fleet_select(ts, shard=f"1/{n_shards}")
        return
    shards = [fleet_select(ts, shard=f"{k}/{n_shards}") for k in range(1, n_shards + 1)]
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
        fleet_select(fleet_of(HOSTS), shard=spec)
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
    # A Debian release the lab can bootstrap is a host variant too (the host runs its stack).
    assert parse_variants(["2:trixie,no-lxcfs"], 2) == {2: {"trixie", "no-lxcfs"}}


# -- ansible://group: one target per inventory host -------------------------------------------

INVENTORY = """all:
  vars: {ansible_user: root, ansible_ssh_private_key_file: /keys/id, ansible_ssh_common_args: -o BindInterface=br0 -o ControlPath=/cp/ci-%h}
  children:
    rack_a:
      hosts:
        web-01: {ansible_host: 10.0.0.11, ansible_port: 2222}
        web-02: {ansible_host: 10.0.0.12}
    rack_b:
      hosts:
        db-01: {ansible_host: 10.0.1.11, ansible_user: admin}
"""


def group_file(tmp_path, host, endpoint="ssh:///run/docker.sock", extra=None):
    (tmp_path / "inventory.yaml").write_text(INVENTORY)
    (tmp_path / "ssh_config").write_text("Host *\n")
    data = {"ssh_config": "ssh_config", "ansible_inventory": "inventory.yaml",
            "targets": {"web-docker": {"host": host, "driver": "docker", "endpoint": endpoint},
                        "local-docker": {"driver": "docker", "endpoint": "unix:///x"}, **(extra or {})}}
    return targets.parse(data, source="t.yaml", base_dir=str(tmp_path))


def test_a_group_becomes_one_target_per_inventory_host(tmp_path):
    ts = fleet.expand(group_file(tmp_path, "ansible://rack_a"))      # the real inventory, read by Ansible
    assert sorted(ts) == ["local-docker", "web-docker@web-01", "web-docker@web-02"]
    a = ts["web-docker@web-01"]
    assert (a.host, a.endpoint, a.ssh_config) == ("ansible://web-01", "ssh://web-01/run/docker.sock", None)
    assert a.host_options() == {"ansible_inventory": str(tmp_path / "inventory.yaml")}
    assert ts["local-docker"].ssh_config == str(tmp_path / "ssh_config")       # ssh:// and local keep it
    assert fleet.expand(ts) == ts                                               # idempotent


def test_a_host_named_directly_keeps_its_target_name(tmp_path):
    ts = fleet.expand(group_file(tmp_path, "ansible://db-01", endpoint="ssh://db-01"))
    assert sorted(ts) == ["local-docker", "web-docker"]
    assert (ts["web-docker"].host, ts["web-docker"].endpoint) == ("ansible://db-01", "ssh://db-01")


def test_selection_sees_the_expanded_hosts(tmp_path):
    ts = group_file(tmp_path, "ansible://all")
    assert fleet.hosts_of(fleet.select(ts, hosts="web-0*")) == ["ansible://web-01", "ansible://web-02"]
    got = fleet.select(ts, shard="1/2")
    assert fleet.hosts_of(got) == ["ansible://db-01", "ansible://web-02"]


@pytest.mark.parametrize("host,endpoint,needle", [
    ("ansible://rack_c", "ssh:///run/docker.sock", "no host of inventory .* matches 'rack_c'"),
    ("ansible://rack_a", "ssh://other/run/docker.sock", "its own host; write ssh:///<socket>"),
    ("ansible://rack_a", "ssh://root@rack_a/run/docker.sock", "come from its inventory"),
])
def test_bad_group_targets_are_one_line(tmp_path, host, endpoint, needle):
    with pytest.raises(CutoverError, match=needle) as e:
        fleet.expand(group_file(tmp_path, host, endpoint))
    assert "\n" not in str(e.value)


def test_the_forward_to_an_ansible_host_uses_the_inventory_only(tmp_path):
    ts = fleet.expand(group_file(tmp_path, "ansible://all"))
    argv = sshfwd.inventory_argv(ts["web-docker@web-01"].ansible_inventory, "web-01", ["-o", "ControlMaster=no"])
    # The forward's own options first (ssh keeps an option's first value), then the inventory's.
    assert argv[:3] == ["ssh", "-o", "ControlMaster=no"]
    assert argv[3:] == ["-o", "BindInterface=br0", "-o", "ControlPath=/cp/ci-%h", "-i", "/keys/id",
                        "-l", "root", "-p", "2222", "--", "10.0.0.11"]
    assert "-F" not in argv
    db = sshfwd.inventory_argv(ts["web-docker@db-01"].ansible_inventory, "db-01")
    assert db[-4:] == ["-l", "admin", "--", "10.0.1.11"] and "-p" not in db


# -- the work units xdist schedules --------------------------------------------------------------

NAMES = {"docker": "local://", "docker-lxcfs": "local://", "docker-crun": "local://",
         "docker-no-live-restore": "local://", "lxc-t4": "local://", "lxc-t4+docker-lxcfs": "local://",
         "h1-docker": "ssh://h1", "h1-docker-lxcfs": "ssh://h1", "web-docker@web-01": "ansible://web-01"}


@pytest.mark.parametrize("nodeid,subject", [
    ("conformance/isolation/test_visibility.py::test_meminfo[docker-cpuset1-256m]", "docker"),
    ("conformance/isolation/test_visibility.py::test_meminfo[docker-lxcfs-cfs0.5-512m]", "docker-lxcfs"),
    ("conformance/isolation/test_security.py::test_caps[docker-crun-cpuset1-256m]", "docker-crun"),
    ("conformance/lifecycle/test_daemon_events.py::test_live[docker-no-live-restore-daemon-kill]",
     "docker-no-live-restore"),
    ("conformance/lifecycle/test_daemon_events.py::test_live[lxc-t4-containerd-kill]", "lxc-t4"),
    ("conformance/isolation/test_coexistence.py::test_accounting[lxc-t4+docker-lxcfs]", "lxc-t4+docker-lxcfs"),
    ("conformance/isolation/test_security.py::test_ns[docker-cpuset1-256m-uts]", "docker"),
    ("conformance/images/test_build.py::test_env[h1-docker-lxcfs]", "h1-docker-lxcfs"),
    ("conformance/images/test_build.py::test_env[web-docker@web-01]", "web-docker@web-01"),
    ("conformance/images/test_build.py::test_env[h1-docker]@target-h1-docker", "h1-docker"),   # xdist's suffix
    ("conformance/images/test_build.py::test_env[podman]", None),
    ("conformance/images/test_build.py::test_catalogue", None),
])
def test_a_test_id_names_its_target(nodeid, subject):
    assert fleet.subject_of(nodeid, NAMES) == subject


def test_scopes_are_targets_or_hosts():
    a = "conformance/isolation/test_visibility.py::test_meminfo[h1-docker-cpuset1-256m]"
    b = "conformance/isolation/test_loadavg.py::test_loadavg[h1-docker-lxcfs-cpuset1-256m]"
    assert fleet.scope(a, NAMES, "target") == "target h1-docker" != fleet.scope(b, NAMES, "target")
    assert fleet.scope(a, NAMES, "host") == fleet.scope(b, NAMES, "host") == "host ssh://h1"
    lone = "conformance/x.py::test_y[podman]"
    assert fleet.scope(lone, NAMES, "host") == lone           # about no target: a unit of its own


@pytest.mark.parametrize("hosts,workers,choice,want", [
    (1, 2, "auto", "target"), (3, 6, "auto", "target"), (4, 2, "auto", "host"), (2, 2, "auto", "host"),
    (100, 8, "auto", "host"), (1, 2, "host", "host"), (100, 8, "target", "target"),
])
def test_granularity(hosts, workers, choice, want):
    assert fleet.granularity(hosts, workers, choice) == want
