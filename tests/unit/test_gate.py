"""The gate's decisions over hand-made runs, and the `cutover gate` command's exit statuses."""
import argparse
import datetime
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover import catalogue, summary
from cutover.diffrun import diff_runs, format_table
from cutover.errors import CutoverError
from cutover.gate import FAIL, PASS, Unreadable, certificates, evaluate
from cutover.gate_cli import add_parsers
from cutover.results import OUTCOMES, load_run, write_run
from factories import (ADVISORY, BLOCKING, DEFAULT_POLICY, SUITE_CHECKS, edit, load, policy, record,
                       records, write)

TODAY = datetime.date(2026, 1, 1)
WAIVE_BLOCKING = f"""
waivers:
  - check: {BLOCKING}
    target: "docker"
    reason: "known lxcfs gap, fix scheduled"
    owner: runtime-team
    expires: {{expires}}
"""


def gate(*folders, pol=None, baseline=None, today=TODAY):
    return evaluate(load(*folders), pol or policy(), baseline=baseline, today=today)


def waiver_policy(expires="2026-06-30"):
    return policy(DEFAULT_POLICY + WAIVE_BLOCKING.format(expires=expires))


def kinds(result, blocking=True):
    return {r.kind for r in result.reasons if r.blocking == blocking}


def verdicts(result):
    return {t: v["verdict"] for t, v in result.targets.items()}


# -- outcomes and policy ------------------------------------------------------------------

def test_everything_passing_certifies_host_and_batch(tmp_path):
    run = write(tmp_path / "run", records("docker") + records("docker-lxcfs"))
    result = gate(run)
    assert result.verdict == PASS
    assert verdicts(result) == {"docker": PASS, "docker-lxcfs": PASS}
    assert result.hosts["ssh://h1"]["certified"]
    assert result.reasons == []


def test_blocking_failure_fails_its_target_its_host_and_the_batch(tmp_path):
    run = write(tmp_path / "run", records("docker", outcomes={BLOCKING: "fail"}) + records("docker-lxcfs"))
    result = gate(run)
    assert result.verdict == FAIL
    assert verdicts(result) == {"docker": FAIL, "docker-lxcfs": PASS}
    assert not result.hosts["ssh://h1"]["certified"]
    reason = next(r for r in result.reasons if r.kind == "check")
    assert (reason.check, reason.target, reason.host, reason.outcome) == (BLOCKING, "docker", "ssh://h1", "fail")
    assert (reason.expected, reason.observed) == ("512 MiB", "15.5 GiB")
    assert reason.allocation in ("1cpu-512m", "2cpu-1g") and reason.blocking


@pytest.mark.parametrize("outcome", ["fail", "error", "unsupported", "skip"])
def test_any_non_pass_of_an_owed_blocking_check_fails(tmp_path, outcome):
    run = write(tmp_path / "run", records("docker", outcomes={BLOCKING: outcome}))
    assert gate(run).verdict == FAIL


def test_advisory_failure_is_reported_but_does_not_block(tmp_path):
    run = write(tmp_path / "run", records("docker", outcomes={ADVISORY: "fail"}))
    result = gate(run)
    assert result.verdict == PASS
    assert kinds(result, blocking=False) == {"advisory"}


def test_blocking_list_wins_over_advisory(tmp_path):
    run = write(tmp_path / "run", records("docker", outcomes={ADVISORY: "fail"}))
    assert gate(run, pol=policy(DEFAULT_POLICY + f"blocking: [{ADVISORY}]\n")).verdict == FAIL


# -- waivers ------------------------------------------------------------------------------

def test_waiver_turns_a_blocking_failure_into_a_pass(tmp_path):
    run = write(tmp_path / "run", records("docker", outcomes={BLOCKING: "fail"}))
    result = gate(run, pol=waiver_policy())
    assert result.verdict == PASS
    waived = [r for r in result.reasons if r.kind == "waived"]
    assert len(waived) == 2 and not any(r.blocking for r in waived)
    assert waived[0].waiver["owner"] == "runtime-team"
    assert result.waivers[0]["status"] == "used"
    assert result.status[f"{BLOCKING}|docker|1cpu-512m"] == "waived"


