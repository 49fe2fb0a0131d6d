"""results.json: what a run observed, one record per check x target x allocation.

Layout (documented in the README):
    {"run": {...metadata...}, "results": [record, ...]}

A record has at least: check, title, promise, severity, suite, target, host, allocation,
outcome (one of OUTCOMES), expected, observed, message, nodeid, duration.

run has: id, started, finished, complete (False until the session finished normally),
exitstatus, argv, targets (name -> target description), allocations, hosts (host -> facts),
collected (the record keys the run meant to produce), digest (sha256 of the canonical
results list, so the gate can tell when results were altered after the run).

Writes are atomic (temp file + fsync + rename), so a full disk or a crash never leaves a
half-written results.json behind: the previous complete file, or none, stays.
"""
import hashlib
import json
import os
import tempfile

from cutover.errors import CutoverError

OUTCOMES = ("pass", "fail", "error", "skip", "unsupported")
SCHEMA_VERSION = 1


def record_key(rec):
    """The identity of a record within a run: check x target x allocation."""
    return f"{rec['check']}|{rec['target']}|{rec.get('allocation') or '-'}"


def digest(results):
    canon = json.dumps(results, sort_keys=True, separators=(",", ":"), default=str)
    return "sha256:" + hashlib.sha256(canon.encode()).hexdigest()


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
    run_meta = dict(run_meta, schema=SCHEMA_VERSION, digest=digest(results))
    write_atomic(path, {"run": run_meta, "results": results})


def load_run(path):
    """Load results.json (a file or a run folder); CutoverError on anything malformed."""
    if os.path.isdir(path):
        path = os.path.join(path, "results.json")
    try:
        with open(path) as f:
            data = json.load(f)
    except FileNotFoundError:
        raise CutoverError(f"{path}: no such results file") from None
    except json.JSONDecodeError as e:
        raise CutoverError(f"{path}: not valid JSON (line {e.lineno}: {e.msg}); truncated or corrupt?") from None
    except OSError as e:
        raise CutoverError(f"{path}: cannot read: {e.strerror}") from None
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


def digest_ok(data):
    return data["run"].get("digest") == digest(data["results"])
