"""Bad input: targets files, allocations and CLI arguments get one line, never a traceback."""
import subprocess

import pytest
import yaml
from hypothesis import given, settings, strategies as st

from cutover import allocations, targets
from cutover.errors import CutoverError
from tests.conftest import CUTOVER

GOOD = {"targets": {"d": {"driver": "docker", "endpoint": "unix:///run/x.sock"}}}


def test_good_targets_defaults():
    t = targets.parse(GOOD)["d"]
    assert (t.host, t.runtime, t.lxcfs, t.image) == ("local://", "runc", None, "cutover/probe:1")


@pytest.mark.parametrize("data,needle", [
    (None, "mapping with a 'targets' key"),
    ({"targets": {}}, "non-empty mapping"),
    ({"targets": {"d": {"driver": "docker"}}}, "targets.d.endpoint: required"),
    ({"targets": {"d": {"driver": "rkt", "endpoint": "unix:///x"}}}, "unknown driver 'rkt'"),
    ({"targets": {"d": {"driver": "docker", "endpoint": "unix:///x", "colour": 1}}}, "unknown key 'colour'"),
    ({"targets": {"d": {"driver": "docker", "endpoint": "/run/docker.sock"}}}, "must be unix://"),
    ({"targets": {"d": {"driver": "docker", "endpoint": "unix:///x", "host": "web-1"}}}, "not a testinfra URL"),
    ({"targets": {"d": {"driver": "docker", "endpoint": "unix:///x", "daemon": {"reboot": "x"}}}}, "unknown key 'reboot'"),
    ({"targets": {"bad name": {"driver": "docker", "endpoint": "unix:///x"}}}, "target name"),
    ({"targets": {"d": {"driver": "docker", "endpoint": "unix:///x", "time_factor": 0.5}}}, "time_factor: must be"),
    ({"targets": {"d": {"driver": "docker", "endpoint": "unix:///x", "time_factor": "slow"}}}, "time_factor: must be"),
    ({"targets": [], "extra": 1}, "unknown top-level key"),
])
def test_bad_targets(data, needle):
    with pytest.raises(CutoverError) as e:
        targets.parse(data, source="t.yaml")
    assert needle in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("spec,needle", [
    ("a:cpus=0,mem=256m", "positive number"),
    ("a:cpus=-1,mem=256m", "positive number"),
    ("a:cpus=64,mem=256m", "exceeds the host"),
    ("a:cpuset=7,mem=256m", "CPU 7 does not exist"),
    ("a:cpuset=1-0,mem=256m", "descending"),
    ("a:mem=1m", "too little"),
    ("a:cpuset=0", "'mem' is required"),
    ("a:mem=lots", "not a size"),
    ("a:mem=256m,gpu=1", "unknown field 'gpu'"),
    ("a:mem=256m;a:mem=512m", "duplicate"),
    ("nocolon", "must look like"),
    ("", "no allocation"),
])
def test_bad_allocations(spec, needle):
    with pytest.raises(CutoverError) as e:
        allocations.parse_spec(spec, host_cpus=2)
    assert needle in str(e.value)


def test_default_allocations_differ_in_every_dimension():
    a = allocations.parse_spec(allocations.DEFAULT_SPEC, host_cpus=2)
    assert len({x.memory for x in a}) == 3
    assert [x.expected_cpus(2) for x in a] == [1, 1, 2]
    assert allocations.parse_spec("x:cpuset=0-1,3,mem=1g", host_cpus=4)[0].cpuset == "0-1,3"


yaml_values = st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=12),
                           lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=10), c, max_size=4),
                           max_leaves=12)


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.sampled_from(["targets", "lab", "x"]),
                       st.dictionaries(st.text(max_size=8), st.dictionaries(
                           st.sampled_from(sorted(targets.TARGET_KEYS) + ["bogus"]), yaml_values, max_size=6),
                           max_size=3) | yaml_values, max_size=3) | yaml_values)
def test_targets_never_crash(data):
    try:
        targets.parse(data)
    except CutoverError as e:
        assert "\n" not in str(e)


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_allocation_spec_never_crashes(spec):
    try:
        allocations.parse_spec(spec, host_cpus=2)
    except CutoverError:
        pass


@settings(max_examples=50, deadline=None)
@given(st.text(max_size=200))
def test_targets_file_text_never_crashes(tmp_path_factory, text):
    p = tmp_path_factory.mktemp("t") / "targets.yaml"
    p.write_text(text)
    try:
        targets.load(str(p))
    except CutoverError as e:
        assert "\n" not in str(e)


def run_cli(*args):
    return subprocess.run([CUTOVER, *args], capture_output=True, text=True, timeout=60)


