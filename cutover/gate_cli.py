"""`cutover gate` and `cutover diff`: the command-line face of the gate.

Exit status of `gate`: 0 PASS, 1 FAIL (including fail-closed: unreadable, incomplete or
altered results), 2 bad input (CutoverError, printed on one line by cutover.cli).
Inputs are all read and checked before anything is written, so bad input leaves --out alone.
"""
import datetime
import glob
import hashlib
import json
import os
import re

from cutover import summary
from cutover.diffrun import diff_runs, format_table
from cutover.errors import CutoverError
from cutover.gate import PASS, certificates, evaluate, load_runs
from cutover.policy import load_policy
from cutover.results import load_run, write_atomic

MAX_REASONS_SHOWN = 15
# Reasons recorded on each target of a run (or of a waiver) whose message names no target.
PER_RUN_KINDS = ("tampered", "incomplete", "malformed", "waiver-expired", "host-incomplete")


def add_parsers(subparsers):
    # dests carry a prefix so they can never collide with options of the main parser.
    g = subparsers.add_parser(
        "gate", help="decide PASS/FAIL per target, host and batch from run results",
        description="Judge one or more runs (shards of one decision) against a policy. "
                    "Exit 0 PASS, 1 FAIL, 2 bad input. Writes gate.json, certificates/ and summary.html.")
    g.add_argument("gate_runs", nargs="+", metavar="RUN", help="run folder or results.json")
    g.add_argument("--policy", dest="gate_policy", metavar="FILE",
                   help="policy YAML (default: policies/default.yaml; see policies/README.md)")
    g.add_argument("--baseline", dest="gate_baseline", metavar="RUN",
                   help="an earlier run; regressions against it block")
    g.add_argument("--out", dest="gate_out", metavar="DIR", help="output folder (default: the first RUN's folder)")
    g.add_argument("--today", dest="gate_today", metavar="YYYY-MM-DD",
                   help="the date waivers are judged against (default: today); an override is "
                        "recorded in gate.json, every certificate and summary.html")
    g.set_defaults(func=run_gate)

    d = subparsers.add_parser(
        "diff", help="compare two runs check by check",
        description="Before/after view of two runs: outcomes and observed values side by side; "
                    "'*' marks a changed row.")
    d.add_argument("diff_a", metavar="RUN_A")
    d.add_argument("diff_b", metavar="RUN_B")
    d.add_argument("--json", dest="diff_json", action="store_true", help="print the diff as JSON")
    d.add_argument("--changed", dest="diff_changed", action="store_true", help="show changed rows only")
    d.set_defaults(func=run_diff)


def run_gate(args):
    today = parse_day(args.gate_today) if args.gate_today else None
    policy = load_policy(args.gate_policy)
    runs = load_runs(args.gate_runs)
    baseline = None
    if args.gate_baseline:
        baseline = load_run(args.gate_baseline)
        baseline["source"] = args.gate_baseline
    result = evaluate(runs, policy, baseline=baseline, today=today)
    out = args.gate_out or run_folder(args.gate_runs[0])
    written = write_outputs(result, out)
    print(format_verdict(result, written))
    return 0 if result.verdict == PASS else 1


def run_diff(args):
    a, b = load_run(args.diff_a), load_run(args.diff_b)
    d = diff_runs(a, b, args.diff_a, args.diff_b)
    if args.diff_json:
        print(json.dumps(d, indent=1, default=str))
    else:
        print(format_table(d, changed_only=args.diff_changed), end="")
    return 0


def parse_day(text):
    try:
        if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            return datetime.date.fromisoformat(text)
    except ValueError:
        pass
    raise CutoverError(f"--today: '{text}' is not a date (YYYY-MM-DD)")


def run_folder(path):
    return path if os.path.isdir(path) else os.path.dirname(os.path.abspath(path))


