"""Cutover's one-page HTML summary of a gate decision, for a person deciding on a cutover.

One self-contained file (inline CSS, no scripts, no external assets: it is opened from CI
artefacts and offline machines): the verdict, the check x target matrix coloured by outcome,
the reasons, regressions against the baseline, waivers, and the per-host certificates.

The DOM is part of the interface (a headless-browser self-test reads it), so it is stable:
  <body data-verdict="PASS|FAIL">, #verdict.verdict-pass|verdict-fail,
  #judged-on[data-date][data-overridden] (the date waivers were judged against)
  #matrix td.cell[data-check][data-target][data-outcome] with class outcome-<outcome>,
      plus .waived (text "waived"), .blocking, .regressed; title = allocation breakdown;
      id = cell--<target>--<check> (slugged)
  #reasons li.reason[data-kind][data-blocking], #regressions tr.regression,
  #certificates section.certificate[data-host][data-verdict], #waivers tr.waiver[data-status]
"""
import html
import re

from cutover import catalogue, results
from cutover.diffrun import show
from cutover.gate import SEVERITY_ORDER, certificates, given

CSS = """
:root { --pass:#1a7f37; --pass-bg:#dafbe1; --fail:#cf222e; --fail-bg:#ffebe9; --error:#8250df;
  --error-bg:#fbefff; --unsup:#9a6700; --unsup-bg:#fff8c5; --skip:#57606a; --skip-bg:#eaeef2;
  --waived:#0969da; --waived-bg:#ddf4ff; --line:#d0d7de; --muted:#57606a; }
* { box-sizing: border-box; }
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
  color: #1f2328; background: #f6f8fa; }
main { max-width: 1400px; margin: 0 auto; padding: 0 24px 48px; }
h2 { font-size: 18px; margin: 32px 0 10px; border-bottom: 1px solid var(--line); padding-bottom: 4px; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; font-size: 12.5px; }
.muted { color: var(--muted); }
.verdict { padding: 22px 24px; color: #fff; display: flex; align-items: baseline; gap: 24px; flex-wrap: wrap; }
.verdict-pass { background: var(--pass); } .verdict-fail { background: var(--fail); }
.verdict .word { font-size: 40px; font-weight: 800; letter-spacing: 2px; }
.verdict .what { font-size: 16px; opacity: .95; }
.verdict .meta { font-size: 12px; opacity: .85; width: 100%; }
.badge { display: inline-block; border-radius: 10px; padding: 0 8px; font-size: 12px; font-weight: 600;
  border: 1px solid currentColor; }
.badge-pass { color: var(--pass); background: var(--pass-bg); } .badge-fail { color: var(--fail); background: var(--fail-bg); }
.badge-canary { color: var(--unsup); background: var(--unsup-bg); }
table { border-collapse: collapse; background: #fff; }
th, td { border: 1px solid var(--line); padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f0f3f6; font-weight: 600; }
.matrix-wrap { overflow-x: auto; }
#matrix th.target { text-align: center; white-space: nowrap; }
#matrix th.target small { display: block; font-weight: 400; color: var(--muted); }
#matrix td.check { white-space: nowrap; }
#matrix td.check small { color: var(--muted); }
#matrix tr.promise th { background: #fff; color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .5px; }
td.cell { text-align: center; min-width: 92px; font-weight: 600; cursor: help; }
td.cell small { display: block; font-weight: 400; font-size: 11px; opacity: .8; }
.outcome-pass { background: var(--pass-bg); color: var(--pass); }
.outcome-fail { background: var(--fail-bg); color: var(--fail); }
.outcome-error { background: var(--error-bg); color: var(--error); }
.outcome-unsupported { background: var(--unsup-bg); color: var(--unsup); }
.outcome-skip { background: var(--skip-bg); color: var(--skip); }
.outcome-missing { background: repeating-linear-gradient(45deg,#fff,#fff 5px,#eaeef2 5px,#eaeef2 10px); color: #1f2328; }
.outcome-none { background: #fff; color: #bbb; font-weight: 400; }
td.cell.waived { background: repeating-linear-gradient(135deg,var(--waived-bg),var(--waived-bg) 6px,#fff 6px,#fff 12px);
  color: var(--waived); outline: 2px dashed var(--waived); outline-offset: -4px; }
td.cell.blocking { box-shadow: inset 0 0 0 2px var(--fail); }
td.cell.regressed::after { content: " \\25BC"; color: var(--fail); }
.legend span { display: inline-block; padding: 1px 8px; margin: 0 6px 6px 0; border: 1px solid var(--line); font-size: 12px; }
ul.reasons { list-style: none; padding: 0; margin: 0; }
li.reason { background: #fff; border: 1px solid var(--line); border-left: 4px solid var(--skip); padding: 6px 10px; margin-bottom: 4px; }
li.reason[data-blocking="true"] { border-left-color: var(--fail); }
li.reason[data-kind="waived"] { border-left-color: var(--waived); }
li.reason .kind { font-weight: 700; margin-right: 6px; }
.certs { display: grid; grid-template-columns: repeat(auto-fill, minmax(380px, 1fr)); gap: 12px; }
section.certificate { background: #fff; border: 1px solid var(--line); border-top: 6px solid var(--pass); padding: 10px 14px; }
section.certificate[data-verdict="FAIL"] { border-top-color: var(--fail); }
section.certificate h3 { margin: 0 0 6px; font-size: 15px; }
section.certificate table { width: 100%; margin-top: 6px; }
details summary { cursor: pointer; color: var(--muted); margin: 6px 0; }
"""