def test_waiver_for_another_target_does_not_apply(tmp_path):
    run = write(tmp_path / "run", records("docker-lxcfs", outcomes={BLOCKING: "fail"}))
    result = gate(run, pol=waiver_policy())
    assert result.verdict == FAIL
    assert result.waivers[0]["status"] == "unused"


def test_waiver_still_holds_on_its_expiry_day(tmp_path):
    run = write(tmp_path / "run", records("docker", outcomes={BLOCKING: "fail"}))
    assert gate(run, pol=waiver_policy("2026-01-01")).verdict == PASS


def test_expired_waiver_fails_with_a_reason_naming_it(tmp_path):
    run = write(tmp_path / "run", records("docker", outcomes={BLOCKING: "fail"}))
    result = gate(run, pol=waiver_policy("2025-12-31"))
    assert result.verdict == FAIL
    expired = [r for r in result.reasons if r.kind == "waiver-expired"]
    assert len(expired) == 1 and expired[0].blocking and expired[0].target == "docker"
    assert "waivers[0]" in expired[0].message and "runtime-team" in expired[0].message
    assert "2025-12-31" in expired[0].message
    assert all("expired" in r.message for r in result.reasons if r.kind == "check")
    assert result.waivers[0]["status"] == "expired"


def test_expired_waiver_fails_even_when_the_check_passes_now(tmp_path):
    run = write(tmp_path / "run", records("docker"))
    result = gate(run, pol=waiver_policy("2025-12-31"))
    assert result.verdict == FAIL
    assert kinds(result) == {"waiver-expired", "batch-ratio"}


def test_expired_waiver_that_applies_to_nothing_here_is_only_noted(tmp_path):
    run = write(tmp_path / "run", records("docker-lxcfs"))
    result = gate(run, pol=waiver_policy("2025-12-31"))
    assert result.verdict == PASS
    assert kinds(result, blocking=False) == {"waiver-expired"}


# -- fail closed: unreadable, altered, incomplete ------------------------------------------

