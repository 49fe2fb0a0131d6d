"""The gate: one or more runs + a policy (+ a baseline) -> PASS or FAIL per target, host, batch.

Pure logic over results files; it knows nothing of runtimes. Every decision leaves a Reason,
and the gate fails closed: what it cannot verify counts against the cutover.

- A record that did not pass (fail, error, unsupported, or skip: a skip is not a pass for a
  check the run owed) fails its target when the policy says the check is blocking, unless a
  waiver that has not expired covers it. Advisory non-passes are reported, not blocking.
- An expired waiver fails every target it would apply to (its check pattern matches a check
  the target owed), even if the check passes now: its owner must renew or delete it. An
  expired waiver that applies to nothing in these runs is only noted.
- Completeness, per run: run.complete must be true, the digest must verify, every key in
  run.collected needs a result and every result must have been collected. Across the merged
  runs: every target owes every catalogue check of each suite the runs touched (so a
  deselected check is caught), and a target without any result fails. Unknown check IDs fail.
- A results file that cannot be read (truncated, corrupt, missing in an existing run folder)
  is a FAIL with reason "unreadable", not bad input: a crashed run must stop a cutover. Its
  targets are unknown, so it fails every target, host and the batch. A RUN path that does
  not exist at all is bad input (a typo), as is a broken baseline, a duplicate record key
  across shards, or one target placed on two hosts.
- Baseline: regressions (pass -> non-pass) block even for advisory checks unless waived;
  fixes, new and vanished checks are listed (vanished ones are caught by completeness when
  they were owed).
- A host is certified when all its targets pass. The batch passes when no input-level
  reason blocks, the share of certified hosts reaches batch.min_certified_ratio, and no
  canary host failed. The overall verdict (and the exit status) is the batch verdict.
"""
import datetime
import os
from dataclasses import asdict, dataclass, field
from fractions import Fraction
from typing import Any, Optional

from cutover import catalogue
from cutover.diffrun import classify, index_records, show, sort_key, split_key
from cutover.errors import CutoverError
from cutover.policy import load_policy
from cutover.results import digest_ok, load_run

PASS, FAIL = "PASS", "FAIL"
# Worst first: the matrix shows a cell's worst outcome over its allocations.
SEVERITY_ORDER = ("error", "fail", "unsupported", "skip", "pass")


@dataclass
class Unreadable:
    """A run given to the gate whose results file could not be read."""
    path: str
    message: str


@dataclass
class Reason:
    kind: str        # check, advisory, waived, waiver-expired, regression, missing, not-collected,
                     # unexpected, unknown-check, no-results, incomplete, tampered, malformed,
                     # unreadable, batch-ratio, canary, no-hosts, note
    message: str
    blocking: bool = True
    scope: str = "target"    # target: fails its target | global: fails everything | batch
    check: Optional[str] = None
    target: Optional[str] = None
    host: Optional[str] = None
    allocation: Optional[str] = None
    outcome: Optional[str] = None
    expected: Any = None
    observed: Any = None
    waiver: Optional[dict] = None
    source: Optional[str] = None

    def as_dict(self):
        return asdict(self)


@dataclass
class GateResult:
    verdict: str
    evaluated_at: str
    today: str
    policy: dict
    inputs: list
    targets: dict            # name -> {verdict, host, description, sources}
    hosts: dict              # url -> {verdict, certified, canary, targets, facts}
    batch: dict
    reasons: list            # [Reason], blocking first
    waivers: list            # each policy waiver with its status in this evaluation
    baseline: Optional[dict]
    records: dict = field(default_factory=dict)   # key -> record (merged runs)
    status: dict = field(default_factory=dict)    # key -> pass | blocking | advisory | waived
    missing: list = field(default_factory=list)   # (check, target, allocation or None)
    checks: list = field(default_factory=list)    # check IDs in matrix order

    def as_dict(self):
        """gate.json (records stay in results.json; the inputs name and pin them)."""
        return {
            "kind": "cutover-gate", "verdict": self.verdict, "evaluated_at": self.evaluated_at,
            "today": self.today, "policy": self.policy, "inputs": self.inputs,
            "batch": self.batch, "hosts": self.hosts, "targets": self.targets,
            "waivers": self.waivers, "baseline": self.baseline,
            "reasons": [r.as_dict() for r in self.reasons],
        }

    def blocking(self):
        return [r for r in self.reasons if r.blocking]


