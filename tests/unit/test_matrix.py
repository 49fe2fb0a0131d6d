"""The README matrix: outcome letters per allocation, and later runs overriding earlier ones."""
from cutover import matrix, results


def rec(check, target, alloc, outcome):
    return {"check": check, "target": target, "allocation": alloc, "outcome": outcome}


def write(tmp_path, name, recs):
    path = tmp_path / name
    results.write_run(str(path / "results.json"), {"id": name, "allocations": [{"name": "a1"}, {"name": "a2"}]},
                      recs)
    return str(path)


def test_cells_per_allocation_and_merge(tmp_path):
    first = write(tmp_path, "r1", [rec("vis.meminfo", "docker", "a1", "fail"), rec("vis.meminfo", "docker", "a2", "pass"),
                                   rec("vis.loadavg", "docker", "a1", "fail"),
                                   rec("dq.df-root", "docker", "disk64m", "error")])
    second = write(tmp_path, "r2", [rec("dq.df-root", "docker", "disk64m", "pass"),
                                    rec("dq.df-root", "docker", "disk160m", "unsupported")])
    table = matrix.markdown(first, second)
    assert "| `vis.meminfo` | F P |" in table
    assert "| `vis.loadavg` | F |" in table
    assert "| `dq.df-root` | P U |" in table          # r2 replaced r1's error
    assert "r1 + r2" in table


# -- pins ------------------------------------------------------------------------------------
import os

import pytest

from cutover.errors import CutoverError

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_pins_parse_alternatives_and_reasons():
    pins = matrix.parse_pins("# header\n\nvis.meminfo docker = F  P F\n"
                             "dq.write-limit docker-btrfs = P P | F F  # qgroups go inconsistent\n")
    assert pins == {("vis.meminfo", "docker"): (["F P F"], ""),
                    ("dq.write-limit", "docker-btrfs"): (["P P", "F F"], "qgroups go inconsistent")}


@pytest.mark.parametrize("line", ["vis.meminfo docker F", "vis.meminfo = P", "vis.meminfo docker = X",
                                  "vis.meminfo docker = P |", "a b = P\na b = F"])
def test_pins_malformed_line_names_it(line):
    with pytest.raises(CutoverError, match=r"pins:\d: "):
        matrix.parse_pins(line)


def test_pins_regenerated_keep_alternatives_the_run_matched(tmp_path):
    run = write(tmp_path, "r", [rec("dq.write-limit", "docker-btrfs", "a1", "fail"),
                                rec("dq.write-limit", "docker-btrfs", "a2", "fail"),
                                rec("vis.meminfo", "docker", "a1", "pass")])
    old = matrix.parse_pins("dq.write-limit docker-btrfs = P P | F F  # why\nvis.meminfo docker = F | E  # was\n")
    text = matrix.pins_text(matrix.merged([run]), old)
    assert text == "dq.write-limit docker-btrfs = P P | F F  # why\nvis.meminfo docker = P\n"


def test_departures_name_changed_missing_and_unpinned_cells(tmp_path):
    run = matrix.merged([write(tmp_path, "r", [rec("vis.meminfo", "docker", "a1", "pass"),
                                               rec("vis.loadavg", "docker", "a1", "fail"),
                                               rec("vis.new", "docker", "a1", "pass")])])
    pins = matrix.parse_pins("vis.meminfo docker = F\nvis.loadavg docker = P | F\nvis.gone docker = P\n")
    assert matrix.departures(pins, run) == [("vis.gone", "docker", ["P"], None),
                                            ("vis.meminfo", "docker", ["F"], "P"),
                                            ("vis.new", "docker", None, "P")]


def test_readme_matrix_is_what_the_pins_allow():
    """The README's generated matrix and the self-tests' pins come from the same run: a cell
    typed into one of them alone shows up here."""
    with open(os.path.join(ROOT, "README.md")) as f:
        readme = f.read()
    table = matrix.parse_markdown(readme.split("<!-- matrix:begin -->")[1].split("<!-- matrix:end -->")[0])
    with open(os.path.join(ROOT, "tests", "lab", "matrix_pins.txt")) as f:
        pins = matrix.parse_pins(f.read())
    assert set(table) == set(pins), sorted(set(table) ^ set(pins))[:20]
    wrong = {k: (c, pins[k][0]) for k, c in table.items() if c not in pins[k][0]}
    assert not wrong, wrong


def test_cli_bad_input_is_one_line(tmp_path, capsys):
    assert matrix.main(["--help"]) == 2
    assert matrix.main([str(tmp_path / "missing")]) == 2
    err = capsys.readouterr().err
    assert "usage:" in err and f"{tmp_path / 'missing'}: no such results file" in err
    assert "Traceback" not in err
