"""`cutover diff`: two runs check by check, observed values side by side."""
import json

import pytest

from cutover.diffrun import classify, diff_runs, format_table
from cutover.errors import CutoverError
from cutover.results import load_run
from factories import ADVISORY, BLOCKING, SUITE_CHECKS, record, records, write
from test_gate import cli

UNCHANGED = next(c for c in SUITE_CHECKS[2:-1] if c not in (BLOCKING, ADVISORY))


@pytest.mark.parametrize("before, after, change", [
    ("pass", "pass", "same"), ("pass", "fail", "regression"), ("pass", "skip", "regression"),
    ("fail", "pass", "fix"), ("fail", "error", "changed"), ("fail", "fail", "same"),
    (None, "pass", "new"), ("pass", None, "vanished"),
])
def test_classify(before, after, change):
    assert classify(before, after) == change


@pytest.fixture
def before_after(tmp_path):
    old = records("docker", outcomes={ADVISORY: "fail"})
    new = records("docker", outcomes={BLOCKING: "fail"}, checks=SUITE_CHECKS[:-1])
    new.append(record("vis.meminfo", "podman"))
    for rec in new:
        if rec["check"] == SUITE_CHECKS[1]:
            rec["observed"] = "513 MiB"       # same outcome, different observation
    a = write(tmp_path / "a", old, hosts={"ssh://h1": {"kernel": "6.1.0", "os": "Debian 12"}})
    b = write(tmp_path / "b", new, hosts={"ssh://h1": {"kernel": "6.18.0", "os": "Debian 12"}})
    return a, b


def test_rows_side_by_side_with_changes(before_after):
    a, b = before_after
    d = diff_runs(load_run(a), load_run(b), a, b)
    rows = {(r["check"], r["target"], r["allocation"]): r for r in d["rows"]}
    meminfo = rows[(BLOCKING, "docker", "1cpu-512m")]
    assert meminfo["change"] == "regression" and meminfo["changed"]
    assert (meminfo["a"]["outcome"], meminfo["b"]["outcome"]) == ("pass", "fail")
    assert (meminfo["a"]["observed"], meminfo["b"]["observed"]) == ("512 MiB", "15.5 GiB")
    assert rows[(SUITE_CHECKS[1], "docker", "2cpu-1g")]["change"] == "observed"
    assert rows[("vis.meminfo", "podman", "1cpu-512m")]["change"] == "new"
    assert rows[(SUITE_CHECKS[-1], "docker", "1cpu-512m")]["change"] == "vanished"
    assert rows[(SUITE_CHECKS[-1], "docker", "1cpu-512m")]["b"] is None
    unchanged = [r for r in d["rows"] if not r["changed"]]
    assert unchanged and all(r["change"] == "same" for r in unchanged)
    assert {"host": "ssh://h1", "kind": "host", "name": "ssh://h1", "fact": "kernel",
            "a": "6.1.0", "b": "6.18.0"} in d["facts"]
    assert d["counts"]["regression"] == 2 and d["counts"]["new"] == 1
    # Rows follow the catalogue, so one check's allocations sit together.
    assert [r["check"] for r in d["rows"]][:2] == [SUITE_CHECKS[0]] * 2


def test_text_table_marks_changed_rows(before_after):
    a, b = before_after
    text = format_table(diff_runs(load_run(a), load_run(b), a, b))
    lines = text.splitlines()
    assert lines[0].startswith("A: a") and lines[1].startswith("B: b")
    assert any("kernel: 6.1.0 -> 6.18.0" in line for line in lines)
    regression = next(line for line in lines if line.startswith("*") and "regression" in line)
    assert BLOCKING in regression and "512 MiB" in regression and "15.5 GiB" in regression
    same = next(line for line in lines if f"{UNCHANGED} " in line)
    assert not same.startswith("*")
    assert lines[-1].startswith(f"{len(SUITE_CHECKS) * 2 + 1} rows, ")
    changed_only = format_table(diff_runs(load_run(a), load_run(b)), changed_only=True)
    assert f"{UNCHANGED} " not in changed_only


def test_table_flags_runs_that_cannot_be_trusted(tmp_path):
    a = write(tmp_path / "a", records("docker"), complete=False)
    text = format_table(diff_runs(load_run(a), load_run(a)))
    assert "INCOMPLETE" in text.splitlines()[0]


def test_long_and_structured_observations_fit_one_line(tmp_path):
    a = write(tmp_path / "a", [record(BLOCKING, observed={"MemTotal": 1 << 40, "lines": ["x"] * 50})])
    b = write(tmp_path / "b", [record(BLOCKING, observed="multi\nline")])
    text = format_table(diff_runs(load_run(a), load_run(b)))
    row = next(line for line in text.splitlines() if line.startswith("*"))
    assert "…" in row and "multi line" in row


def test_cli_diff_text_and_json(before_after, capsys):
    a, b = before_after
    assert cli("diff", a, b) == 0
    assert "regression" in capsys.readouterr().out
    assert cli("diff", a, b, "--json") == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["a"]["source"] == a and doc["counts"]["vanished"] == 2


def test_cli_diff_bad_input(tmp_path, capsys):
    a = write(tmp_path / "a", records("docker"))
    assert cli("diff", a, tmp_path / "nope") == 2
    assert "no such results file" in capsys.readouterr().out


def test_duplicate_record_in_one_run_is_bad_input(tmp_path):
    a = write(tmp_path / "a", [record(BLOCKING), record(BLOCKING, outcome="fail")], collected=[])
    with pytest.raises(CutoverError, match="appears twice"):
        diff_runs(load_run(a), load_run(a))
