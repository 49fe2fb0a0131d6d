"""The gate: one or more runs + a policy (+ a baseline) -> PASS or FAIL per target, host, batch.

Pure logic over results files; it knows nothing of runtimes. Every decision leaves a Reason,
and the gate fails closed: what it cannot verify counts against the cutover.

- A record that did not pass (fail, error, unsupported, or skip: a skip is not a pass for a
  check the run owed) fails its target when the policy says the check is blocking, unless a
  waiver that has not expired covers it. Advisory non-passes are reported, not blocking.
- An expired waiver fails every target it would apply to (its check pattern matches a check
  the target owed), even if the check passes now: its owner must renew or delete it. An
  expired waiver that applies to nothing in these runs is only noted.
- Completeness, per run: run.complete must be true, the digest (over the whole document)
  must verify, every key in run.collected needs a result and every result must have been
  collected. A host the run's end-of-run checks could not reach (run.incomplete_hosts)
  fails that host's targets only, so a batch rule can absorb one dead host. Across the
  merged runs: every target owes every catalogue check of each suite the runs touched (so a
  deselected check is caught), and a target without any result fails. Unknown check IDs
  fail. A check recorded under allocations must have run under at least the policy's
  min_allocations of them (a runtime that hard-codes one number passes under one).
- Shards: runs that record `run.shard` (cutover run --shard K/N) must be all N shards of one
  fleet, each once; a missing, repeated or foreign shard fails the batch (closed), naming
  the hosts nobody certified. Runs split any other way (--host, --ansible-group) carry no
  such record: the gate cannot know what a missing one would have held.
- A results file that cannot be read (truncated, corrupt, missing in an existing run folder)
  is a FAIL with reason "unreadable", not bad input: a crashed run must stop a cutover. Its
  targets are unknown, so it fails every target, host and the batch. A RUN path that does
  not exist at all is bad input (a typo), as is a broken baseline, a duplicate record key
  across shards, or one target placed on two hosts.
- Baseline: regressions (pass -> non-pass) block even for advisory checks unless waived;
  a record present in the baseline and absent now (a check, an allocation or a whole
  target) blocks too while the catalogue still has the check, unless waived; one retired
  from the catalogue, fixes and new checks are listed.
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
    judged_on: dict          # {"date", "overridden", "system_date"}: what waivers were judged against
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
            "today": self.today, "judged_on": self.judged_on, "policy": self.policy, "inputs": self.inputs,
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
    now = now or datetime.datetime.now(datetime.timezone.utc)
    # A date given by the caller (--today) is recorded as such in gate.json, the certificates
    # and the summary: it decides which waivers hold, so a reader must see it was not today.
    judged_on = {"date": (today or now.date()).isoformat(), "overridden": today is not None,
                 "system_date": now.date().isoformat()}
    return _Gate(policy, today or now.date(), now, judged_on).run(runs, baseline)


class _Gate:
    def __init__(self, policy, today, now, judged_on):
        self.policy, self.today, self.now, self.judged_on = policy, today, now, judged_on
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
        self.shards = []         # (source, shard record) of runs that are shards of a fleet
        self.single_allocation = set()   # checks a run marked as under one allocation by design

    def reason(self, kind, message, **kw):
        if kw.get("target") is not None and kw.get("host") is None:
            kw["host"] = self.targets.get(kw["target"], {}).get("host")
        self.reasons.append(Reason(kind, message, **kw))

    # -- inputs ---------------------------------------------------------------------------

    def run(self, runs, baseline):
        repeated = self.repeated_shards(runs)
        for i, data in enumerate(runs):
            if isinstance(data, Unreadable):
                self.inputs.append({"source": data.path, "readable": False, "error": data.message})
                self.reason("unreadable", f"results unreadable: {data.message}", scope="global",
                            source=data.path)
            elif i in repeated:
                source = data.get("source") or f"runs[{i}]"
                self.inputs.append({"source": source, "readable": True, "id": data["run"].get("id"),
                                    "merged": False, "shard": data["run"].get("shard")})
            else:
                self.merge(data, data.get("source") or f"runs[{i}]")
        self.check_shards()
        self.check_expected()
        self.check_allocations()
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
        dead = run.get("incomplete_hosts", {})
        dead_ok = isinstance(dead, dict) and all(isinstance(h, str) for h in dead)
        self.inputs.append({"source": source, "readable": True, "merged": True, "id": run.get("id"),
                            "started": run.get("started"), "finished": run.get("finished"),
                            "complete": run.get("complete") is True, "exitstatus": run.get("exitstatus"),
                            "incomplete_hosts": sorted(dead) if dead_ok else None,
                            "shard": run.get("shard"), "digest": run.get("digest"), "digest_ok": ok})

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
            leaks = run.get("leaks")
            leaked = f", {len(leaks)} leaked object(s)" if isinstance(leaks, list) and leaks else ""
            whole_run("incomplete", f"run did not finish (complete={run.get('complete')!r}, "
                      f"exitstatus={run.get('exitstatus')!r}{leaked})")
        if not dead_ok:
            whole_run("malformed", "run.incomplete_hosts is not a mapping of host to reason")
        else:
            self.judge_dead_hosts(dead, names, source)
        single = run.get("single_allocation", [])
        if isinstance(single, list) and all(isinstance(c, str) for c in single):
            self.single_allocation |= set(single)
        else:
            whole_run("malformed", "run.single_allocation is not a list of check IDs")
        if "shard" in run:
            shard = _shard(run["shard"])
            if shard is None:
                whole_run("malformed", "run.shard is not {index, count, fleet_hosts}; "
                          "the batch cannot tell which shards are missing")
            else:
                self.shards.append((source, shard))
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

    def judge_dead_hosts(self, dead, names, source):
        """A host the run could not finish checking (its leak check could not reach it) fails
        its own targets of this run; the run's other hosts keep their results."""
        for host, why in sorted(dead.items()):
            mine = sorted(n for n in names if self.targets[n]["host"] == host)
            for name in mine:
                self.reason("host-incomplete", f"{source}: the run could not finish checking host {host} "
                            f"({show(why, 200)}); its targets cannot be certified", target=name,
                            host=host, source=source)
            if not mine:
                self.reason("note", f"{source}: host {host} is marked incomplete ({show(why, 200)}) "
                            f"but holds none of the run's targets", blocking=False, scope="global",
                            host=host, source=source)

    # -- shards ---------------------------------------------------------------------------

    @staticmethod
    def repeated_shards(runs):
        """Indexes of runs claiming a shard an earlier run already claimed: not merged."""
        seen, out = set(), set()
        for i, data in enumerate(runs):
            if isinstance(data, Unreadable):
                continue
            shard = _shard(data["run"].get("shard"))
            if shard is None:
                continue
            key = (shard["index"], shard["count"], tuple(shard["fleet_hosts"]))
            if key in seen:
                out.add(i)
            seen.add(key)
        return out

    def check_shards(self):
        """Sharded runs must be every shard 1..N of one fleet, each once: fail the batch if not."""
        skipped = [i for i in self.inputs if i.get("merged") is False]
        for i in skipped:
            s = i["shard"]
            self.reason("shard-repeated", f"{i['source']} claims shard {s['index']}/{s['count']}, which another "
                        f"input already holds; two runs answered for the same hosts (not merged)",
                        scope="batch", source=i["source"])
        if not self.shards:
            return
        fleets = {}
        for source, s in self.shards:
            fleets.setdefault((s["count"], tuple(s["fleet_hosts"])), []).append((source, s))
        if len(fleets) > 1:
            what = "; ".join(f"{len(v)} run(s) of {n} shards over {len(h)} hosts ({v[0][0]})"
                             for (n, h), v in sorted(fleets.items()))
            self.reason("shard-mismatch", f"the shards are of different fleets or shardings: {what}; "
                        f"every runner must use the same targets file and the same N", scope="batch")
        for (count, fleet_hosts), members in sorted(fleets.items()):
            have = {s["index"] for _, s in members}
            for k in range(1, count + 1):
                if k not in have:
                    owed = list(fleet_hosts[k - 1::count])
                    self.reason("shard-missing", f"shard {k}/{count} is missing: no input certified its "
                                f"{len(owed)} host(s) ({_few(owed)})", scope="batch")
            certified = {t["host"] for t in self.targets.values()}
            for source, s in members:
                mine = set(fleet_hosts[s["index"] - 1::count])
                for host in sorted(set(s.get("hosts") or ()) - mine):
                    self.reason("shard-mismatch", f"{source}: shard {s['index']}/{count} holds host {host}, "
                                f"which is not in its share of the fleet", scope="batch", host=host,
                                source=source)
                lost = sorted(h for h in mine if h not in certified)
                if lost:
                    self.reason("shard-missing", f"{source}: shard {s['index']}/{count} owes host(s) "
                                f"{_few(lost)} but has no target on them", scope="batch", source=source)

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

    def check_allocations(self):
        """A check the run parametrized by allocation must have run under several of them:
        under one, a runtime that hard-codes the expected number passes (DESIGN: Allocation).
        Scenario checks the harness runs under its first allocation by design (marked
        one_allocation; the run lists them in run.single_allocation) are left out."""
        need = self.policy.min_allocations
        under = {}   # (check, target) -> allocations it was collected or reported under
        for key in self.collected | set(self.records):
            check, target, alloc = split_key(key)
            if alloc != "-":
                under.setdefault((check, target), set()).add(alloc)
        for (check, target), allocs in sorted(under.items(), key=lambda kv: sort_key(f"{kv[0][0]}|{kv[0][1]}|")):
            if len(allocs) < need and target in self.targets and check not in self.single_allocation:
                self.reason("allocations", f"{check} on {target} ran under {len(allocs)} allocation(s) "
                            f"({', '.join(sorted(allocs))}); the policy needs at least {need}, so that a "
                            f"runtime that hard-codes one number cannot pass", check=check, target=target)

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
            if change == "vanished":
                self.judge_vanished(entry, old, baseline)
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

    def judge_vanished(self, entry, old, baseline):
        """In the baseline, absent now: it blocks while the catalogue still has the check (a
        target or a check that silently stopped being run is not a pass), unless waived."""
        check, target = entry["check"], entry["target"]
        if check not in catalogue.CHECKS:
            entry["retired"] = True
            return
        if target not in self.targets:
            # A whole target dropped out of the candidate: show it, failed, on its old host.
            base_targets = baseline["run"].get("targets")
            desc = base_targets.get(target) if isinstance(base_targets, dict) else None
            host = str((desc.get("host") if isinstance(desc, dict) else None) or old.get("host") or "unknown")
            self.targets[target] = {"host": host, "description": desc if isinstance(desc, dict) else {},
                                    "sources": [], "vanished": True}
        host = self.targets[target]["host"]
        waiver = self.valid_waiver(check, target, host)
        entry["waived"] = waiver is not None
        where = f"{check} on {target} [{entry['allocation'] or '-'}]"
        if waiver:
            self.reason("waived", f"{where} is in the baseline ({entry['before']}) but not in this run "
                        f"(waived by {waiver.label()}: {waiver.reason})", blocking=False, check=check,
                        target=target, allocation=entry["allocation"], waiver=waiver.as_dict())
        else:
            self.reason("vanished", f"{where} is in the baseline ({entry['before']}) but not in this run, "
                        f"and the catalogue still has the check", check=check, target=target,
                        allocation=entry["allocation"], outcome=None)

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
            today=self.today.isoformat(), judged_on=self.judged_on, policy={"source": self.policy.source, "digest": self.policy.digest},
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
            "time": result.evaluated_at, "judged_on": result.judged_on, "batch_verdict": result.verdict,
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


def _shard(value):
    """run.shard as the recorder writes it, or None when it is not that shape."""
    if not isinstance(value, dict):
        return None
    index, count, hosts = value.get("index"), value.get("count"), value.get("fleet_hosts")
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in (index, count)) \
            or not 1 <= index <= count or not isinstance(hosts, list) \
            or not all(isinstance(h, str) for h in hosts) or len(hosts) < count:
        return None
    mine = value.get("hosts", [])
    if not isinstance(mine, list) or not all(isinstance(h, str) for h in mine):
        return None
    return {"index": index, "count": count, "fleet_hosts": sorted(hosts), "hosts": mine}


def _few(items, n=5):
    items = list(items)
    return ", ".join(items[:n]) + (f" and {len(items) - n} more" if len(items) > n else "")


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
