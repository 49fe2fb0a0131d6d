"""The `cutover` command: lab, checks, run (and gate/diff from cutover.gate_cli).

Exit codes: 0 all passed / PASS, 1 a check failed or the run is incomplete / FAIL,
2 bad input (one line on stderr, never a traceback).
"""
import argparse
import datetime
import json
import os
import subprocess
import sys

from cutover import allocations, catalogue, targets
from cutover.errors import CutoverError

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's usage dump is noise in CI logs: one line, exit 2.
        self.exit(2, f"cutover: {message}\n")


def cmd_lab(args):
    from cutover.lab.lab import Lab
    lab = Lab(args.lab)
    if args.action == "up":
        lab.up()
    elif args.action == "down":
        lab.down()
    elif args.action == "start":
        if not args.name:
            raise CutoverError("lab start: name the daemon to start (e.g. docker)")
        lab.start_daemon(args.name)
    else:
        st = lab.status()
        if args.json:
            print(json.dumps(st, indent=1))
        else:
            print(f"lab {st['root']}")
            for d in st["daemons"]:
                print(f"  {d['name']:<14} {d['kind']:<8} {'running pid ' + str(d['pid']) if d['running'] else 'stopped'}")
            print(f"  targets: {st['targets'] or '(none: run cutover lab up)'}")
            print(f"  mounts under the lab: {len(st['mounts'])}")
        return 0 if all(d["running"] for d in st["daemons"]) else 1
    return 0


def cmd_checks(args):
    rows = sorted(catalogue.CHECKS.values(), key=lambda c: (c.suite, c.id))
    if args.json:
        print(json.dumps([c.as_dict() for c in rows], indent=1))
        return 0
    w = max(len(c.id) for c in rows)
    suite = None
    for c in rows:
        if c.suite != suite:
            suite = c.suite
            print(f"\n{suite}")
        print(f"  {c.id:<{w}}  {c.severity:<8}  {c.promise:<20} {c.title}")
    print(f"\n{len(rows)} checks")
    return 0


def _default_out():
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return os.path.join("out", stamp)


def results_exit(out):
    """0 only when the run completed and every record passed."""
    from cutover import results
    data = results.load_run(out)
    recs = data["results"]
    counts = {}
    for r in recs:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    complete = data["run"].get("complete") and recs
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no results"
    verdict = "ALL PASSED" if complete and counts.get("pass") == len(recs) else \
        ("INCOMPLETE" if not complete else "NOT CONFORMANT")
    print(f"cutover: {verdict}: {summary} ({len(recs)} records) -> {out}/results.json")
    return 0 if verdict == "ALL PASSED" else 1


def cmd_run(args, passthrough):
    from cutover.lab.lab import Lab
    tpath = args.targets or Lab(args.lab).targets_path
    ts = targets.select(targets.load(tpath), args.target)        # bad input -> exit 2 here
    allocations.parse_spec(args.allocations, host_cpus=os.cpu_count())
    out = args.out or _default_out()
    os.makedirs(out, exist_ok=True)
    argv = [sys.executable, "-m", "pytest", os.path.join(REPO, "conformance"), "--rootdir", REPO,
            "-c", os.path.join(REPO, "pytest.ini"),
            "--targets", os.path.abspath(tpath), "--allocations", args.allocations,
            "--out", os.path.abspath(out), "--junitxml", os.path.join(os.path.abspath(out), "junit.xml"),
            "--alluredir", os.path.join(os.path.abspath(out), "allure-results"), "--tb=line", "-q"]
    if args.target:
        argv += ["--target", args.target]
    if any(a == "-n" or a.startswith("-n") or a.startswith("--numprocesses") for a in passthrough):
        argv += ["--dist", "loadgroup"]
    argv += passthrough
    env = dict(os.environ)
    if args.lab:
        env["CUTOVER_LAB"] = os.path.abspath(args.lab)
    print(f"cutover: running {len(ts)} target(s) -> {out}", file=sys.stderr, flush=True)
    rc = subprocess.call(argv, cwd=REPO, env=env)
    if rc in (4, 5):      # pytest usage error / nothing collected: the input selected nothing
        print(f"cutover: pytest {'usage error' if rc == 4 else 'collected no checks'} (exit {rc})", file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(out, "results.json")):
        print(f"cutover: the run wrote no results (pytest exit {rc}): INCOMPLETE", file=sys.stderr)
        return 1
    return results_exit(out)


def build_parser():
    p = _Parser(prog="cutover", description="Certify container runtimes against T4's promises.")
    p.add_argument("--lab", default=None, help="lab directory (default $CUTOVER_LAB or /var/lib/cutover-lab)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    lab = sub.add_parser("lab", help="bring the local lab up or down, or show it")
    lab.add_argument("action", choices=["up", "down", "status", "start"])
    lab.add_argument("name", nargs="?", help="daemon name for 'start'")
    lab.add_argument("--json", action="store_true")
    lab.set_defaults(func=cmd_lab)

    ch = sub.add_parser("checks", help="print the catalogue of checks")
    ch.add_argument("--json", action="store_true")
    ch.set_defaults(func=cmd_checks)

    run = sub.add_parser("run", help="run the conformance suites; extra arguments go to pytest")
    run.add_argument("--targets", help="targets YAML (default: the lab's)")
    run.add_argument("--target", help="comma-separated target names (default: all)")
    run.add_argument("--out", help="output folder (default: out/<timestamp>)")
    run.add_argument("--allocations", default=allocations.DEFAULT_SPEC,
                     help="allocations spec (default: %(default)s)")
    run.set_defaults(func=cmd_run, passthrough=True)

    try:
        from cutover import gate_cli
        gate_cli.add_parsers(sub)
    except ImportError:
        pass
    return p


def main(argv=None):
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra and not getattr(args, "passthrough", False):
            parser.error(f"unrecognized arguments: {' '.join(extra)}")
        if getattr(args, "passthrough", False):
            return args.func(args, extra)
        return args.func(args)
    except CutoverError as e:
        print(f"cutover: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print("cutover: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