def test_truncated_results_file_fails_closed_with_reason(tmp_path):
    run = write(tmp_path / "run", records("docker"))
    good = write(tmp_path / "good", records("docker-lxcfs", host="ssh://h2"))
    path = os.path.join(run, "results.json")
    with open(path, "rb") as f:
        data = f.read()
    with open(path, "wb") as f:
        f.write(data[: len(data) // 2])
    runs = load(run, good)
    assert isinstance(runs[0], Unreadable)
    result = evaluate(runs, policy(), today=TODAY)
    assert result.verdict == FAIL
    reason = next(r for r in result.reasons if r.kind == "unreadable")
    assert "results unreadable" in reason.message and reason.scope == "global"
    # The unreadable shard might have held anything: nothing else is certified either.
    assert verdicts(result) == {"docker-lxcfs": FAIL}
    assert result.inputs[0]["readable"] is False


def test_run_folder_without_results_fails_closed(tmp_path):
    (tmp_path / "crashed").mkdir()
    result = gate(tmp_path / "crashed")
    assert result.verdict == FAIL and "unreadable" in kinds(result)


def test_run_path_that_does_not_exist_is_bad_input(tmp_path):
    with pytest.raises(CutoverError, match="no such run"):
        load(tmp_path / "typo")


@pytest.mark.parametrize("alter", [
    lambda d: d["results"][0].update(observed="1 GiB"),
    lambda d: d["results"][0].update(outcome="pass"),
    lambda d: d["results"].pop(),
    lambda d: d["run"].pop("digest"),
], ids=["observed", "outcome", "dropped-record", "no-digest"])
def test_altered_results_fail_closed(tmp_path, alter):
    run = write(tmp_path / "run", records("docker", outcomes={SUITE_CHECKS[0]: "fail"}))
    edit(run, alter)
    result = gate(run, pol=policy("default: advisory\n"))
    assert result.verdict == FAIL
    assert "tampered" in kinds(result)
    assert result.inputs[0]["digest_ok"] is False


def test_incomplete_run_fails_closed(tmp_path):
    run = write(tmp_path / "run", records("docker") + records("docker-lxcfs"), complete=False)
    result = gate(run)
    assert result.verdict == FAIL
    assert {r.target for r in result.reasons if r.kind == "incomplete"} == {"docker", "docker-lxcfs"}


def test_collected_key_without_result_fails(tmp_path):
    recs = records("docker")
    keys = [f"{r['check']}|{r['target']}|{r['allocation']}" for r in recs]
    run = write(tmp_path / "run", recs[1:], collected=keys)
    result = gate(run)
    assert result.verdict == FAIL
    missing = next(r for r in result.reasons if r.kind == "missing")
    assert (missing.check, missing.target, missing.allocation) == (recs[0]["check"], "docker", recs[0]["allocation"])


def test_owed_check_that_was_never_collected_fails(tmp_path):
    # The suite ran, but one of its checks was deselected: its results were never owed by
    # the run's own record, yet the catalogue says the suite has it.
    run = write(tmp_path / "run", records("docker", checks=SUITE_CHECKS[1:]))
    result = gate(run)
    assert result.verdict == FAIL
    assert [r.check for r in result.reasons if r.kind == "not-collected"] == [SUITE_CHECKS[0]]


def test_result_that_was_never_collected_fails(tmp_path):
    recs = records("docker")
    run = write(tmp_path / "run", recs, collected=[f"{r['check']}|{r['target']}|{r['allocation']}" for r in recs[1:]])
    assert "unexpected" in kinds(gate(run))


def test_unknown_check_id_fails(tmp_path):
    run = write(tmp_path / "run", records("docker") + [record("vis.made-up", "docker")])
    result = gate(run)
    assert result.verdict == FAIL
    assert [r.check for r in result.reasons if r.kind == "unknown-check"] == ["vis.made-up"]


def test_target_without_any_result_fails(tmp_path):
    targets = {"docker": {"host": "ssh://h1"}, "lxc": {"host": "ssh://h1"}}
    run = write(tmp_path / "run", records("docker"), targets=targets)
    result = gate(run)
    assert verdicts(result) == {"docker": PASS, "lxc": FAIL}
    assert "no-results" in kinds(result)


def test_run_without_collected_list_fails(tmp_path):
    run = write(tmp_path / "run", records("docker"), collected="everything")
    assert "malformed" in kinds(gate(run))


def test_empty_run_fails(tmp_path):
    run = write(tmp_path / "run", [], targets={}, hosts={})
    result = gate(run)
    assert result.verdict == FAIL and "no-results" in kinds(result)


# -- baseline -----------------------------------------------------------------------------

def test_regression_blocks_even_for_an_advisory_check(tmp_path):
    base = write(tmp_path / "base", records("docker"))
    run = write(tmp_path / "run", records("docker", outcomes={ADVISORY: "fail"}))
    assert gate(run).verdict == PASS          # without a baseline it only advises
    result = gate(run, baseline=load(base)[0])
    assert result.verdict == FAIL
    regressions = [r for r in result.reasons if r.kind == "regression"]
    assert regressions and all(r.blocking and r.check == ADVISORY for r in regressions)
    assert {e["check"] for e in result.baseline["regressions"]} == {ADVISORY}


def test_waived_regression_does_not_block(tmp_path):
    base = write(tmp_path / "base", records("docker"))
    run = write(tmp_path / "run", records("docker", outcomes={ADVISORY: "fail"}))
    pol = policy(DEFAULT_POLICY + f"waivers: [{{check: {ADVISORY}, reason: r, owner: o, expires: 2026-02-01}}]\n")
    result = gate(run, pol=pol, baseline=load(base)[0])
    assert result.verdict == PASS
    assert all(e["waived"] for e in result.baseline["regressions"])


def test_baseline_lists_fixes_new_and_vanished(tmp_path):
    old_checks, new_checks = SUITE_CHECKS[:-1], SUITE_CHECKS[1:]
    base = write(tmp_path / "base", records("docker", outcomes={BLOCKING: "fail"}, checks=old_checks))
    run = write(tmp_path / "run", records("docker", checks=new_checks))
    result = gate(run, baseline=load(base)[0])
    b = result.baseline
    fixed = {e["check"] for e in b["fixes"]}
    assert (BLOCKING in fixed) == (BLOCKING in new_checks)
    assert {e["check"] for e in b["new"]} == {SUITE_CHECKS[-1]}
    assert {e["check"] for e in b["vanished"]} == {SUITE_CHECKS[0]}
    assert b["regressions"] == []
    # The vanished check was owed by the suite, so completeness still fails the run.
    assert "not-collected" in kinds(result)


def test_altered_baseline_is_bad_input(tmp_path):
    base = write(tmp_path / "base", records("docker"))
    edit(base, lambda d: d["results"][0].update(outcome="fail"))
    run = write(tmp_path / "run", records("docker"))
    with pytest.raises(CutoverError, match="baseline digest"):
        gate(run, baseline=load(base)[0])


# -- shards and batches -------------------------------------------------------------------

def test_shards_merge_into_one_decision(tmp_path):
    a = write(tmp_path / "a", records("docker"))
    b = write(tmp_path / "b", records("docker-lxcfs"))
    result = gate(a, b)
    assert result.verdict == PASS
    assert verdicts(result) == {"docker": PASS, "docker-lxcfs": PASS}
    assert result.hosts["ssh://h1"]["targets"] == ["docker", "docker-lxcfs"]
    assert len(result.inputs) == 2


def test_shards_split_by_check_are_complete_together(tmp_path):
    half = len(SUITE_CHECKS) // 2
    a = write(tmp_path / "a", records("docker", checks=SUITE_CHECKS[:half]))
    b = write(tmp_path / "b", records("docker", checks=SUITE_CHECKS[half:]))
    assert gate(a, b).verdict == PASS
    assert gate(a).verdict == FAIL        # alone, a shard owes the rest of its suite


def test_duplicate_key_across_shards_is_bad_input(tmp_path):
    a = write(tmp_path / "a", records("docker"))
    b = write(tmp_path / "b", records("docker", checks=SUITE_CHECKS[:1]))
    with pytest.raises(CutoverError, match="shards must not overlap") as e:
        gate(a, b)
    assert str(tmp_path / "a") in str(e.value) and str(tmp_path / "b") in str(e.value)


def test_same_run_given_twice_is_bad_input(tmp_path):
    a = write(tmp_path / "a", records("docker"))
    with pytest.raises(CutoverError):
        gate(a, a)


def test_one_target_on_two_hosts_is_bad_input(tmp_path):
    a = write(tmp_path / "a", records("docker", checks=SUITE_CHECKS[:1]))
    b = write(tmp_path / "b", records("docker", host="ssh://h2", checks=SUITE_CHECKS[1:]))
    with pytest.raises(CutoverError, match="one target, one host"):
        gate(a, b)


def fleet(tmp_path, failing=("ssh://h4",), hosts=("ssh://h1", "ssh://h2", "ssh://h3", "ssh://h4")):
    recs = []
    for i, host in enumerate(hosts):
        outcomes = {BLOCKING: "fail"} if host in failing else {}
        recs += records(f"docker-{i}", host=host, outcomes=outcomes)
    return write(tmp_path / "fleet", recs)


@pytest.mark.parametrize("ratio, verdict", [(0.75, PASS), (0.8, FAIL), (1, FAIL), (0, PASS)])
def test_batch_ratio(tmp_path, ratio, verdict):
    result = gate(fleet(tmp_path), pol=policy(DEFAULT_POLICY + f"batch: {{min_certified_ratio: {ratio}}}\n"))
    assert result.verdict == verdict
    assert (result.batch["certified"], result.batch["hosts"]) == (3, 4)
    assert not result.hosts["ssh://h4"]["certified"]       # the batch may pass; the host does not
    assert ("batch-ratio" in kinds(result)) == (verdict == FAIL)


def test_blocking_failure_on_a_canary_fails_the_batch(tmp_path):
    pol = policy(DEFAULT_POLICY + "batch: {min_certified_ratio: 0.5, canary_hosts: ['ssh://h4']}\n")
    result = gate(fleet(tmp_path), pol=pol)
    assert result.verdict == FAIL
    assert [r.host for r in result.reasons if r.kind == "canary"] == ["ssh://h4"]
    assert result.batch["canary_hosts"] == ["ssh://h4"]


def test_certificate_holds_what_a_cutover_plan_needs(tmp_path):
    run = write(tmp_path / "run", records("docker") + records("docker-lxcfs", host="ssh://h2",
                                                                   outcomes={BLOCKING: "fail"}))
    result = gate(run)
    certs = certificates(result)
    good, bad = certs["ssh://h1"], certs["ssh://h2"]
    assert (good["verdict"], good["certified"], bad["verdict"]) == (PASS, True, FAIL)
    assert good["facts"]["kernel"] == "6.18.0"
    assert good["targets"]["docker"]["description"]["versions"]["runc"] == "1.1.5"
    assert good["results"][0]["digest"].startswith("sha256:") and good["results"][0]["digest_ok"]
    assert good["time"] == result.evaluated_at and good["policy"]["digest"].startswith("sha256:")
    assert good["reasons"] == [] and bad["reasons"]


# -- the command --------------------------------------------------------------------------

def cli(*argv):
    """What cutover.cli does: argparse, args.func(args), CutoverError -> one line, exit 2."""
    parser = argparse.ArgumentParser(prog="cutover")
    add_parsers(parser.add_subparsers())
    args = parser.parse_args([str(a) for a in argv])
    try:
        return args.func(args)
    except CutoverError as e:
        print(f"cutover: {e}")
        return 2


def test_cli_pass_writes_gate_json_certificates_and_summary(tmp_path, capsys):
    run = write(tmp_path / "run", records("docker"))
    assert cli("gate", run) == 0
    out = capsys.readouterr().out
    assert out.startswith("cutover gate: PASS")
    doc = json.loads((tmp_path / "run" / "gate.json").read_text())
    assert doc["verdict"] == PASS and doc["policy"]["source"].endswith("default.yaml")
    assert json.loads((tmp_path / "run" / "certificates" / "ssh-h1.json").read_text())["certified"]
    assert (tmp_path / "run" / "summary.html").read_text().startswith("<!DOCTYPE html>")


def test_cli_waiver_lifecycle(tmp_path, capsys):
    # The end-to-end story on hand-made results: FAIL, waived PASS, expired FAIL.
    run = write(tmp_path / "run", records("docker", outcomes={BLOCKING: "fail"}))
    pol = tmp_path / "waived.yaml"
    pol.write_text(DEFAULT_POLICY + WAIVE_BLOCKING.format(expires="2026-06-30"))
    out = tmp_path / "out"
    assert cli("gate", run, "--out", out, "--today", "2026-01-01") == 1
    assert cli("gate", run, "--out", out, "--today", "2026-01-01", "--policy", pol) == 0
    assert cli("gate", run, "--out", out, "--today", "2026-07-01", "--policy", pol) == 1
    assert "waiver-expired" in capsys.readouterr().out
    reasons = json.loads((out / "gate.json").read_text())["reasons"]
    assert any(r["kind"] == "waiver-expired" and r["waiver"]["owner"] == "runtime-team" for r in reasons)


def test_cli_truncated_results_exit_1_with_reason(tmp_path, capsys):
    run = write(tmp_path / "run", records("docker"))
    (tmp_path / "run" / "results.json").write_text('{"run": {"id": "x"}, "results": [{"check"')
    assert cli("gate", run) == 1
    assert "results unreadable" in capsys.readouterr().out
    assert json.loads((tmp_path / "run" / "gate.json").read_text())["verdict"] == FAIL


@pytest.mark.parametrize("extra, message", [
    (("--policy", "missing.yaml"), "cannot read policy"),
    (("--today", "2026-02-30"), "--today: '2026-02-30' is not a date"),
    (("--baseline", "nowhere"), "no such results file"),
])
def test_cli_bad_input_exit_2_on_one_line_and_writes_nothing(tmp_path, capsys, extra, message):
    run = write(tmp_path / "run", records("docker"))
    assert cli("gate", run, *extra) == 2
    out = capsys.readouterr().out
    assert message in out and out.count("\n") == 1
    assert not (tmp_path / "run" / "gate.json").exists()


def test_cli_removes_stale_certificates(tmp_path):
    run = write(tmp_path / "run", records("docker"))
    stale = tmp_path / "run" / "certificates" / "ssh-gone.json"
    stale.parent.mkdir(parents=True)
    stale.write_text(json.dumps({"kind": "cutover-certificate", "verdict": PASS}))
    mine = stale.parent / "notes.json"
    mine.write_text("{}")
    assert cli("gate", run) == 0
    assert not stale.exists() and mine.exists()


# -- whatever a results file holds, the gate answers or says why (never a traceback) --------

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner, max_size=3),
                    max_leaves=8)
