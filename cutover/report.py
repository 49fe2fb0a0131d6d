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

CATEGORIES = [
    {"name": "Runtime non-conformance (a T4 promise is broken)", "matchedStatuses": ["failed"]},
    {"name": "Unsupported by the target", "matchedStatuses": ["skipped"], "messageRegex": ".*unsupported:.*"},
    {"name": "Harness errors (unreachable, timeout, setup)", "matchedStatuses": ["broken"]},
    {"name": "Skipped", "matchedStatuses": ["skipped"]},
]


def environment(hosts):
    """Flat key=value lines from host facts: host.<url>.<fact> and target.<name>.<fact>."""
    lines = []
    for host, facts in sorted((hosts or {}).items()):
        for k, v in sorted(facts.items()):
            if k == "targets":
                for tname, tf in sorted(v.items()):
                    for tk in ("runtime", "runtime_version", "oci_runtime", "storage_driver", "live_restore",
                               "cgroup_version", "lxcfs_mount", "error"):
                        if tk in tf:
                            lines.append(f"target.{tname}.{tk}={tf[tk]}")
            else:
                lines.append(f"host.{host}.{k}={v}")
    return "\n".join(l.replace("\n", " ") for l in lines) + "\n"


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
