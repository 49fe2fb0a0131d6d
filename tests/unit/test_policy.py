"""Policy files: the shipped default, the format, and one-line errors for anything malformed."""
import datetime

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover import catalogue
from cutover.errors import CutoverError
from cutover.policy import DEFAULT_POLICY, Policy, load_policy, parse_policy

WAIVER = "{check: vis.meminfo, reason: r, owner: o, expires: 2026-06-30}"


SYSCALL_VISIBILITY = {"vis.sysinfo-memory", "vis.nproc"}   # advisory by default: see default.yaml


def test_default_policy_blocks_all_but_minor_and_syscall_checks():
    p = load_policy()
    assert p.source == DEFAULT_POLICY
    for check in catalogue.CHECKS.values():
        expected = check.severity != "minor" and check.id not in SYSCALL_VISIBILITY
        assert p.is_blocking(check.id) == expected, check.id
    assert p.waivers == () and p.min_certified_ratio == 1.0 and p.canary_hosts == ()


def test_full_policy():
    p = parse_policy("""
default: advisory
blocking: ["vis.mem*", "promise:disk-quota"]
advisory: ["severity:minor"]
waivers:
  - check: "vis.nproc"
    target: "docker*"
    host: "ssh://web-*"
    reason: "lxcfs cannot virtualize sched_getaffinity()"
    owner: runtime-team
    expires: 2026-06-30
  - {check: "vis.swaps", reason: "no swap", owner: ops, expires: "2027-01-01"}
batch:
  min_certified_ratio: 0.99
  canary_hosts: ["ssh://canary-*"]
""")
    assert p.is_blocking("vis.meminfo") and not p.is_blocking("vis.cpuinfo")   # default advisory
    w = p.waivers[0]
    assert (w.check, w.target, w.host, w.expires) == ("vis.nproc", "docker*", "ssh://web-*", datetime.date(2026, 6, 30))
    assert (p.waivers[1].target, p.waivers[1].host) == ("*", "*")
    assert p.waivers_for("vis.nproc", "docker-lxcfs", "ssh://web-3") == [w]
    assert p.waivers_for("vis.nproc", "podman", "ssh://web-3") == []
    assert p.min_certified_ratio == 0.99 and p.is_canary("ssh://canary-7") and not p.is_canary("ssh://web-1")
    assert p.digest.startswith("sha256:")


def test_a_check_selected_by_both_lists_blocks():
    p = parse_policy("blocking: ['vis.*']\nadvisory: ['vis.swaps']\n")
    assert p.is_blocking("vis.swaps")


def test_selectors_by_severity_and_promise():
    p = parse_policy("default: advisory\nblocking: ['severity:critical']\n")
    assert {c for c in catalogue.CHECKS if p.is_blocking(c)} == \
        {c.id for c in catalogue.CHECKS.values() if c.severity == "critical"}
    p = parse_policy("default: advisory\nblocking: ['promise:visibility']\n")
    assert p.is_blocking("vis.meminfo") and not p.is_blocking("no.such")


def test_waiver_holds_through_its_expiry_day():
    w = parse_policy(f"waivers: [{WAIVER}]").waivers[0]
    assert not w.expired(datetime.date(2026, 6, 30)) and w.expired(datetime.date(2026, 7, 1))


def test_empty_mapping_is_the_strictest_policy():
    p = parse_policy("{}")
    assert p == Policy(source="policy.yaml", digest=p.digest)
    assert all(p.is_blocking(c) for c in catalogue.CHECKS)


def test_error_names_file_and_field():
    text = f"waivers:\n  - {WAIVER}\n  - {WAIVER}\n  - {WAIVER.replace('2026-06-30', '2026-13-01')}\n"
    with pytest.raises(CutoverError) as e:
        parse_policy(text)
    assert str(e.value) == "policy.yaml: waivers[2].expires: '2026-13-01' is not a date (YYYY-MM-DD)"


def w(**fields):
    base = {"check": "vis.meminfo", "reason": "r", "owner": "o", "expires": "2026-06-30"}
    base.update(fields)
    return "waivers: [{" + ", ".join(f"{k}: {v}" for k, v in base.items() if v is not None) + "}]"


