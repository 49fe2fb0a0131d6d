"""results.json integrity: the digest covers the whole document, and no input crashes a reader."""
import json
import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cutover import gate_cli
from cutover.errors import CutoverError
from cutover.results import MAX_DEPTH, digest, digest_ok, load_run, write_run
from factories import records, write


def test_digest_round_trips_through_the_file(tmp_path):
    run = write(tmp_path / "run", records("docker"), incomplete_hosts={"ssh://h2": "unreachable"})
    assert digest_ok(load_run(run))


def test_digest_leaves_out_only_itself():
    run, recs = {"id": "r", "complete": True}, [{"check": "c", "target": "t", "outcome": "pass"}]
    assert digest(run, recs) == digest(dict(run, digest="sha256:whatever"), recs)
    assert digest(run, recs) != digest(dict(run, complete=False), recs)
    assert digest(run, recs) != digest(run, [dict(recs[0], outcome="fail")])


@pytest.mark.parametrize("field, value", [
    ("complete", False), ("collected", []), ("leaks", [{"kind": "container", "id": "x"}]),
    ("hosts", {"ssh://h1": {"kernel": "4.19"}}), ("targets", {}), ("incomplete_hosts", {"ssh://h1": "x"}),
    ("finished", "2030-01-01T00:00:00+00:00"), ("schema", 1),
])
def test_every_run_field_is_covered(tmp_path, field, value):
    run = write(tmp_path / "run", records("docker"))
    path = os.path.join(run, "results.json")
    data = json.load(open(path))
    data["run"][field] = value
    json.dump(data, open(path, "w"))
    assert not digest_ok(load_run(run))


@pytest.mark.parametrize("raw, message", [
    (b'{"run": {"id": "\xff\xfe"}, "results": []}', "not UTF-8"),
    (b"\x80" * 10, "not UTF-8"),
    (b"[" * 100000 + b"]" * 100000, "nested"),
    (b'{"run": {"x": ' + b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1) + b'}, "results": []}', "nested"),
    (b"", "not valid JSON"),
])
def test_unreadable_bytes_are_one_line_errors(tmp_path, raw, message):
    path = tmp_path / "results.json"
    path.write_bytes(raw)
    with pytest.raises(CutoverError, match=message) as e:
        load_run(str(path))
    assert "\n" not in str(e.value)


def test_brackets_inside_strings_are_not_nesting(tmp_path):
    path = tmp_path / "results.json"
    write_run(str(path), {"id": "x", "note": "[" * 500 + '{"' * 100}, [])
    assert digest_ok(load_run(str(path)))


# -- the commands: diff and --baseline say what is wrong on one line, exit 2; gate fails closed --

def cli(argv, capsys):
    import argparse
    parser = argparse.ArgumentParser(prog="cutover")
    gate_cli.add_parsers(parser.add_subparsers())
    args = parser.parse_args([str(a) for a in argv])
    try:
        rc = args.func(args)
    except CutoverError as e:
        print(f"cutover: {e}")
        rc = 2
    return rc, capsys.readouterr().out


BYTES = st.binary(max_size=300) | st.builds(
    lambda n, inner: b"[" * n + inner + b"]" * n, st.integers(MAX_DEPTH - 2, 5000), st.binary(max_size=20)) | \
    st.builds(lambda n: b'{"run": {"a": ' + b'{"b": ' * n + b"1" + b"}" * n + b'}, "results": []}',
              st.integers(1, 3000))


@settings(max_examples=150, deadline=None, database=None, suppress_health_check=list(HealthCheck))
@given(BYTES)
def test_any_bytes_given_to_gate_diff_or_baseline_never_crash(tmp_path_factory, capsys, raw):
    tmp = tmp_path_factory.mktemp("bytes")
    bad = tmp / "bad"
    bad.mkdir()
    (bad / "results.json").write_bytes(raw)
    good = write(tmp / "good", records("docker"))
    for argv in (["diff", bad, good], ["diff", good, bad], ["gate", good, "--baseline", bad]):
        rc, out = cli(argv, capsys)
        if rc == 2:
            assert out.startswith("cutover: ") and out.count("\n") == 1, out
        else:
            assert rc in (0, 1)
    # A run that cannot be read fails the gate closed (exit 1, reason "unreadable"), never a crash.
    rc, out = cli(["gate", bad, "--out", tmp / "g"], capsys)
    assert rc in (1, 2), out
