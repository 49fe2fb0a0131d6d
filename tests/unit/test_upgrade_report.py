"""The upgrade report: regressions and fixes with both values, the stacks side by side."""
from cutover.results import load_run
from cutover.upgrade_report import main, render
from tests.unit import factories as f

def HOSTS(ver, runc):
    return {"local://": {"kernel": "6.18.0", "lxcfs": "5.0.3", "targets": {"docker": {
        "runtime_version": ver, "api_version": "1.41", "components": {"Engine": ver, "runc": runc}}}}}


def runs(tmp_path, after):
    base = f.write(tmp_path / "base", f.records(host="local://"), hosts=HOSTS("20.10.24", "1.1.5"))
    cand = f.write(tmp_path / "cand", f.records(host="local://", outcomes=after), hosts=HOSTS("26.1.5", "1.1.15"))
    return load_run(base), load_run(cand)


def test_regression_is_listed_with_both_values_and_its_promise(tmp_path):
    base, cand = runs(tmp_path, {f.BLOCKING: "fail"})
    text, d = render(base, cand, None, None, "bookworm", "trixie")
    assert d["counts"]["regression"] == len(f.ALLOCS)
    assert f"| regression | `{f.BLOCKING}` | docker |" in text
    assert "512 MiB" in text and "15.5 GiB" in text
    assert "| dockerd | 20.10.24 (API 1.41) | 26.1.5 (API 1.41) |" in text
    assert "| runc | 1.1.5 | 1.1.15 |" in text
    assert "outcomes differ between the stacks: **visibility**" in text


def test_no_change_says_none(tmp_path):
    base, cand = runs(tmp_path, {})
    text, _ = render(base, cand)
    assert "outcomes differ between the stacks: none." in text


def test_bad_input_is_one_line(tmp_path, capsys):
    assert main([str(tmp_path / "nope"), str(tmp_path / "nope2")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