MALFORMED = [
    ("", "policy is empty"),
    ("- blocking", "policy must be a mapping"),
    ("colour: red", "colour: unknown key"),
    ("default: maybe", "default: 'maybe' must be"),
    ("default: [blocking]", "default:"),
    ("blocking: vis.*", "blocking: must be a list"),
    ("blocking: ['nosuch.*']", "blocking[0]: 'nosuch.*' matches no check"),
    ("advisory: ['vis.*', 'vis.meminfoo']", "advisory[1]: 'vis.meminfoo' matches no check"),
    ("advisory: ['severity:trivial']", "advisory[0]: unknown severity 'trivial'"),
    ("advisory: ['promise:speed']", "advisory[0]: unknown promise 'speed'"),
    ("advisory: [3]", "advisory[0]: 3 must be a check ID pattern"),
    ("advisory: ['']", "advisory[0]:"),
    ("waivers: {check: vis.meminfo}", "waivers: must be a list"),
    ("waivers: [vis.meminfo]", "waivers[0]: must be a mapping"),
    (w(check=None), "waivers[0].check: is required"),
    (w(reason=None), "waivers[0].reason: is required"),
    (w(owner=None), "waivers[0].owner: is required"),
    (w(expires=None), "waivers[0].expires: is required"),
    (w(colour="red"), "waivers[0].colour: unknown key"),
    (w(check="'nosuch'"), "waivers[0].check: 'nosuch' matches no check in the catalogue"),
    (w(check="'severity:minor'"), "waivers[0].check: 'severity:minor' matches no check"),
    (w(reason="''"), "waivers[0].reason: '' must be a non-empty string"),
    (w(owner="42"), "waivers[0].owner: 42 must be a non-empty string"),
    (w(target="[a, b]"), "waivers[0].target:"),
    (w(host="null"), "waivers[0].host:"),
    (w(expires="2026-13-01"), "waivers[0].expires: '2026-13-01' is not a date (YYYY-MM-DD)"),
    (w(expires="2026-02-30"), "waivers[0].expires: '2026-02-30' is not a date"),
    (w(expires="tomorrow"), "waivers[0].expires: 'tomorrow' is not a date"),
    (w(expires="2026-6-1"), "waivers[0].expires: '2026-6-1' is not a date"),
    (w(expires="20260630"), "waivers[0].expires: 20260630 is not a date"),
    (w(expires="'2026-06-30 10:00:00'"), "waivers[0].expires:"),
    (w(expires="!!timestamp 2026-13-01"), "policy.yaml: "),
    ("min_allocations: 0", "min_allocations: 0 must be a whole number of at least 1"),
    ("min_allocations: 1.5", "min_allocations: 1.5 must be a whole number"),
    ("min_allocations: true", "min_allocations: True must be a whole number"),
    ("min_allocations: two", "min_allocations: 'two' must be a whole number"),
    ("batch: 0.99", "batch: must be a mapping"),
    ("batch: {ratio: 0.99}", "batch.ratio: unknown key"),
    ("batch: {min_certified_ratio: 1.5}", "batch.min_certified_ratio: 1.5 must be a number from 0 to 1"),
    ("batch: {min_certified_ratio: high}", "batch.min_certified_ratio: 'high'"),
    ("batch: {min_certified_ratio: true}", "batch.min_certified_ratio: True"),
    ("batch: {min_certified_ratio: .nan}", "batch.min_certified_ratio: nan"),
    ("batch: {canary_hosts: 'ssh://c1'}", "batch.canary_hosts: must be a list"),
    ("batch: {canary_hosts: ['']}", "batch.canary_hosts[0]:"),
    ("blocking: [", "not valid YAML (line"),
    ("default: blocking\ndefault: advisory", "duplicate key 'default'"),
    ("!!python/object/apply:os.system ['true']", "not valid YAML"),
    ("\tdefault: blocking", "not valid YAML"),
]


@pytest.mark.parametrize("text, message", MALFORMED, ids=[m for _, m in MALFORMED])
def test_malformed_policy_is_one_line_naming_the_field(text, message):
    with pytest.raises(CutoverError) as e:
        parse_policy(text)
    assert str(e.value).startswith("policy.yaml: ")
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_unreadable_policy_file(tmp_path):
    with pytest.raises(CutoverError, match="cannot read policy"):
        load_policy(str(tmp_path / "nope.yaml"))
    (tmp_path / "latin1.yaml").write_bytes(b"default: blocking # caf\xe9\n")
    with pytest.raises(CutoverError, match="not UTF-8"):
        load_policy(str(tmp_path / "latin1.yaml"))


# Random policies: anything goes in, only a Policy or a CutoverError comes out.
KEYS = st.sampled_from(["default", "blocking", "advisory", "waivers", "batch", "check", "target", "host",
                        "min_allocations",
                        "reason", "owner", "expires", "min_certified_ratio", "canary_hosts", "<<", "x"])
SCALARS = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=12), st.dates(),
    st.sampled_from(["vis.*", "vis.meminfo", "severity:minor", "promise:visibility", "blocking",
                     "advisory", "*", "2026-06-30", "2026-13-01"]))
VALUES = st.recursive(SCALARS, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(KEYS, inner, max_size=6),
                      max_leaves=25)
QUIET = settings(max_examples=300, deadline=None, database=None, suppress_health_check=[HealthCheck.too_slow])


def _survives(text):
    try:
        assert isinstance(parse_policy(text), Policy)
    except CutoverError as e:
        assert "\n" not in str(e)


@QUIET
@given(st.dictionaries(KEYS, VALUES, max_size=6))
def test_random_policy_structures_only_raise_cutover_error(doc):
    _survives(yaml.safe_dump(doc))


@QUIET
@given(st.text(alphabet=st.sampled_from(list("abdefk:[]{}-!&*|>'\"#%@`,? \n\t0123456789.")), max_size=80))
def test_random_policy_text_only_raises_cutover_error(text):
    _survives(text)


def _file_survives(path):
    try:
        assert isinstance(load_policy(str(path)), Policy)
    except CutoverError as e:
        assert "\n" not in str(e)


@QUIET
@given(st.binary(max_size=200))
def test_random_policy_bytes_only_raise_cutover_error(tmp_path_factory, raw):
    path = tmp_path_factory.mktemp("pol") / "policy.yaml"
    path.write_bytes(raw)
    _file_survives(path)


@pytest.mark.parametrize("depth", [50, 2000, 20000])
@pytest.mark.parametrize("open_, close", [("[", "]"), ("{a: ", "}"), ("- ", "")])
def test_deeply_nested_policy_is_one_line(tmp_path, depth, open_, close):
    path = tmp_path / "policy.yaml"
    path.write_text("waivers: " + open_ * depth + "1" + close * depth + "\n")
    with pytest.raises(CutoverError) as e:
        load_policy(str(path))
    assert "\n" not in str(e.value)


def test_min_allocations_defaults_to_two():
    assert parse_policy("{}").min_allocations == 2
    assert load_policy().min_allocations == 2
    assert parse_policy("min_allocations: 3").min_allocations == 3