def load_runs(paths):
    """Load RUN arguments: a dict per readable run, Unreadable for one that cannot be read."""
    out = []
    for path in paths:
        if not os.path.exists(path):
            raise CutoverError(f"{path}: no such run folder or results file")
        try:
            data = load_run(path)
        except CutoverError as e:
            out.append(Unreadable(path, str(e)))
            continue
        data["source"] = path
        out.append(data)
    return out


def evaluate(runs, policy, baseline=None, today=None, now=None):
    """Decide; runs are loaded run dicts (or Unreadable), merged as shards of one decision."""
    if not runs:
        raise CutoverError("gate: no runs given")
    if policy is None:
        policy = load_policy()
    return _Gate(policy, today or datetime.date.today(),
                 now or datetime.datetime.now(datetime.timezone.utc)).run(runs, baseline)


class _Gate:
    def __init__(self, policy, today, now):
        self.policy, self.today, self.now = policy, today, now
        self.reasons = []
        self.records = {}        # key -> record
        self.source_of = {}      # key -> source (records and collected keys)
        self.collected = set()
        self.targets = {}        # name -> {"host", "description", "sources"}
        self.facts = {}          # host -> facts
        self.inputs = []
        self.status = {}
        self.missing = []        # (check, target, allocation or None) owed without a result
        self.expected = []       # catalogue checks every target owes (suites the runs touched)
        self.waiver_uses = {}    # waiver index -> findings it forgave

    def reason(self, kind, message, **kw):
        if kw.get("target") is not None and kw.get("host") is None:
            kw["host"] = self.targets.get(kw["target"], {}).get("host")
        self.reasons.append(Reason(kind, message, **kw))

    # -- inputs ---------------------------------------------------------------------------

    def run(self, runs, baseline):
        for i, data in enumerate(runs):
            if isinstance(data, Unreadable):
                self.inputs.append({"source": data.path, "readable": False, "error": data.message})
                self.reason("unreadable", f"results unreadable: {data.message}", scope="global",
                            source=data.path)
            else:
                self.merge(data, data.get("source") or f"runs[{i}]")
        self.check_expected()
        self.judge_records()
        self.judge_expired_waivers()
        base = self.compare_baseline(baseline) if baseline is not None else None
        return self.decide(base)

    def merge(self, data, source):
        """Add one run (a shard) to the decision, and judge the run as a whole."""
        run = data["run"]
        collected = run.get("collected")
        collected_ok = isinstance(collected, list) and all(isinstance(k, str) for k in collected)
        collected = set(collected) if collected_ok else set()
        records = {key: _normalized(rec) for key, rec in index_records(data, source).items()}
        names = self.place_targets(run, records, collected, source)

        # Shards must not overlap: the same key twice means two answers to one question.
        for key in records:
            if key in self.records:
                raise CutoverError(f"{source}: result {key} is also in {self.source_of[key]}; "
                                   f"shards must not overlap")
        for key in collected & self.collected:
            raise CutoverError(f"{source}: collected key {key} is also collected in another input; "
                               f"shards must not overlap")
        for key, rec in records.items():
            self.records[key] = rec
            self.source_of[key] = source
        self.collected |= collected

        ok = digest_ok(data)
        self.inputs.append({"source": source, "readable": True, "id": run.get("id"),
                            "started": run.get("started"), "finished": run.get("finished"),
                            "complete": run.get("complete") is True, "exitstatus": run.get("exitstatus"),
                            "digest": run.get("digest"), "digest_ok": ok})

        def whole_run(kind, message):
            # A run-level problem fails each of the run's targets (so the matrix shows it).
            for name in sorted(names):
                self.reason(kind, f"{source}: {message}", target=name, source=source)
            if not names:
                self.reason(kind, f"{source}: {message}", scope="global", source=source)

        if not ok:
            whole_run("tampered", "results digest does not verify; results were altered after the run"
                      if run.get("digest") else "run has no results digest; results cannot be verified")
        if run.get("complete") is not True:
            whole_run("incomplete", f"run did not finish (complete={run.get('complete')!r}, "
                      f"exitstatus={run.get('exitstatus')!r})")
        if not collected_ok:
            whole_run("malformed", "run.collected is missing or not a list of record keys; "
                      "completeness cannot be verified")
            return
        for key in sorted(collected - set(records), key=sort_key):
            check, target, alloc = split_key(key)
            self.missing.append((check, target, alloc))
            self.reason("missing", f"{source}: {check} on {target} [{alloc}] was collected but has no result",
                        check=check, target=target, allocation=alloc, source=source)
        for key in sorted(set(records) - collected, key=sort_key):
            rec = records[key]
            self.reason("unexpected", f"{source}: result {key} was never collected; the run's record "
                        f"of what it owed and its results disagree", check=str(rec["check"]),
                        target=str(rec["target"]), allocation=rec.get("allocation"), source=source)

    def place_targets(self, run, records, collected, source):
        """Put each target of a run on its host (one target, one host); return the run's targets."""
        described = run.get("targets") if isinstance(run.get("targets"), dict) else {}
        names = set(described) | {str(r["target"]) for r in records.values()} \
            | {split_key(k)[1] for k in collected}
        for name in sorted(names):
            desc = described.get(name) if isinstance(described.get(name), dict) else {}
            host = desc.get("host") or next(
                (r.get("host") for r in records.values() if str(r["target"]) == name and r.get("host")), None)
            host = str(host or "unknown")
            known = self.targets.setdefault(name, {"host": host, "description": desc, "sources": []})
            if known["host"] != host:
                raise CutoverError(f"{source}: target {name} is on host {host}, but on {known['host']} "
                                   f"in {known['sources'][0]}; one target, one host")
            known["sources"].append(source)
            known["description"] = known["description"] or desc
        hosts = run.get("hosts") if isinstance(run.get("hosts"), dict) else {}
        for host, facts in hosts.items():
            if host in self.facts and self.facts[host] != facts:
                self.reason("note", f"{source}: host facts of {host} differ from another input's; "
                            f"the certificate shows the first", blocking=False, scope="global",
                            host=host, source=source)
            self.facts.setdefault(host, facts)
        return names

    # -- what each target owed --------------------------------------------------------------

    def check_expected(self):
        seen = {}   # target -> check IDs it collected or reported
        for key in self.collected | set(self.records):
            check, target, _ = split_key(key)
            seen.setdefault(target, set()).add(check)
        suites = {catalogue.CHECKS[c].suite for checks in seen.values() for c in checks if c in catalogue.CHECKS}
        self.expected = [c.id for c in catalogue.CHECKS.values() if c.suite in suites]
        # Pair checks (coexistence) are recorded on a pair target 'A+B' ('+' never appears in a
        # target name); a pair owes only pair suites and a single target only the others.
        pair_suites = {catalogue.CHECKS[c].suite for t, checks in seen.items() if "+" in t
                       for c in checks if c in catalogue.CHECKS}
        for target in sorted(self.targets):
            checks = seen.get(target, set())
            if not checks:
                self.reason("no-results", f"target {target} has no results at all", target=target)
                continue
            for check in sorted(checks - set(catalogue.CHECKS)):
                self.reason("unknown-check", f"{check} on {target} is not in the catalogue; "
                            f"the gate cannot judge a check it does not know", check=check, target=target)
            for check in self.expected:
                owed = (catalogue.CHECKS[check].suite in pair_suites) == ("+" in target)
                if owed and check not in checks:
                    suite = catalogue.CHECKS[check].suite
                    self.missing.append((check, target, None))
                    self.reason("not-collected", f"{check} on {target} was owed (suite {suite} ran) "
                                f"but never collected", check=check, target=target)
        if not self.targets and not any(r.kind == "unreadable" for r in self.reasons):
            self.reason("no-results", "the runs hold no targets and no results", scope="global")

    # -- outcomes, policy and waivers -------------------------------------------------------

    def valid_waiver(self, check, target, host):
        for w in self.policy.waivers_for(check, target, host):
            if not w.expired(self.today):
                self.waiver_uses[w.index] = self.waiver_uses.get(w.index, 0) + 1
                return w
        return None

    def judge_records(self):
        for key in sorted(self.records, key=sort_key):
            rec = self.records[key]
            check, target = str(rec["check"]), str(rec["target"])
            outcome = rec["outcome"]
            if outcome == "pass" or check not in catalogue.CHECKS:
                self.status[key] = "pass" if outcome == "pass" else "blocking"
                continue
            host = self.targets[target]["host"]
            blocking = self.policy.is_blocking(check)
            waiver = self.valid_waiver(check, target, host)
            what = _describe(rec)
            common = dict(check=check, target=target, allocation=rec.get("allocation"), outcome=outcome,
                          expected=rec.get("expected"), observed=rec.get("observed"),
                          source=self.source_of[key])
            if waiver:
                self.status[key] = "waived"
                self.reason("waived", f"{what} (waived by {waiver.label()}: {waiver.reason})",
                            blocking=False, waiver=waiver.as_dict(), **common)
                continue
            self.status[key] = "blocking" if blocking else "advisory"
            expired = [w for w in self.policy.waivers_for(check, target, host) if w.expired(self.today)]
            note = f"; waiver {expired[0].label()} has expired" if expired else ""
            self.reason("check" if blocking else "advisory",
                        f"{what} ({'blocking' if blocking else 'advisory'}{note})",
                        blocking=blocking, **common)

    def judge_expired_waivers(self):
        owed = {}
        for key in self.collected | set(self.records):
            check, target, _ = split_key(key)
            owed.setdefault(target, set()).add(check)
        for w in self.policy.waivers:
            if not w.expired(self.today):
                continue
            hit = False
            for target in sorted(self.targets):
                host = self.targets[target]["host"]
                checks = owed.get(target, set()) | set(self.expected)
                if any(w.matches(c, target, host) for c in checks):
                    hit = True
                    self.reason("waiver-expired", f"{w.label()} expired; renew it with a new date "
                                f"or remove it (reason was: {w.reason})",
                                check=w.check, target=target, waiver=w.as_dict())
            if not hit:
                self.reason("waiver-expired", f"{w.label()} expired and applies to nothing in these "
                            f"runs; remove it", blocking=False, scope="global", waiver=w.as_dict())

    # -- baseline -------------------------------------------------------------------------

    def compare_baseline(self, baseline):
        source = baseline.get("source") or "baseline"
        if not digest_ok(baseline):
            raise CutoverError(f"{source}: baseline digest does not verify; "
                               f"it cannot tell what got worse")
        before = index_records(baseline, source)
        if baseline["run"].get("complete") is not True:
            self.reason("note", f"{source}: the baseline run did not finish; checks it lacks count as new",
                        blocking=False, scope="global", source=source)
        out = {"source": source, "id": baseline["run"].get("id"), "digest": baseline["run"].get("digest"),
               "regression": [], "fix": [], "new": [], "vanished": []}
        for key in sorted(set(before) | set(self.records), key=sort_key):
            old, new = before.get(key), self.records.get(key)
            change = classify(old and old["outcome"], new and new["outcome"])
            if change not in out:
                continue
            rec = new or old
            entry = {"key": key, "check": str(rec["check"]), "target": str(rec["target"]),
                     "allocation": rec.get("allocation"),
                     "before": old and old["outcome"], "after": new and new["outcome"],
                     "observed_before": old and old.get("observed"),
                     "observed_after": new and new.get("observed"), "waived": False}
            if change == "regression":
                host = self.targets[entry["target"]]["host"]
                waiver = self.valid_waiver(entry["check"], entry["target"], host)
                entry["waived"] = waiver is not None
                if waiver:
                    suffix = f" (waived by {waiver.label()})"
                else:
                    suffix = "" if self.policy.is_blocking(entry["check"]) else " (advisory, but a regression blocks)"
                self.reason("regression", f"{entry['check']} on {entry['target']} [{entry['allocation'] or '-'}] "
                            f"regressed: {entry['before']} in the baseline, {entry['after']} now{suffix}",
                            blocking=waiver is None, check=entry["check"], target=entry["target"],
                            allocation=entry["allocation"], outcome=entry["after"],
                            expected=rec.get("expected"), observed=rec.get("observed"),
                            waiver=waiver.as_dict() if waiver else None, source=self.source_of.get(key))
            out[change].append(entry)
        out["regressions"], out["fixes"] = out.pop("regression"), out.pop("fix")
        return out

    # -- verdicts -------------------------------------------------------------------------

    def decide(self, baseline):
        global_block = any(r.blocking and r.scope == "global" for r in self.reasons)
        failed_targets = {r.target for r in self.reasons if r.blocking and r.scope == "target"}
        targets = {}
        for name, t in sorted(self.targets.items()):
            verdict = FAIL if global_block or name in failed_targets else PASS
            targets[name] = {"verdict": verdict, "host": t["host"], "description": t["description"],
                             "sources": t["sources"]}
        hosts = {}
        for name, t in targets.items():
            h = hosts.setdefault(t["host"], {"verdict": PASS, "targets": [], "canary": self.policy.is_canary(t["host"]),
                                             "facts": self.facts.get(t["host"], {})})
            h["targets"].append(name)
            if t["verdict"] == FAIL:
                h["verdict"] = FAIL
        for h in hosts.values():
            h["certified"] = h["verdict"] == PASS

        total, certified = len(hosts), sum(h["certified"] for h in hosts.values())
        ratio = self.policy.min_certified_ratio
        if total == 0:
            self.reason("no-hosts", "no host was tested; nothing to certify", scope="batch")
        elif Fraction(certified, total) < Fraction(str(ratio)):
            self.reason("batch-ratio", f"{certified} of {total} hosts certified "
                        f"({certified / total:.1%}); the policy needs at least {ratio:.1%}", scope="batch")
        for host, h in sorted(hosts.items()):
            if h["canary"] and not h["certified"]:
                self.reason("canary", f"canary host {host} is not certified; no blocking failure "
                            f"is allowed on a canary", scope="batch", host=host)
        verdict = FAIL if any(r.blocking and r.scope in ("global", "batch") for r in self.reasons) else PASS
        batch = {"verdict": verdict, "hosts": total, "certified": certified,
                 "ratio": (certified / total) if total else 0.0, "min_certified_ratio": ratio,
                 "canary_hosts": sorted(h for h in hosts if hosts[h]["canary"])}

        scope_order = {"global": 0, "batch": 1, "target": 2}
        reasons = sorted(self.reasons, key=lambda r: (not r.blocking, scope_order[r.scope], r.target or "",
                                                      sort_key(f"{r.check or ''}|"), r.allocation or ""))
        waivers = []
        for w in self.policy.waivers:
            status = "expired" if w.expired(self.today) else ("used" if self.waiver_uses.get(w.index) else "unused")
            waivers.append(dict(w.as_dict(), status=status, uses=self.waiver_uses.get(w.index, 0)))
        checks_seen = {split_key(k)[0] for k in self.collected | set(self.records)}
        checks = sorted(set(self.expected) | checks_seen, key=lambda c: sort_key(f"{c}|"))
        return GateResult(
            verdict=verdict, evaluated_at=self.now.isoformat(timespec="seconds"),
            today=self.today.isoformat(), policy={"source": self.policy.source, "digest": self.policy.digest},
            inputs=self.inputs, targets=targets, hosts=hosts, batch=batch, reasons=reasons,
            waivers=waivers, baseline=baseline, records=self.records, status=self.status,
            missing=self.missing, checks=checks)