def write_outputs(result, out):
    """gate.json, certificates/<host>.json and summary.html into out; returns what was written."""
    gate_json = os.path.join(out, "gate.json")
    write_atomic(gate_json, result.as_dict())
    cert_dir = os.path.join(out, "certificates")
    written = {"gate": gate_json, "certificates": [], "summary": os.path.join(out, "summary.html")}
    used = set()
    for host, cert in certificates(result).items():
        name = cert_name(host, used)
        path = os.path.join(cert_dir, name)
        write_atomic(path, cert)
        written["certificates"].append(path)
    _remove_stale_certificates(cert_dir, written["certificates"])
    summary.write(result, written["summary"])
    return written


def cert_name(host, used):
    """A file name per host; a short hash keeps two hosts that slug alike apart."""
    name = summary.slug(host)
    if name in used:
        name += "-" + hashlib.sha256(host.encode()).hexdigest()[:8]
    used.add(name)
    return name + ".json"


def _remove_stale_certificates(cert_dir, keep):
    # A certificate left from an earlier gate in the same folder could be taken for a current
    # one; remove ours (kind cutover-certificate) that this evaluation did not write.
    keep = {os.path.abspath(p) for p in keep}
    for path in glob.glob(os.path.join(cert_dir, "*.json")):
        if os.path.abspath(path) in keep:
            continue
        try:
            with open(path) as f:
                stale = json.load(f).get("kind") == "cutover-certificate"
        except (OSError, ValueError, AttributeError):
            stale = False
        if stale:
            try:
                os.unlink(path)
            except OSError:
                pass


def _condensed(reasons):
    """Reason lines for a terminal: a whole-run reason (incomplete, expired waiver...) recorded
    on each target prints once naming the targets; a long run of one kind on one target
    (36 missing results) prints its first example and a count."""
    groups = {}     # in order of first appearance (the gate sorts the most important first)
    for r in reasons:
        key = (r.kind, r.message) if r.kind in PER_RUN_KINDS else (r.kind, r.target)
        groups.setdefault(key, []).append(r)
    lines = []
    for (kind, _), group in groups.items():
        if kind in PER_RUN_KINDS:
            named = sorted({r.target for r in group if r.target})
            lines.append(f"  - [{kind}] {group[0].message}" + (f" (targets: {', '.join(named)})" if named else ""))
            continue
        shown = group if len(group) <= 3 else group[:1]
        lines += [f"  - [{kind}] {r.message}" for r in shown]
        if len(group) > len(shown):
            lines.append(f"    ... and {len(group) - 1} more [{kind}] on {group[0].target}")
    return lines


def format_verdict(result, written=None):
    """A short human verdict: what passed, what failed and why."""
    b = result.batch
    lines = [f"cutover gate: {result.verdict}  ({b['certified']} of {b['hosts']} host(s) certified; "
             f"policy needs {b['min_certified_ratio']:.0%})"]
    j = result.judged_on
    if j["overridden"]:
        lines.append(f"  waivers judged on {j['date']} (--today; the system date is {j['system_date']}); "
                     f"recorded in gate.json and every certificate")
    for host, h in sorted(result.hosts.items()):
        targets = ", ".join(f"{t} {result.targets[t]['verdict']}" for t in h["targets"])
        canary = " [canary]" if h["canary"] else ""
        lines.append(f"  host {host}{canary}: {'certified' if h['certified'] else 'NOT certified'} ({targets})")
    blocking = [r for r in result.reasons if r.blocking]
    others = len(result.reasons) - len(blocking)
    if blocking:
        lines.append(f"blocking reasons ({len(blocking)}):")
        shown = _condensed(blocking)
        lines += shown[:MAX_REASONS_SHOWN]
        if len(shown) > MAX_REASONS_SHOWN:
            lines.append(f"  ... and {len(shown) - MAX_REASONS_SHOWN} more in gate.json")
    if others:
        lines.append(f"{others} non-blocking reason(s) (advisory, waived, notes) in gate.json")
    if result.baseline:
        bl = result.baseline
        lines.append(f"baseline {bl['source']}: {len(bl['regressions'])} regression(s), {len(bl['fixes'])} fix(es), "
                     f"{len(bl['new'])} new, {len(bl['vanished'])} vanished")
    if written:
        lines.append(f"wrote {written['gate']}, {written['summary']} and "
                     f"{len(written['certificates'])} certificate(s)")
    return "\n".join(lines)