@pytest.mark.parametrize("content,args,needle", [
    ("targets: [unclosed", [], "malformed YAML"),
    ("targets:\n  d: {driver: podman9, endpoint: 'unix:///x'}\n", [], "unknown driver"),
    ("targets:\n  d: {driver: docker}\n", [], "endpoint: required"),
    (yaml.safe_dump(GOOD), ["--allocations", "a:cpus=0,mem=256m"], "positive number"),
    (yaml.safe_dump(GOOD), ["--target", "nope"], "unknown target 'nope'"),
])
def test_cli_bad_input_one_line_exit_2(tmp_path, content, args, needle):
    f = tmp_path / "targets.yaml"
    f.write_text(content)
    res = run_cli("run", "--targets", str(f), "--out", str(tmp_path / "out"), *args)
    assert res.returncode == 2, res
    assert needle in res.stderr and "Traceback" not in res.stderr + res.stdout
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr


def test_cli_missing_targets_file_and_bad_command(tmp_path):
    res = run_cli("run", "--targets", str(tmp_path / "none.yaml"))
    assert res.returncode == 2 and "not found" in res.stderr
    res = run_cli("frobnicate")
    assert res.returncode == 2 and "Traceback" not in res.stderr


def test_unreachable_endpoint_is_an_error_not_a_pass(tmp_path):
    f = tmp_path / "targets.yaml"
    f.write_text(yaml.safe_dump({"targets": {"gone": {"driver": "docker", "endpoint": f"unix://{tmp_path}/no.sock"}}}))
    out = tmp_path / "out"
    res = run_cli("run", "--targets", str(f), "--out", str(out), "-k", "meminfo")
    assert res.returncode == 1, res.stdout + res.stderr
    import json
    recs = json.load(open(out / "results.json"))["results"]
    assert recs and {r["outcome"] for r in recs} == {"error"}
    assert all("unreachable" in r["message"] for r in recs), recs[0]["message"]
    # ... and one line up front naming the target, its endpoint and the cause.
    assert "Traceback" not in res.stdout + res.stderr
    lines = [l for l in res.stderr.splitlines() if l.startswith("cutover: target gone:")]
    assert len(lines) == 1, res.stderr
    assert f"endpoint unix://{tmp_path}/no.sock unreachable: " in lines[0] and "No such file" in lines[0], lines[0]


# -- raw bytes, deep nesting, and the values behind them -------------------------------------

@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_targets_file_bytes_never_crash(tmp_path_factory, raw):
    """Any bytes at all (not only UTF-8 text): a one-line CutoverError or a valid file."""
    p = tmp_path_factory.mktemp("t") / "targets.yaml"
    p.write_bytes(raw)
    try:
        targets.load(str(p))
    except CutoverError as e:
        assert "\n" not in str(e)


@settings(max_examples=60, deadline=None)
@given(st.binary(min_size=1, max_size=8), st.integers(0, 200))
def test_targets_file_with_bad_bytes_inside_good_yaml(tmp_path_factory, junk, at):
    """Invalid UTF-8 spliced into a valid file is refused by name and place, never a traceback."""
    text = yaml.safe_dump(GOOD).encode()
    raw = text[:at % len(text)] + b"\xff" + junk + text[at % len(text):]
    p = tmp_path_factory.mktemp("t") / "targets.yaml"
    p.write_bytes(raw)
    with pytest.raises(CutoverError) as e:
        targets.load(str(p))
    assert str(p) in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize("depth", [10, 200, 900, 5000, 100000])
@pytest.mark.parametrize("shape", ["flow-list", "flow-map", "block-map", "inside-a-target"])
def test_deeply_nested_targets_file(tmp_path, depth, shape):
    if shape == "flow-list":
        text = "[" * depth + "]" * depth
    elif shape == "flow-map":
        text = "{a: " * depth + "1" + "}" * depth
    elif shape == "block-map":
        depth = min(depth, 1000)       # indentation grows quadratically in bytes
        text = "".join(" " * i + "a:\n" for i in range(depth)) + " " * depth + "1\n"
    else:
        text = ("targets:\n  d: {driver: docker, endpoint: 'unix:///x', description: " + "[" * depth
                + "]" * depth + ", options: {volumes: " + "[" * depth + "]" * depth + "}}\n")
    p = tmp_path / "targets.yaml"
    p.write_text(text)
    try:
        targets.load(str(p))
    except CutoverError as e:
        assert "\n" not in str(e) and len(str(e)) < 400


def _nest(depth, leaf, wrap=lambda x: [x]):
    for _ in range(depth):
        leaf = wrap(leaf)
    return leaf