def certificates(result):
    """host -> certificate: what a cutover plan needs to trust this host (or not)."""
    out = {}
    for host, h in sorted(result.hosts.items()):
        sources = sorted({s for t in h["targets"] for s in result.targets[t]["sources"]})
        out[host] = {
            "kind": "cutover-certificate",
            "host": host, "verdict": h["verdict"], "certified": h["certified"], "canary": h["canary"],
            "time": result.evaluated_at, "batch_verdict": result.verdict,
            "facts": h["facts"],
            "targets": {t: {"verdict": result.targets[t]["verdict"],
                            "description": result.targets[t]["description"],
                            # runtime versions as the run measured them (hostfacts: facts.targets)
                            "runtime": _runtime_facts(h["facts"], t)} for t in h["targets"]},
            "results": [i for i in result.inputs if i["source"] in sources],
            "policy": result.policy,
            "baseline": result.baseline and {k: result.baseline[k] for k in ("source", "id", "digest")},
            "reasons": [r.as_dict() for r in result.reasons if r.blocking and r.scope != "batch"
                        and (r.scope == "global" or r.target in h["targets"])],
        }
    return out


def _normalized(rec):
    """A record whose identity fields are strings, however the file spelled them."""
    def text(value):
        return str(value) if value else None     # as record_key() reads it
    return dict(rec, check=str(rec["check"]), target=str(rec["target"]),
                allocation=text(rec.get("allocation")), host=text(rec.get("host")))


def _runtime_facts(facts, target):
    per_target = facts.get("targets") if isinstance(facts, dict) else None
    return per_target.get(target) if isinstance(per_target, dict) else None


def given(value):
    """Is an expected/observed value worth showing? (the recorder writes {} for none)"""
    return value is not None and not (isinstance(value, (dict, list, str)) and not value)


def _describe(rec):
    where = f"{rec['check']} on {rec['target']} [{rec.get('allocation') or '-'}]"
    if rec["outcome"] == "skip":
        text = f"{where}: skipped, but the check was owed (a skip is not a pass)"
    else:
        text = f"{where}: {rec['outcome']}"
    if given(rec.get("expected")) or given(rec.get("observed")):
        text += f"; expected {show(rec.get('expected'), 60)}, observed {show(rec.get('observed'), 60)}"
    if rec.get("message"):
        text += f"; {show(rec['message'], 120)}"
    return text
