"""results.json: what a run observed, one record per check x target x allocation.

Layout (documented in the README):
    {"run": {...metadata...}, "results": [record, ...]}

A record has at least: check, title, promise, severity, suite, target, host, allocation,
outcome (one of OUTCOMES), expected, observed, message, nodeid, duration.

run has: id, started, finished, complete (False until the session finished normally),
exitstatus, argv, targets (name -> target description), allocations, hosts (host -> facts),
collected (the record keys the run meant to produce), incomplete_hosts (host -> why the
end-of-run checks could not reach it), shard (when the run is one shard of a fleet), and
digest: sha256 of the canonical JSON of the whole document except the digest itself, so the
gate can tell when anything -- a record, `complete`, `collected`, `leaks`, `hosts` -- was
altered after the run. An unkeyed hash detects truncation and edits, not a deliberate forger
(who can recompute it): that would need a signing key, which is out of scope.

Writes are atomic (temp file + fsync + rename), so a full disk or a crash never leaves a
half-written results.json behind: the previous complete file, or none, stays.
"""
import hashlib
import json
import os
import re
import tempfile

from cutover.errors import CutoverError

OUTCOMES = ("pass", "fail", "error", "skip", "unsupported")
# 2: the digest covers the whole document (1 covered only the results list).
SCHEMA_VERSION = 2
# Deeper than any results file the harness writes; deeper input is refused before json
# (or the digest's canonical form) can recurse out of the interpreter's stack.
MAX_DEPTH = 64


def record_key(rec):
    """The identity of a record within a run: check x target x allocation."""
    return f"{rec['check']}|{rec['target']}|{rec.get('allocation') or '-'}"


def digest(run, results):
    """sha256 over the canonical JSON of {"run": run without its digest, "results": results}."""
    doc = {"run": {k: v for k, v in run.items() if k != "digest"}, "results": results}
    # Round-trip first, so the digest of what is written equals the digest of what is read
    # back (tuples become lists, non-string keys strings, objects their str()).
    plain = json.loads(json.dumps(doc, default=str))
    canon = json.dumps(plain, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return "sha256:" + hashlib.sha256(canon.encode("ascii")).hexdigest()


def write_text_atomic(path, text, mode=0o644):
    """Write text to path atomically (temp file + fsync + rename); CutoverError when it cannot."""
    directory = os.path.dirname(os.path.abspath(path))
    try:
        os.makedirs(directory, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, mode)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
    except OSError as e:
        raise CutoverError(f"cannot write {path}: {e.strerror or e}") from None


def write_atomic(path, data):
    """Write JSON to path atomically; raise CutoverError (one line) when it cannot."""
    write_text_atomic(path, json.dumps(data, indent=1, sort_keys=False, default=str) + "\n")


def write_run(path, run_meta, results):
    run_meta = dict(run_meta, schema=SCHEMA_VERSION)
    run_meta["digest"] = digest(run_meta, results)
    write_atomic(path, {"run": run_meta, "results": results})


def load_run(path):
    """Load results.json (a file or a run folder); CutoverError on anything malformed."""
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except FileNotFoundError:
        raise CutoverError(f"{path}: no such results file") from None
    except OSError as e:
        raise CutoverError(f"{path}: cannot read: {e.strerror}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        raise CutoverError(f"{path}: not UTF-8 text (byte {e.start}); truncated or corrupt?") from None
    depth = _depth(text)
    if depth > MAX_DEPTH:
        raise CutoverError(f"{path}: nested {depth} levels deep (at most {MAX_DEPTH}); not a Cutover results file")
    try:
        data = json.loads(text)
    except json.JSONDecodeError as e:
        raise CutoverError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); truncated or corrupt?") from None
    except RecursionError:
        raise CutoverError(f"{path}: nested too deeply; not a Cutover results file") from None
    if not isinstance(data, dict) or not isinstance(data.get("run"), dict) \
            or not isinstance(data.get("results"), list):
        raise CutoverError(f"{path}: not a Cutover results file (needs 'run' and 'results')")
    for i, rec in enumerate(data["results"]):
        if not isinstance(rec, dict):
            raise CutoverError(f"{path}: results[{i}] is not an object")
        for field in ("check", "target", "outcome"):
            if field not in rec:
                raise CutoverError(f"{path}: results[{i}] has no '{field}'")
        if rec["outcome"] not in OUTCOMES:
            raise CutoverError(f"{path}: results[{i}].outcome '{rec['outcome']}' is not one of {', '.join(OUTCOMES)}")
    return data


_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[\[\]{}]")


def _depth(text):
    """How deeply JSON text nests brackets (strings skipped); no recursion."""
    depth = deepest = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        if m.group() in "[{":
            depth += 1
            deepest = max(deepest, depth)
        else:
            depth -= 1
    return deepest


def digest_ok(data):
    return data["run"].get("digest") == digest(data["run"], data["results"])