@pytest.mark.parametrize("where", ["endpoint", "driver", "time_factor", "daemon-value", "name", "pairs"])
def test_deeply_nested_values_give_short_one_line_errors(where):
    """A huge or nested value is quoted short: the message names the field, not the value."""
    deep = _nest(600, "x")
    t = {"driver": "docker", "endpoint": "unix:///x"}
    data = {"targets": {"d": t}}
    if where == "endpoint":
        t["endpoint"] = deep
    elif where == "driver":
        t["driver"] = deep
    elif where == "time_factor":
        t["time_factor"] = deep
    elif where == "daemon-value":
        t["daemon"] = {"stop": deep}
    elif where == "name":
        data["targets"] = {_nest(600, "x", wrap=lambda x: (x,)): t}
    else:
        data["pairs"] = [deep]
    with pytest.raises(CutoverError) as e:
        targets.parse(data, source="t.yaml")
    msg = str(e.value)
    assert "\n" not in msg and len(msg) < 300, msg


def test_unknown_keys_of_mixed_types_are_named():
    with pytest.raises(CutoverError, match="unknown key '1'"):
        targets.parse({"targets": {"d": {**GOOD["targets"]["d"], 1: "x", "zz": 2}}}, source="t.yaml")
    with pytest.raises(CutoverError, match="unknown top-level key"):
        targets.parse({"targets": GOOD["targets"], None: 1, 3: 4}, source="t.yaml")


def test_newline_in_a_value_stays_on_one_line():
    with pytest.raises(CutoverError) as e:
        targets.parse({"targets": {"d": {"driver": "docker", "endpoint": "unix:///x",
                                         "host": "web-1\nERROR: injected"}}}, source="t.yaml")
    assert "\n" not in str(e.value) and "web-1\\nERROR" in str(e.value)


@pytest.mark.parametrize("driver,options,needle", [
    ("docker", {"netwrok": "host"}, "unknown option 'netwrok' for driver 'docker'"),
    ("podman", {"privilegd": True}, "unknown option 'privilegd' for driver 'podman'"),
    ("lxc", {"network": "host"}, "unknown option 'network' for driver 'lxc'"),
    ("docker", ["network"], "options: must be a mapping"),
])
def test_unknown_driver_options_refused_at_load(driver, options, needle):
    ep = "lxc:///var/lib/x" if driver == "lxc" else "unix:///x"
    with pytest.raises(CutoverError) as e:
        targets.parse({"targets": {"d": {"driver": driver, "endpoint": ep, "options": options}}}, source="t.yaml")
    assert needle in str(e.value) and "t.yaml: targets.d.options" in str(e.value)


def test_declared_driver_options_accepted():
    """Every option a driver declares (its OPTIONS) loads; the lab's own targets use them."""
    from cutover.drivers.docker import DockerDriver
    from cutover.drivers.lxc import LxcDriver
    for driver, names, ep in (("docker", DockerDriver.OPTIONS, "unix:///x"), ("podman", DockerDriver.OPTIONS, "unix:///x"),
                              ("lxc", LxcDriver.OPTIONS, "lxc:///var/lib/x")):
        opts = {n: None for n in names}
        t = targets.parse({"targets": {"d": {"driver": driver, "endpoint": ep, "options": opts}}})["d"]
        assert set(t.options) == set(names)


PAIRS_BASE = {"a": {"driver": "docker", "endpoint": "unix:///a"}, "b": {"driver": "lxc", "endpoint": "lxc:///l"},
              "c": {"driver": "docker", "endpoint": "unix:///c", "host": "ssh://h2"}}


@pytest.mark.parametrize("pairs,needle", [
    ("a,b", "pairs: must be a list"),
    ([["a", "nope"]], "unknown target 'nope'"),
    ([["a", "a"]], "cannot coexist with itself"),
    ([["a", "b", "c"]], "a pair is two target names"),
    ([["a", "c"]], "a pair shares one host"),
    ([{"a": "b"}], "a pair is two target names"),
])
def test_bad_pairs_refused_at_load_naming_the_file(pairs, needle):
    with pytest.raises(CutoverError) as e:
        targets.parse({"targets": PAIRS_BASE, "pairs": pairs}, source="t.yaml")
    assert needle in str(e.value) and "t.yaml: pairs" in str(e.value)
    assert "\n" not in str(e.value)


def test_good_pairs_load():
    assert set(targets.parse({"targets": PAIRS_BASE, "pairs": [["a", "b"]]})) == {"a", "b", "c"}


