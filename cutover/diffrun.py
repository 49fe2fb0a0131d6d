"""`cutover diff RUN_A RUN_B`: the before/after view of two runs, check by check.

Used for a kernel patch or a runtime upgrade: one row per check x target x allocation with
both outcomes and both observed values side by side, and what changed in the host facts and
target descriptions (kernel, runtime versions). `classify()` is shared with the gate's
baseline comparison so both speak of regressions and fixes in the same way.
"""
import json

from cutover import catalogue
from cutover.errors import CutoverError
from cutover.results import digest_ok, record_key

CHANGES = ("regression", "fix", "changed", "observed", "new", "vanished", "same")


def classify(before, after):
    """How one record changed, given its outcome before and after (None when absent)."""
    if before is None:
        return "new"
    if after is None:
        return "vanished"
    if before == "pass" and after != "pass":
        return "regression"
    if before != "pass" and after == "pass":
        return "fix"
    return "changed" if before != after else "same"


def index_records(data, source):
    """record key -> record for one run; a key twice in one run is bad input."""
    out = {}
    for rec in data["results"]:
        key = record_key(rec)
        if key in out:
            raise CutoverError(f"{source}: result {key} appears twice")
        out[key] = rec
    return out


def split_key(key):
    """record_key() back into (check, target, allocation)."""
    check, _, rest = key.partition("|")
    target, _, alloc = rest.rpartition("|")
    return check, target, alloc or "-"


def sort_key(key):
    """Catalogue order first (so rows group by promise), then target and allocation."""
    check, target, alloc = split_key(key)
    order = list(catalogue.CHECKS)
    return (order.index(check) if check in order else len(order), check, target, alloc)


def diff_runs(a, b, a_source="A", b_source="B"):
    """Compare two loaded runs; a dict fit for --json and for format_table()."""
    recs_a, recs_b = index_records(a, a_source), index_records(b, b_source)
    rows = []
    for key in sorted(set(recs_a) | set(recs_b), key=sort_key):
        ra, rb = recs_a.get(key), recs_b.get(key)
        any_rec = ra or rb
        change = classify(ra and ra["outcome"], rb and rb["outcome"])
        if change == "same" and ra.get("observed") != rb.get("observed"):
            change = "observed"
        rows.append({
            "key": key, "check": any_rec["check"], "target": any_rec["target"],
            "allocation": any_rec.get("allocation") or "-",
            "a": _side(ra), "b": _side(rb), "change": change, "changed": change != "same",
        })
    counts = {c: sum(r["change"] == c for r in rows) for c in CHANGES}
    return {
        "a": _about(a, a_source), "b": _about(b, b_source),
        "facts": _fact_changes(a["run"], b["run"]),
        "rows": rows, "counts": counts,
    }


def _side(rec):
    if rec is None:
        return None
    return {"outcome": rec["outcome"], "expected": rec.get("expected"),
            "observed": rec.get("observed"), "message": rec.get("message")}


def _about(data, source):
    run = data["run"]
    return {"source": source, "id": run.get("id"), "started": run.get("started"),
            "complete": run.get("complete") is True, "digest_ok": digest_ok(data)}


def _fact_changes(run_a, run_b):
    """Host facts and target descriptions that differ between the two runs."""
    out = []
    for section, kind in (("hosts", "host"), ("targets", "target")):
        sa, sb = run_a.get(section), run_b.get(section)
        if not isinstance(sa, dict) or not isinstance(sb, dict):
            continue
        for name in sorted(set(sa) & set(sb), key=str):
            fa, fb = sa[name], sb[name]
            if not isinstance(fa, dict) or not isinstance(fb, dict):
                fa, fb = {"value": fa}, {"value": fb}
            for fact in sorted(set(fa) | set(fb), key=str):
                if fa.get(fact) != fb.get(fact):
                    out.append({kind: name, "kind": kind, "name": name, "fact": fact,
                                "a": fa.get(fact), "b": fb.get(fact)})
    return out


def show(value, width=None):
    """A value as one short line of text."""
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    else:
        text = json.dumps(value, sort_keys=True, default=str)
    text = " ".join(text.split())
    if width and len(text) > width:
        text = text[:width - 1] + "…"
    return text


def format_table(d, changed_only=False, width=36):
    """The diff as plain text for a terminal: a '*' marks a changed row."""
    lines = []
    for side in ("a", "b"):
        about = d[side]
        notes = [] if about["complete"] else ["INCOMPLETE"]
        if not about["digest_ok"]:
            notes.append("DIGEST DOES NOT VERIFY")
        lines.append(f"{side.upper()}: {about['id'] or '?'}  ({about['source']})"
                     + (f"  [{', '.join(notes)}]" if notes else ""))
    if d["facts"]:
        lines.append("changed facts:")
        for f in d["facts"]:
            lines.append(f"  {f['kind']} {f['name']}  {f['fact']}: {show(f['a'], 40) or '-'} -> {show(f['b'], 40) or '-'}")
    header = ("", "CHANGE", "CHECK", "TARGET", "ALLOCATION", "A", "B", "OBSERVED A", "OBSERVED B")
    table = [header]
    for r in d["rows"]:
        if changed_only and not r["changed"]:
            continue
        a, b = r["a"] or {}, r["b"] or {}
        table.append(("*" if r["changed"] else "", "" if r["change"] == "same" else r["change"],
                      r["check"], r["target"], r["allocation"],
                      a.get("outcome", "-"), b.get("outcome", "-"),
                      show(a.get("observed"), width), show(b.get("observed"), width)))
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        lines.append("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths)).rstrip())
    c = d["counts"]
    changed = sum(r["changed"] for r in d["rows"])
    detail = ", ".join(f"{c[k]} {k}" for k in CHANGES if k != "same" and c[k])
    lines.append(f"{len(d['rows'])} rows, {changed} changed" + (f": {detail}" if detail else ""))
    return "\n".join(lines) + "\n"