LABELS = {"pass": "pass", "fail": "FAIL", "error": "ERROR", "unsupported": "unsupported",
          "skip": "skipped", "missing": "missing", "none": "–"}


def render(result):
    """The whole page as a string."""
    certs = certificates(result)
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>Cutover gate: {result.verdict}</title><style>{CSS}</style></head>",
        f'<body data-verdict="{result.verdict}">',
        _banner(result), "<main>",
        _matrix(result), _reasons(result), _baseline(result), _certificates(result, certs),
        _waivers(result), _inputs(result),
        "</main></body></html>",
    ]
    return "\n".join(p for p in parts if p)


def write(result, path):
    """Write the page atomically (a half-written report is worse than none)."""
    results.write_text_atomic(path, render(result))


def _e(value):
    return html.escape(show(value) if not isinstance(value, str) else value, quote=True)


def slug(text):
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", str(text)).strip("-") or "x"


def _banner(result):
    b = result.batch
    blocking = len(result.blocking())
    what = (f"{b['certified']} of {b['hosts']} host(s) certified"
            f" &middot; policy needs {b['min_certified_ratio']:.0%}"
            f" &middot; {blocking} blocking reason(s)")
    j = result.judged_on
    judged = (f'<span id="judged-on" data-date="{_e(j["date"])}" data-overridden="{str(j["overridden"]).lower()}">'
              f'waivers judged on {_e(j["date"])}'
              + (f' <b>(set by --today; the system date was {_e(j["system_date"])})</b>' if j["overridden"] else "")
              + '</span>')
    meta = (f"evaluated {_e(result.evaluated_at)} &middot; {judged} &middot; policy {_e(result.policy['source'])} "
            f"<span class=\"mono\">{_e(result.policy['digest'][:19])}</span>"
            + (f" &middot; baseline {_e(result.baseline['source'])}" if result.baseline else ""))
    return (f'<header id="verdict" class="verdict verdict-{result.verdict.lower()}">'
            f'<span class="word">{result.verdict}</span><span class="what">{what}</span>'
            f'<span class="meta">{meta}</span></header>')


def _cells(result):
    """(target, check) -> {"records": [...], "missing": [allocation...]}"""
    cells = {}
    for key, rec in result.records.items():
        cells.setdefault((str(rec["target"]), str(rec["check"])), {"records": [], "missing": []})["records"].append((key, rec))
    for check, target, alloc in result.missing:
        cells.setdefault((target, check), {"records": [], "missing": []})["missing"].append(alloc or "(not collected)")
    return cells


def _matrix(result):
    targets = sorted(result.targets, key=lambda t: (result.targets[t]["host"], t))
    if not targets:
        return '<h2>Checks</h2><p class="muted">No targets to show.</p>'
    regressed = {e["key"] for e in (result.baseline or {}).get("regressions", [])}
    cells = _cells(result)
    head = "".join(
        f'<th class="target" data-target="{_e(t)}">{_e(t)}<small>{_e(result.targets[t]["host"])}</small>'
        f'<span class="badge badge-{result.targets[t]["verdict"].lower()}">{result.targets[t]["verdict"]}</span></th>'
        for t in targets)
    rows, promise = [], None
    for check in result.checks:
        c = catalogue.get(check)
        if c and c.promise != promise:
            promise = c.promise
            rows.append(f'<tr class="promise"><th colspan="{len(targets) + 1}">{_e(promise)}: '
                        f'{_e(catalogue.PROMISES[promise])}</th></tr>')
        title = f'{_e(c.title)} <small>{_e(c.severity)}</small>' if c else '<small>not in the catalogue</small>'
        row = [f'<td class="check"><code>{_e(check)}</code><br>{title}</td>']
        for t in targets:
            row.append(_cell(result, t, check, cells.get((t, check)), regressed))
        rows.append(f'<tr data-check="{_e(check)}">{"".join(row)}</tr>')
    legend = "".join(f'<span class="outcome-{o}">{LABELS[o]}</span>' for o in (*SEVERITY_ORDER, "missing")) \
        + '<span class="cell waived" style="color:var(--waived)">waived</span>' \
        + '<span>&#9660; regressed vs. baseline</span><span style="box-shadow:inset 0 0 0 2px var(--fail)">blocking</span>'
    return (f'<h2>Checks</h2><div class="legend">{legend}</div><p class="muted">Hover a cell for its '
            f'allocations, expected and observed values.</p><div class="matrix-wrap"><table id="matrix">'
            f'<thead><tr><th>check</th>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>')


