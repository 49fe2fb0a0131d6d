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