NAMES = st.sampled_from(["docker", "lxc", "a|b", ""]) | JSON
RECORDS = st.lists(st.fixed_dictionaries(
    {"check": st.sampled_from(SUITE_CHECKS[:3] + ["nope"]) | JSON, "target": NAMES,
     "outcome": st.sampled_from(OUTCOMES)},
    optional={"allocation": st.sampled_from(["1c", None]) | JSON, "host": NAMES,
              "expected": JSON, "observed": JSON, "message": JSON}), max_size=6)
RUNS = st.fixed_dictionaries({}, optional={
    "complete": st.booleans() | JSON, "targets": st.dictionaries(st.text(max_size=6), JSON | st.fixed_dictionaries(
        {"host": NAMES}), max_size=3) | JSON,
    "hosts": st.dictionaries(st.text(max_size=6), JSON, max_size=3) | JSON,
    "collected": st.lists(st.sampled_from([f"{SUITE_CHECKS[0]}|docker|1c", "x|lxc|-", "|"]) | JSON, max_size=4) | JSON,
})


@settings(max_examples=200, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(RUNS, RECORDS)
def test_any_loadable_results_file_gives_a_verdict_or_a_diff_or_a_cutover_error(tmp_path, meta, recs):
    path = tmp_path / "results.json"
    write_run(str(path), meta, recs)
    try:
        format_table(diff_runs(load_run(str(path)), load_run(str(path))))
    except CutoverError:
        pass
    try:
        result = evaluate([load_run(str(path))], policy(), baseline=load_run(str(path)), today=TODAY)
    except CutoverError:
        return
    assert result.verdict in (PASS, FAIL)
    certificates(result)
    summary.render(result)
    json.dumps(result.as_dict(), default=str)


def test_pair_checks_are_owed_by_pairs_only(tmp_path):
    """Coexistence records sit on a pair target 'A+B': single targets do not owe them, and back."""
    coex = [c.id for c in catalogue.by_suite()["isolation/coexistence"]]
    pair = records("lxc-t4+docker", checks=coex, allocations=(None,))
    run = write(tmp_path / "run", records("docker") + pair)
    result = gate(run)
    assert [r for r in result.reasons if r.kind == "not-collected"] == []
    assert result.verdict == PASS


# -- the digest covers the run's metadata, not only its records ----------------------------

@pytest.mark.parametrize("alter", [
    lambda d: d["run"].update(complete=True),
    lambda d: d["run"]["collected"].pop(),
    lambda d: d["run"].update(leaks=[]),
    lambda d: d["run"]["hosts"]["ssh://h1"].update(kernel="6.1.0"),
    lambda d: d["run"]["targets"]["docker"].update(runtime="crun"),
    lambda d: d["run"].update(incomplete_hosts={}),
], ids=["complete", "collected", "leaks", "hosts", "targets", "incomplete_hosts"])
def test_edited_run_metadata_fails_closed(tmp_path, alter):
    recs = records("docker")
    run = write(tmp_path / "run", recs, complete=False, leaks=[{"kind": "container", "id": "abc", "test": "t"}],
                incomplete_hosts={"ssh://h1": "leak check impossible"})
    edit(run, alter)
    result = gate(run)
    assert result.verdict == FAIL
    assert "tampered" in kinds(result) and result.inputs[0]["digest_ok"] is False


# -- one host the run could not finish checking costs only its own targets ----------------

def two_hosts(tmp_path, dead=None):
    recs = records("docker", host="ssh://h1") + records("lxc", host="ssh://h2")
    return write(tmp_path / "run", recs, incomplete_hosts=dead or {})


def test_incomplete_host_fails_only_its_targets(tmp_path):
    result = gate(two_hosts(tmp_path, {"ssh://h2": "leak check impossible on target lxc: unreachable"}))
    assert verdicts(result) == {"docker": PASS, "lxc": FAIL}
    assert result.hosts["ssh://h1"]["certified"] and not result.hosts["ssh://h2"]["certified"]
    [r] = [r for r in result.reasons if r.kind == "host-incomplete"]
    assert (r.target, r.host, r.blocking) == ("lxc", "ssh://h2", True) and "unreachable" in r.message
    assert result.verdict == FAIL           # the default policy wants every host certified
    assert certificates(result)["ssh://h1"]["verdict"] == PASS


def test_batch_ratio_can_absorb_one_dead_host(tmp_path):
    pol = policy(DEFAULT_POLICY + "batch: {min_certified_ratio: 0.5}\n")
    result = gate(two_hosts(tmp_path, {"ssh://h2": "unreachable"}), pol=pol)
    assert result.verdict == PASS and result.batch["certified"] == 1


def test_incomplete_hosts_not_a_mapping_is_malformed(tmp_path):
    result = gate(two_hosts(tmp_path, ["ssh://h2"]))
    assert verdicts(result) == {"docker": FAIL, "lxc": FAIL} and "malformed" in kinds(result)


def test_incomplete_host_without_targets_is_only_noted(tmp_path):
    result = gate(two_hosts(tmp_path, {"ssh://h9": "unreachable"}))
    assert result.verdict == PASS and "note" in kinds(result, blocking=False)


# -- shards of a fleet: a missing or doubled shard fails the batch closed ------------------

FLEET = ["ssh://h1", "ssh://h2", "ssh://h3"]


def shard(tmp_path, k, n=2, fleet_hosts=FLEET, name=None):
    mine = fleet_hosts[k - 1::n]
    recs = [r for i, h in enumerate(mine) for r in records(f"t{fleet_hosts.index(h)}", host=h)]
    return write(tmp_path / (name or f"shard{k}"), recs,
                 shard={"index": k, "count": n, "spec": f"{k}/{n}", "fleet_hosts": fleet_hosts, "hosts": mine})


def test_all_shards_merge_into_one_passing_batch(tmp_path):
    result = gate(shard(tmp_path, 1), shard(tmp_path, 2))
    assert result.verdict == PASS and result.batch["hosts"] == 3
    assert not [r for r in result.reasons if r.kind.startswith("shard")]


def test_missing_shard_fails_the_batch_naming_its_hosts(tmp_path):
    result = gate(shard(tmp_path, 1))
    assert result.verdict == FAIL
    [r] = [r for r in result.reasons if r.kind == "shard-missing"]
    assert r.scope == "batch" and "2/2" in r.message and "ssh://h2" in r.message
    # The hosts the present shard certified keep their certificates.
    assert all(h["certified"] for h in result.hosts.values())


def test_missing_shard_fails_even_when_the_ratio_would_pass(tmp_path):
    pol = policy(DEFAULT_POLICY + "batch: {min_certified_ratio: 0}\n")
    assert gate(shard(tmp_path, 1), pol=pol).verdict == FAIL


def test_two_runs_claiming_one_shard_fail_closed(tmp_path):
    result = gate(shard(tmp_path, 1), shard(tmp_path, 1, name="again"), shard(tmp_path, 2))
    assert result.verdict == FAIL
    [r] = [r for r in result.reasons if r.kind == "shard-repeated"]
    assert "again" in r.message and "1/2" in r.message
    assert [i.get("merged") for i in result.inputs] == [True, False, True]


def test_shards_of_different_fleets_fail(tmp_path):
    other = FLEET + ["ssh://h4"]
    result = gate(shard(tmp_path, 1), shard(tmp_path, 2, fleet_hosts=other))
    assert result.verdict == FAIL and "shard-mismatch" in kinds(result)


def test_malformed_shard_record_fails(tmp_path):
    run = write(tmp_path / "run", records("docker"), shard={"index": 3, "count": 2})
    assert "malformed" in kinds(gate(run))


# -- vanished against a baseline ------------------------------------------------------------

def test_target_dropped_from_the_candidate_blocks(tmp_path):
    base = write(tmp_path / "base", records("docker") + records("lxc", host="ssh://h2"))
    run = write(tmp_path / "run", records("docker"))
    assert gate(run).verdict == PASS                # alone, the candidate looks complete
    result = gate(run, baseline=load(base)[0])
    assert result.verdict == FAIL
    assert verdicts(result) == {"docker": PASS, "lxc": FAIL}
    assert result.targets["lxc"]["host"] == "ssh://h2" and not result.hosts["ssh://h2"]["certified"]
    vanished = [r for r in result.reasons if r.kind == "vanished"]
    assert vanished and all(r.blocking and r.target == "lxc" for r in vanished)


def test_allocation_dropped_from_the_candidate_blocks(tmp_path):
    base = write(tmp_path / "base", records("docker", allocations=("a1", "a2", "a3")))
    run = write(tmp_path / "run", records("docker", allocations=("a1", "a2")))
    result = gate(run, baseline=load(base)[0])
    assert result.verdict == FAIL
    assert {r.allocation for r in result.reasons if r.kind == "vanished"} == {"a3"}


def test_waived_vanished_check_does_not_block(tmp_path):
    base = write(tmp_path / "base", records("docker") + records("lxc", host="ssh://h2"))
    run = write(tmp_path / "run", records("docker"))
    pol = policy(DEFAULT_POLICY + "waivers: [{check: 'vis.*', target: lxc, reason: 'host retired', "
                                  "owner: ops, expires: 2026-02-01}]\n")
    result = gate(run, pol=pol, baseline=load(base)[0])
    assert "vanished" not in kinds(result) and "waived" in kinds(result, blocking=False)


def test_retired_check_is_only_listed(tmp_path):
    base = write(tmp_path / "base", records("docker") + [record("vis.retired-long-ago", "docker")])
    run = write(tmp_path / "run", records("docker"))
    result = gate(run, baseline=load(base)[0])
    assert result.verdict == PASS
    [entry] = result.baseline["vanished"]
    assert entry["check"] == "vis.retired-long-ago" and entry["retired"]


# -- allocations: one allocation cannot certify a visibility check --------------------------

def test_one_allocation_fails_closed_naming_check_and_target(tmp_path):
    run = write(tmp_path / "run", records("docker", allocations=("only",)))
    result = gate(run)
    assert result.verdict == FAIL
    reasons = [r for r in result.reasons if r.kind == "allocations"]
    assert {r.check for r in reasons} == set(SUITE_CHECKS) and {r.target for r in reasons} == {"docker"}
    assert "only" in reasons[0].message and "at least 2" in reasons[0].message


def test_min_allocations_is_the_policys(tmp_path):
    run = write(tmp_path / "run", records("docker", allocations=("only",)))
    assert gate(run, pol=policy(DEFAULT_POLICY + "min_allocations: 1\n")).verdict == PASS
    two = write(tmp_path / "two", records("docker"))
    assert gate(two, pol=policy(DEFAULT_POLICY + "min_allocations: 3\n")).verdict == FAIL


def test_checks_without_allocations_are_not_counted(tmp_path):
    run = write(tmp_path / "run", records("docker", allocations=(None,)))
    assert "allocations" not in kinds(gate(run))


# -- the judging date is on record -----------------------------------------------------------

def test_today_override_is_recorded_in_gate_json_and_certificates(tmp_path, capsys):
    run = write(tmp_path / "run", records("docker"))
    assert cli("gate", run, "--today", "2026-01-01") == 0
    assert "waivers judged on 2026-01-01 (--today" in capsys.readouterr().out
    doc = json.loads((tmp_path / "run" / "gate.json").read_text())
    assert doc["judged_on"]["date"] == "2026-01-01" and doc["judged_on"]["overridden"] is True
    assert doc["judged_on"]["system_date"] == datetime.date.today().isoformat()
    cert = json.loads((tmp_path / "run" / "certificates" / "ssh-h1.json").read_text())
    assert cert["judged_on"] == doc["judged_on"]
    assert cli("gate", run) == 0
    assert json.loads((tmp_path / "run" / "gate.json").read_text())["judged_on"]["overridden"] is False


def test_checks_run_under_one_allocation_by_design_are_left_out(tmp_path):
    recs = records("docker", checks=SUITE_CHECKS[1:]) + records("docker", checks=SUITE_CHECKS[:1], allocations=("a1",))
    assert "allocations" in kinds(gate(write(tmp_path / "undeclared", recs)))
    run = write(tmp_path / "run", recs, single_allocation=[SUITE_CHECKS[0]])
    assert gate(run).verdict == PASS
    bad = write(tmp_path / "bad", recs, single_allocation="all")
    assert "malformed" in kinds(gate(bad))