@pytest.mark.parametrize("spec,needle", [
    ("a:mem=256m,disk=1m", "disk: 1m is below 32 MiB"),
    ("a:mem=256m,disk=0", "disk: 0 is below 32 MiB"),
    ("a:mem=256m,pids=\u00b2\u00b2", "pids: must be an integer"),
    ("a:mem=256m,cpuset=0-99999999999", "beyond any host"),
    ("a:mem=\u0663\u0663m", "not a size"),
])
def test_more_bad_allocations(spec, needle):
    with pytest.raises(CutoverError) as e:
        allocations.parse_spec(spec, host_cpus=2)
    assert needle in str(e.value) and "\n" not in str(e.value)


def test_disk_at_the_floor_is_accepted():
    assert allocations.parse_spec("a:mem=256m,disk=32m", host_cpus=2)[0].disk == 32 * 2**20


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from("acdeikmpsu:=,;-.0123456789\u00b2\u0663 "), max_size=40))
def test_allocation_spec_near_misses_never_crash(spec):
    """Specs made of the grammar's own characters (and digits that are not ASCII)."""
    try:
        allocations.parse_spec(spec, host_cpus=2)
    except CutoverError as e:
        assert "\n" not in str(e)


# -- the CLI: one line, exit 2, no traceback --------------------------------------------------

def _cli_one_line(res, needle):
    assert res.returncode == 2, (res.returncode, res.stdout[-2000:], res.stderr[-2000:])
    assert "Traceback" not in res.stderr + res.stdout
    assert needle in res.stderr, res.stderr
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
    assert "running" not in res.stderr         # refused before the run starts


@pytest.mark.parametrize("raw,needle", [
    (b"targets:\n  d: {driver: docker, endpoint: 'unix:///x\xff'}\n", "not UTF-8 text: byte 0xff at line 2"),
    (b"\xfe\xff\x00t", "not UTF-8 text"),
    (b"[" * 100000 + b"]" * 100000, "nested too deeply"),
    (b"targets:\n  d: {driver: docker, endpoint: 'unix:///x', options: {colour: red}}\n",
     "unknown option 'colour' for driver 'docker'"),
    (b"targets:\n  d: {driver: docker, endpoint: 'unix:///x'}\npairs: [[d, nope]]\n", "pairs: unknown target 'nope'"),
])
def test_cli_bad_file_bytes_one_line_exit_2(tmp_path, raw, needle):
    f = tmp_path / "targets.yaml"
    f.write_bytes(raw)
    res = run_cli("run", "--targets", str(f), "--out", str(tmp_path / "out"))
    _cli_one_line(res, needle)
    assert str(f) in res.stderr           # the message names the file
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("args,needle", [
    (["--test-timeout", "-5"], "--test-timeout: must be a positive number of seconds"),
    (["--test-timeout", "0"], "--test-timeout: must be a positive number of seconds"),
    (["--test-timeout", "inf"], "--test-timeout: must be a positive number of seconds"),
    (["--op-timeout", "-1"], "--op-timeout: must be a positive number of seconds"),
    (["--op-timeout", "nan"], "--op-timeout: must be a positive number of seconds"),
    (["--op-timeout", "soon"], "--op-timeout: 'soon' is not a number of seconds"),
    (["--allocations", "a:mem=256m,disk=1m"], "below 32 MiB"),
])
def test_cli_bad_limits_one_line_exit_2(tmp_path, args, needle):
    f = tmp_path / "targets.yaml"
    f.write_text(yaml.safe_dump(GOOD))
    _cli_one_line(run_cli("run", "--targets", str(f), "--out", str(tmp_path / "out"), *args), needle)


def test_cli_bad_op_timeout_from_environment(tmp_path):
    f = tmp_path / "targets.yaml"
    f.write_text(yaml.safe_dump(GOOD))
    res = subprocess.run([CUTOVER, "run", "--targets", str(f), "--out", str(tmp_path / "out")], capture_output=True,
                         text=True, timeout=60, env=dict(__import__("os").environ, CUTOVER_OP_TIMEOUT="-3"))
    _cli_one_line(res, "--op-timeout: must be a positive number")


@settings(max_examples=12, deadline=None)
@given(st.binary(max_size=120))
def test_cli_any_bytes_exit_2_without_traceback(tmp_path_factory, raw):
    """The CLI over arbitrary bytes: a file that does not parse is exit 2, one line, no traceback."""
    d = tmp_path_factory.mktemp("cli")
    f = d / "targets.yaml"
    f.write_bytes(raw)
    res = run_cli("run", "--targets", str(f), "--out", str(d / "out"))
    assert res.returncode == 2 and "Traceback" not in res.stderr + res.stdout, res.stderr[-2000:]
    assert len(res.stderr.strip().splitlines()) == 1, res.stderr