def _cell(result, target, check, cell, regressed):
    records = sorted((cell or {}).get("records", []), key=lambda kr: str(kr[1].get("allocation")))
    missing = (cell or {}).get("missing", [])
    outcomes = [rec["outcome"] for _, rec in records]
    if missing:
        outcome = "missing"
    elif outcomes:
        outcome = min(outcomes, key=SEVERITY_ORDER.index)
    else:
        outcome = "none"
    statuses = [result.status.get(key) for key, rec in records if rec["outcome"] != "pass"]
    waived = bool(statuses) and all(s == "waived" for s in statuses) and not missing
    classes = ["cell", f"outcome-{outcome}"]
    if waived:
        classes.append("waived")
    if "blocking" in statuses or missing:
        classes.append("blocking")
    if any(key in regressed for key, _ in records):
        classes.append("regressed")
    lines = []
    for key, rec in records:
        line = f"{rec.get('allocation') or '-'}: {rec['outcome']}"
        if given(rec.get("expected")) or given(rec.get("observed")):
            line += f" (expected {show(rec.get('expected'), 60)}, observed {show(rec.get('observed'), 60)})"
        if result.status.get(key) in ("waived", "advisory"):
            line += f" [{result.status[key]}]"
        lines.append(line)
    lines += [f"{a}: missing (no result)" for a in missing]
    allocs = " ".join(f"{rec.get('allocation') or '-'}:{rec['outcome']}" for _, rec in records)
    title = "\n".join(lines) or "no result owed"
    text = "waived" if waived else LABELS[outcome]
    if len(records) > 1:
        text += f"<small>{outcomes.count('pass')}/{len(records)} pass</small>"
    return (f'<td id="cell--{slug(target)}--{slug(check)}" class="{" ".join(classes)}" '
            f'data-check="{_e(check)}" data-target="{_e(target)}" data-outcome="{outcome}" '
            f'data-waived="{str(waived).lower()}" data-allocations="{_e(allocs)}" '
            f'title="{_e(title)}">{text}</td>')


def _reasons(result):
    def item(r):
        where = " ".join(x for x in (r.target and f"target {_e(r.target)}", r.host and f"on {_e(r.host)}") if x)
        attrs = f' data-check="{_e(r.check)}"' if r.check else ""
        attrs += f' data-target="{_e(r.target)}"' if r.target else ""
        where = f' <span class="muted">({where})</span>' if where else ""
        return (f'<li class="reason" data-kind="{_e(r.kind)}" data-blocking="{str(r.blocking).lower()}"{attrs}>'
                f'<span class="kind">{_e(r.kind)}</span>{_e(r.message)}{where}</li>')
    blocking = [r for r in result.reasons if r.blocking]
    other = [r for r in result.reasons if not r.blocking]
    out = ['<h2 id="reasons-title">Why</h2><div id="reasons">']
    if blocking:
        out.append(f'<p>{len(blocking)} blocking reason(s):</p><ul class="reasons">{"".join(map(item, blocking))}</ul>')
    else:
        out.append('<p>No blocking reasons.</p>')
    if other:
        out.append(f'<details{" open" if not blocking else ""}><summary>{len(other)} non-blocking '
                   f'(advisory, waived, notes)</summary><ul class="reasons">{"".join(map(item, other))}</ul></details>')
    out.append("</div>")
    return "".join(out)


