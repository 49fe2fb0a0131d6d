"""The upgrade report: what changed between a baseline run and a candidate run, as Markdown.

    python -m cutover.upgrade_report BASELINE CANDIDATE [--gate DIR] [--title TEXT]

Reads two run folders (the same target names on both, e.g. the lab's releases/bookworm.yaml and
releases/trixie.yaml) and, when given, the gate.json of `cutover gate CANDIDATE --baseline
BASELINE`. Prints the stacks side by side (from the runs' own host facts), every check whose
outcome differs (regressions and fixes, with both observed values), which T4 promises differ
and which do not. bench/upgrade_report.sh runs the whole workflow and writes this into a file;
the README pastes it. Pure logic over results files, like the gate.
"""
import argparse
import datetime
import json
import os
import sys

from cutover import catalogue
from cutover.diffrun import diff_runs, show
from cutover.errors import CutoverError
from cutover.results import load_run


def _stack(run):
    """{label: value} of the runtime stack a run saw, per target (first host)."""
    out = {}
    for host, facts in sorted((run.get("hosts") or {}).items()):
        if not isinstance(facts, dict):
            continue
        out["kernel"] = facts.get("kernel")
        for name, tf in sorted((facts.get("targets") or {}).items()):
            if not isinstance(tf, dict) or "error" in tf:
                continue
            out.setdefault("dockerd", f"{tf.get('runtime_version')} (API {tf.get('api_version')})")
            for comp, ver in sorted((tf.get("components") or {}).items()):
                if comp and comp != "Engine":
                    out.setdefault(comp, ver)
            out.setdefault("cgroup driver / version", f"{tf.get('cgroup_driver')} / v{tf.get('cgroup_version')}")
            out.setdefault("storage driver", tf.get("storage_driver"))
            out.setdefault("live-restore", tf.get("live_restore"))
            if "warnings" in tf:     # what the daemon says it cannot do on this kernel
                out.setdefault("daemon warnings", "; ".join(tf["warnings"]) or "none")
        out["lxcfs"] = facts.get("lxcfs")
        break
    return out


def _cell(value, width=60):
    return show(value, width).replace("|", "\\|") or "-"


def render(base, cand, gate=None, title=None, base_name="baseline", cand_name="candidate"):
    d = diff_runs(base, cand, base_name, cand_name)
    lines = [f"### {title or 'Runtime upgrade: ' + base_name + ' -> ' + cand_name}", ""]
    sa, sb = _stack(base["run"]), _stack(cand["run"])
    lines += [f"| | {base_name} | {cand_name} |", "| --- | --- | --- |"]
    for k in list(dict.fromkeys(list(sa) + list(sb))):
        lines.append(f"| {k} | {_cell(sa.get(k))} | {_cell(sb.get(k))} |")
    lines.append("")
    c = d["counts"]
    lines.append(f"Runs: `{base['run'].get('id')}` ({len(base['results'])} records) and "
                 f"`{cand['run'].get('id')}` ({len(cand['results'])} records); "
                 f"{c['regression']} regression(s), {c['fix']} fix(es), {c['changed']} other outcome change(s), "
                 f"{c['observed']} record(s) with the same outcome but other observed values, "
                 f"{c['new']} new, {c['vanished']} vanished.")
    if gate:
        b = gate.get("baseline") or {}
        lines.append(f"Gate (`cutover gate {cand_name} --baseline {base_name}`): **{gate.get('verdict')}**; "
                     + ", ".join(f"{t} {v['verdict']}" for t, v in sorted((gate.get("targets") or {}).items()))
                     + f"; {len(b.get('regressions') or [])} regression(s), {len(b.get('fixes') or [])} fix(es).")
    lines.append("")
    changed = [r for r in d["rows"] if r["change"] in ("regression", "fix", "changed", "new", "vanished")]
    if changed:
        lines += [f"| change | check | target | allocation | {base_name} | {cand_name} | observed {base_name} "
                  f"| observed {cand_name} |", "| --- | --- | --- | --- | --- | --- | --- | --- |"]
        for r in changed:
            a, b = r["a"] or {}, r["b"] or {}
            lines.append(f"| {r['change']} | `{r['check']}` | {r['target']} | {r['allocation']} | "
                         f"{a.get('outcome', '-')} | {b.get('outcome', '-')} | {_cell(a.get('observed'))} | "
                         f"{_cell(b.get('observed'))} |")
        lines.append("")
    promises = {}
    for r in d["rows"]:
        check = catalogue.get(r["check"])
        p = check.promise if check else "unknown"
        promises.setdefault(p, set()).add(r["change"] in ("regression", "fix", "changed"))
    differ = sorted(p for p, ch in promises.items() if True in ch)
    same = sorted(p for p, ch in promises.items() if True not in ch)
    lines.append("T4 promises whose outcomes differ between the stacks: "
                 + (", ".join(f"**{p}**" for p in differ) or "none") + ". "
                 "Same outcome on every check: " + (", ".join(same) or "none") + ".")
    return "\n".join(lines) + "\n", d


def main(argv=None):
    p = argparse.ArgumentParser(prog="python -m cutover.upgrade_report")
    p.add_argument("baseline")
    p.add_argument("candidate")
    p.add_argument("--gate", help="folder holding the gate.json of gate CANDIDATE --baseline BASELINE")
    p.add_argument("--title")
    p.add_argument("--names", default="baseline,candidate", help="column names, e.g. bookworm,trixie")
    args = p.parse_args(argv)
    try:
        base, cand = load_run(args.baseline), load_run(args.candidate)
        gate = None
        if args.gate:
            with open(os.path.join(args.gate, "gate.json")) as f:
                gate = json.load(f)
        names = (args.names.split(",") + ["baseline", "candidate"])[:2]
        text, _ = render(base, cand, gate, args.title, *names)
    except (CutoverError, OSError, ValueError) as e:
        print(f"upgrade_report: {e}", file=sys.stderr)
        return 2
    stamp = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    print(text + f"\n_Generated {stamp} by `python -m cutover.upgrade_report` from the runs above._")
    return 0


if __name__ == "__main__":
    sys.exit(main())
