"""Allure extras and the offline HTML report of a run folder.

allure-pytest writes one result per test; Cutover adds what a person filters and trends by:
environment.properties from the host facts, categories.json that separates runtime
non-conformance (failed checks) from harness errors (broken) and unsupported features
(skipped 'unsupported: ...'), and the history of the previous report so trends show.
The HTML comes from Allure 2 (npm allure-commandline, Java 17), offline, no analytics.
"""
import json
import os
import shutil
import subprocess

from cutover.errors import CutoverError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
ALLURE = os.path.join(REPO, "tools", "node_modules", ".bin", "allure")

# Allure puts a result in every category that matches (status, then the whole message as a
# Java regex), so these are disjoint and follow results.json's outcomes: only a CheckFailed
# (the recorder's "the runtime broke the promise") is non-conformance (fail); any other
# failure, an AssertionError in harness code included, is a harness error (error).
_CHECK_FAILED = r"(fixtures\.recorder\.)?CheckFailed: "
_UNSUPPORTED = r".*[Uu]nsupported: "
CATEGORIES = [
    {"name": "Runtime non-conformance (a T4 promise is broken)", "matchedStatuses": ["failed"],
     "messageRegex": f"(?s){_CHECK_FAILED}.*"},
    {"name": "Harness errors (unreachable, timeout, setup, teardown)", "matchedStatuses": ["broken", "failed"],
     "messageRegex": f"(?s)(?!{_CHECK_FAILED}).*"},
    {"name": "Unsupported by the target", "matchedStatuses": ["skipped"], "messageRegex": f"(?s){_UNSUPPORTED}.*"},
    {"name": "Skipped", "matchedStatuses": ["skipped"], "messageRegex": f"(?s)(?!{_UNSUPPORTED}).*"},
]
TARGET_FACTS = ("runtime", "runtime_version", "oci_runtime", "storage_driver", "live_restore",
                "cgroup_version", "lxcfs_mount", "error")


def facts(hosts):
    """[(key, value)] of host facts, readable: "<host> <fact>" and "<target> <fact>"."""
    out = []
    for host, hf in sorted((hosts or {}).items()):
        if not isinstance(hf, dict):
            out.append((f"{host} facts", _flat(hf)))
            continue
        for k, v in sorted(hf.items()):
            if k == "targets" and isinstance(v, dict):
                for tname, tf in sorted(v.items()):
                    for tk in TARGET_FACTS:
                        if isinstance(tf, dict) and tk in tf:
                            out.append((f"{tname} {tk}", _flat(tf[tk])))
            else:
                out.append((f"{host} {k}", _flat(v)))
    return out


def _flat(value):
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)
    return " ".join(str(text).split())


def _escape(text, key):
    """Java Properties escaping (java.util.Properties.load, which Allure 2 uses, reads
    ISO-8859-1): backslash, separators (= : and, in keys, space), comment starters and line
    breaks are escaped, anything outside Latin-1 printable ASCII as \\uXXXX."""
    out = []
    for i, ch in enumerate(text):
        if ch == "\\":
            out.append("\\\\")
        elif ch in "=:#!" or (ch == " " and (key or i == 0)):
            out.append("\\" + ch)
        elif ch == "\n":
            out.append("\\n")
        elif ch == "\r":
            out.append("\\r")
        elif ch == "\t":
            out.append("\\t")
        elif ch == "\f":
            out.append("\\f")
        elif not 0x20 <= ord(ch) < 0x7f:
            out.extend(f"\\u{unit:04x}" for unit in _utf16(ch))
        else:
            out.append(ch)
    return "".join(out)


def _utf16(ch):
    data = ch.encode("utf-16-be")
    return [int.from_bytes(data[i:i + 2], "big") for i in range(0, len(data), 2)]


def environment(hosts):
    """environment.properties from host facts: one "<host> <fact>" = value line each."""
    return "".join(f"{_escape(k, True)}={_escape(v, False)}\n" for k, v in facts(hosts))


def write_extras(allure_dir, hosts):
    if not allure_dir or not os.path.isdir(allure_dir):
        return
    with open(os.path.join(allure_dir, "environment.properties"), "w") as f:
        f.write(environment(hosts))
    with open(os.path.join(allure_dir, "categories.json"), "w") as f:
        json.dump(CATEGORIES, f, indent=1)


def html(run_dir, history_dir=None, timeout=300):
    """Generate <run>/allure-report/index.html (single file); carry history from history_dir."""
    results = os.path.join(run_dir, "allure-results")
    if not os.path.isdir(results):
        raise CutoverError(f"{run_dir}: no allure-results folder (was it written by 'cutover run'?)")
    if not os.path.exists(ALLURE):
        raise CutoverError(f"Allure is not installed at {ALLURE}: run ./setup.sh (needs npm and Java 17)")
    history_dir = history_dir or os.path.join(os.path.dirname(os.path.abspath(run_dir)), ".allure-history")
    if os.path.isdir(history_dir):
        shutil.copytree(history_dir, os.path.join(results, "history"), dirs_exist_ok=True)
    report = os.path.join(run_dir, "allure-report")
    env = dict(os.environ, ALLURE_NO_ANALYTICS="true")
    res = subprocess.run([ALLURE, "generate", results, "-o", report, "--clean", "--single-file"],
                         capture_output=True, text=True, timeout=timeout, env=env)
    if res.returncode != 0:
        raise CutoverError(f"allure generate failed ({res.returncode}): {(res.stderr or res.stdout).strip()[:300]}")
    # The single-file report embeds its data; keep the history for the next run's trend.
    multi = os.path.join(run_dir, ".allure-data")
    subprocess.run([ALLURE, "generate", results, "-o", multi, "--clean"], capture_output=True, text=True,
                   timeout=timeout, env=env)
    if os.path.isdir(os.path.join(multi, "history")):
        shutil.copytree(os.path.join(multi, "history"), history_dir, dirs_exist_ok=True)
    shutil.rmtree(multi, ignore_errors=True)
    return os.path.join(report, "index.html")