def _baseline(result):
    b = result.baseline
    if not b:
        return '<h2>Against the baseline</h2><p class="muted" id="regressions">No baseline given.</p>'
    rows = "".join(
        f'<tr class="regression" data-check="{_e(e["check"])}" data-target="{_e(e["target"])}">'
        f'<td><code>{_e(e["check"])}</code></td><td>{_e(e["target"])}</td><td>{_e(e["allocation"] or "-")}</td>'
        f'<td>{_e(e["before"])} &rarr; <b>{_e(e["after"])}</b></td>'
        f'<td class="mono">{_e(show(e["observed_before"], 60))} &rarr; {_e(show(e["observed_after"], 60))}</td>'
        f'<td>{"waived" if e["waived"] else "<b>blocks</b>"}</td></tr>'
        for e in b["regressions"])
    table = (f'<table id="regressions"><tr><th>check</th><th>target</th><th>allocation</th><th>outcome</th>'
             f'<th>observed</th><th></th></tr>{rows}</table>' if rows
             else '<p id="regressions">No regressions.</p>')

    def listing(name, entries):
        if not entries:
            return ""
        items = "".join(f'<li><code>{_e(e["check"])}</code> on {_e(e["target"])} [{_e(e["allocation"] or "-")}]: '
                        f'{_e(e["before"] or "-")} &rarr; {_e(e["after"] or "-")}</li>' for e in entries)
        return f'<details><summary>{len(entries)} {name}</summary><ul>{items}</ul></details>'
    return (f'<h2>Against the baseline <small class="muted">{_e(b["source"])} ({_e(b["id"] or "?")})</small></h2>'
            + table + listing("fixed", b["fixes"]) + listing("new", b["new"]) + listing("vanished", b["vanished"]))


def _certificates(result, certs):
    out = ['<h2>Host certificates</h2><div class="certs" id="certificates">']
    for host, cert in certs.items():
        facts = cert["facts"] if isinstance(cert["facts"], dict) else {"facts": cert["facts"]}
        fact_rows = "".join(f"<tr><th>{_e(k)}</th><td class=\"mono\">{_e(show(v, 80))}</td></tr>"
                            for k, v in sorted(facts.items(), key=lambda kv: str(kv[0])))
        target_rows = "".join(
            f'<tr><td>{_e(t)}</td><td><span class="badge badge-{d["verdict"].lower()}">{d["verdict"]}</span></td>'
            f'<td class="mono">{_e(show(d["description"], 160))}'
            f'{"<br>" + _e(show(d["runtime"], 160)) if d["runtime"] else ""}</td></tr>'
            for t, d in cert["targets"].items())
        digests = ", ".join(f'{_e(i.get("id") or i["source"])} <span class="mono">{_e((i.get("digest") or "")[:19])}</span>'
                            + ("" if i.get("digest_ok") else " <b>(does not verify)</b>") for i in cert["results"])
        word = "certified" if cert["certified"] else "not certified"
        canary = ' <span class="badge badge-canary">canary</span>' if cert["canary"] else ""
        out.append(
            f'<section class="certificate" data-host="{_e(host)}" data-verdict="{cert["verdict"]}">'
            f'<h3>{_e(host)} <span class="badge badge-{cert["verdict"].lower()}">{word}</span>'
            f'{canary}</h3>'
            f'<table><tr><th>target</th><th>verdict</th><th>description</th></tr>{target_rows}</table>'
            + (f'<details><summary>host facts</summary><table>{fact_rows}</table></details>' if fact_rows else "")
            + f'<div class="muted">results: {digests or "none"}<br>certificate time {_e(cert["time"])}'
            f'{"; waivers judged on " + _e(cert["judged_on"]["date"]) + " (--today)" if cert["judged_on"]["overridden"] else ""}'
            f'</div></section>')
    out.append("</div>")
    return "".join(out)


def _waivers(result):
    if not result.waivers:
        return ""
    rows = "".join(
        f'<tr class="waiver" data-status="{_e(w["status"])}"><td><code>{_e(w["check"])}</code></td>'
        f'<td>{_e(w["target"])}</td><td>{_e(w["host"])}</td><td>{_e(w["owner"])}</td><td>{_e(w["expires"])}</td>'
        f'<td><b>{_e(w["status"])}</b></td><td>{_e(w["reason"])}</td></tr>' for w in result.waivers)
    return (f'<h2>Waivers</h2><table id="waivers"><tr><th>check</th><th>target</th><th>host</th><th>owner</th>'
            f'<th>expires</th><th>status</th><th>reason</th></tr>{rows}</table>')


def _inputs(result):
    rows = "".join(
        f'<tr><td class="mono">{_e(i["source"])}</td><td>{_e(i.get("id") or "")}</td>'
        f'<td>{"unreadable: " + _e(i["error"]) if not i["readable"] else ("complete" if i["complete"] else "<b>incomplete</b>")}</td>'
        f'<td class="mono">{_e((i.get("digest") or "")[:23])}{"" if i.get("digest_ok", True) else " <b>does not verify</b>"}</td></tr>'
        for i in result.inputs)
    return (f'<h2>Inputs</h2><table id="inputs"><tr><th>results</th><th>run</th><th>state</th><th>digest</th></tr>'
            f'{rows}</table>')
