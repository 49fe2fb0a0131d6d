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


def parse_markdown(text):
    """{(check, target): cell} of a table markdown() wrote (the README's, between its markers)."""
    rows = [[c.strip().strip("`") for c in l.strip().strip("|").split("|")]
            for l in text.splitlines() if l.startswith("| ")]
    if not rows:
        return {}
    targets = rows[0][1:]
    return {(r[0], t): c for r in rows[1:] for t, c in zip(targets, r[1:]) if c}


# -- pins: the expected cell of every (check, target), which the self-tests hold a run to -----
#
# One line per cell, `CHECK TARGET = CELL`, e.g. `dq.write-limit docker = F F`. A cell that
# really goes either way on this machine lists every outcome it may have and says why:
# `dq.write-limit docker-btrfs = P P | F F  # btrfs qgroups ...`. Lines are written from a
# run by `python -m cutover.matrix --pins RUN...` (bench/readme_matrix.sh does it), which keeps
# the alternatives and reasons of the pins it replaces when the run saw one of them.

def parse_pins(text, source="pins"):
    """{(check, target): ([allowed cells], reason)}; a malformed line is a CutoverError."""
    from cutover.errors import CutoverError
    pins = {}
    for n, line in enumerate(text.splitlines(), 1):
        body, _, reason = line.partition("#")
        if not body.strip():
            continue
        left, eq, right = body.partition("=")
        key = tuple(left.split())
        cells = [" ".join(c.split()) for c in right.split("|")]
        if not eq or len(key) != 2 or not all(cells) or any(set(c.split()) - set(LETTER.values()) for c in cells):
            raise CutoverError(f"{source}:{n}: expected 'CHECK TARGET = CELL [| CELL...] [# why]', got {line.strip()!r}")
        if key in pins:
            raise CutoverError(f"{source}:{n}: {key[0]} on {key[1]} pinned twice")
        pins[key] = (cells, reason.strip())
    return pins


def pins_text(data, old=None):
    """The pins of a run's cells (see above), keeping `old`'s alternatives that the run matched."""
    old = old or {}
    _checks, _targets, text = build(data)
    lines = []
    for key in sorted(text):
        cells, reason = old.get(key, ([], ""))
        if text[key] not in cells:
            cells, reason = [text[key]], ""
        lines.append(f"{key[0]} {key[1]} = {' | '.join(cells)}" + (f"  # {reason}" if reason else ""))
    return "\n".join(lines) + "\n"


def departures(pins, data):
    """Where a run departs from the pins: [(check, target, allowed cells, seen cell)], seen None
    for a pinned cell the run did not have, allowed None for a cell that has no pin."""
    _checks, _targets, text = build(data)
    out = []
    for key in sorted(set(pins) | set(text)):
        allowed = pins[key][0] if key in pins else None
        seen = text.get(key)
        if allowed is None or seen not in allowed:
            out.append((key[0], key[1], allowed, seen))
    return out


PINS_HEADER = """# The expected outcome of every cell of the README matrix: every check on every lab target.
# tests/lab/test_matrix_pinned.py holds a fresh run of every suite to it. Regenerate with
# bench/readme_matrix.sh (which writes the README matrix from the same run) and review the diff:
# a changed line is a runtime or a check that changed. `P P | F F  # why` allows either.
"""


def main(argv=None):
    import sys
    from cutover.errors import CutoverError
    args = sys.argv[1:] if argv is None else argv
    pins = args[:1] == ["--pins"]
    if pins:
        args = args[1:]
    if not args or (pins and len(args) < 2) or any(a in ("-h", "--help") for a in args):
        print("usage: python -m cutover.matrix RUN [RUN...]           (README table; later runs override)\n"
              "       python -m cutover.matrix --pins PINS RUN [RUN...]  (rewrite PINS from the runs)", file=sys.stderr)
        return 2
    try:
        if not pins:
            print(markdown(*args), end="")
            return 0
        _write_pins(args[0], args[1:])
    except CutoverError as e:
        print(f"cutover.matrix: {e}", file=sys.stderr)
        return 2
    return 0


def _write_pins(path, runs):
    import os
    import sys
    from cutover.results import write_text_atomic
    old = parse_pins(open(path).read(), path) if os.path.exists(path) else {}
    write_text_atomic(path, PINS_HEADER + pins_text(merged(runs), old))
    print(f"{path}: pins written from {' + '.join(runs)}", file=sys.stderr)


if __name__ == "__main__":
    raise SystemExit(main())
