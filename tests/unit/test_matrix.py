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
