"""Differential runs (--reference TARGET): every record set beside the reference target's record
for the same check and allocation, so a person sees where a candidate departs from the runtime it
replaces, with both values.

Two kinds of departure:
- outcome: the candidate passes where the reference fails, or the other way round;
- value: the same outcome, but a quantity the check judges (a key of its `expected`) was seen
  differently, beyond what moves between two reads of one runtime (VALUE_REL for numbers).
Quantities outside `expected` (IDs, timestamps, raw evidence) differ between any two runs and
are not compared. Pure logic over records, like the gate.
"""
VALUE_REL = 0.10
MISSING = "<missing>"


def _same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) <= VALUE_REL * max(abs(a), abs(b), 1)
    return a == b


def value_departures(record, ref_record):
    """{quantity: [candidate value, reference value]} for the judged quantities that differ."""
    keys = set(record.get("expected") or {}) | set(ref_record.get("expected") or {})
    obs, ref = record.get("observed") or {}, ref_record.get("observed") or {}
    out = {}
    for k in sorted(keys):
        a, b = obs.get(k, MISSING), ref.get(k, MISSING)
        if not _same(a, b):
            out[k] = [a, b]
    return out


def compare(records, ref):
    """Attach `reference` to every record of another target that the reference also has.

    Returns {"outcome": n, "value": m}: how many records depart in outcome, and how many more
    only in judged values."""
    by_key = {(r["check"], r.get("allocation")): r for r in records if r["target"] == ref}
    counts = {"outcome": 0, "value": 0}
    for r in records:
        other = by_key.get((r["check"], r.get("allocation")))
        if r["target"] == ref or other is None:
            continue
        outcome = r["outcome"] != other["outcome"]
        values = value_departures(r, other)
        kind = "outcome" if outcome else ("value" if values else None)
        if kind:
            counts[kind] += 1
        r["reference"] = {"target": ref, "outcome": other["outcome"], "observed": other.get("observed"),
                          "expected": other.get("expected"), "differs": kind is not None,
                          "departure": kind, "values": values}
    return counts


def lines(records, ref, width=80):
    """What a person reads at the end of a differential run: one line per departing record."""
    import json
    out = []
    for r in records:
        d = r.get("reference") or {}
        if not d.get("differs"):
            continue
        where = f"{r['check']} [{r.get('allocation') or '-'}] {r['target']}"
        if d["departure"] == "outcome":
            out.append(f"  {where}: {r['outcome']} {json.dumps(r.get('observed'))[:width]}  vs {ref}: "
                       f"{d['outcome']} {json.dumps(d.get('observed'))[:width]}")
        else:
            vals = "; ".join(f"{k}: {a} vs {b}" for k, (a, b) in d["values"].items())
            out.append(f"  {where}: both {r['outcome']}, but {vals[:2 * width]} ({ref})")
    return out
