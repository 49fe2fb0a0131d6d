"""The target x check matrix of a run, as Markdown (for the README) or plain text.

Each cell is the outcome per allocation, in the run's allocation order, e.g. `F F P`;
one letter when the check ran under one allocation only. P pass, F fail, E error,
U unsupported, S skip, . not run.
"""
from cutover import results

LETTER = {"pass": "P", "fail": "F", "error": "E", "unsupported": "U", "skip": "S"}


def build(data):
    """(checks, targets, {(check, target): cell text})."""
    allocs = [a["name"] for a in data["run"].get("allocations", [])]
    cells, checks, targets = {}, [], []
    for r in data["results"]:
        if r.get("allocation") and r["allocation"] not in allocs:
            allocs.append(r["allocation"])       # suites with allocations of their own (quotas)
        if r["check"] not in checks:
            checks.append(r["check"])
        if r["target"] not in targets:
            targets.append(r["target"])
        cells.setdefault((r["check"], r["target"]), {})[r.get("allocation")] = LETTER[r["outcome"]]
    text = {}
    for key, per_alloc in cells.items():
        if len(per_alloc) == 1:
            text[key] = next(iter(per_alloc.values()))
        else:
            text[key] = " ".join(per_alloc[a] for a in allocs if a in per_alloc)
    return sorted(checks), targets, text


def merged(paths):
    """Several runs as one: a later run's record replaces an earlier one's for the same key."""
    runs = [results.load_run(p) for p in paths]
    recs = {}
    for d in runs:
        for r in d["results"]:
            recs[results.record_key(r)] = r
    return {"run": runs[-1]["run"] if len(runs) == 1 else dict(runs[0]["run"], id=" + ".join(
        d["run"].get("id", "?") for d in runs), finished=runs[-1]["run"].get("finished")),
            "results": list(recs.values())}


def markdown(*paths):
    data = merged(paths)
    checks, targets, text = build(data)
    run = data["run"]
    allocs = ", ".join(a["name"] for a in run.get("allocations", []))
    lines = [f"Run `{run.get('id')}` ({run.get('finished')}). A cell lists the outcome per allocation "
             f"({allocs}; the disk quota checks per quota, 64m and 160m). P pass, F fail, E error, "
             "U unsupported.", "",
             "| check | " + " | ".join(f"`{t}`" for t in targets) + " |",
             "|---|" + "---|" * len(targets)]
    for c in checks:
        lines.append(f"| `{c}` | " + " | ".join(text.get((c, t), "") for t in targets) + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    import sys
    args = sys.argv[1:] if argv is None else argv
    if not args:
        print("usage: python -m cutover.matrix RUN [RUN...]  (later runs override earlier ones)", file=sys.stderr)
        return 2
    print(markdown(*args), end="")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
