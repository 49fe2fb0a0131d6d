"""The `cutover` command: lab, checks, run (and gate/diff from cutover.gate_cli).

Exit codes: 0 all passed / PASS, 1 a check failed or the run is incomplete / FAIL,
2 bad input (one line on stderr, never a traceback).
"""
import argparse
import datetime
import json
import os
import secrets
import subprocess
import sys

from cutover import allocations, catalogue, quota, targets
from cutover.errors import CutoverError, seconds

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        # argparse's usage dump is noise in CI logs: one line, exit 2.
        self.exit(2, f"cutover: {message}\n")


def cmd_lab(args):
    from cutover.lab.lab import Lab
    lab = Lab(args.lab)
    if args.action == "up":
        if args.host_variant and args.hosts is None:
            raise CutoverError("lab up: --host-variant needs --hosts N")
        if args.guests is not None:
            from cutover.lab.guests import parse_specs
            parse_specs(args.guests)          # bad input: one line, before anything starts
        lab.up(hosts=args.hosts, host_variants=args.host_variant, release=args.release, guests=args.guests)
    elif args.action == "down":
        lab.down()
    elif args.action == "start":
        if not args.name:
            raise CutoverError("lab start: name the daemon to start (e.g. docker)")
        lab.start_daemon(args.name, variant=args.variant)
    elif args.action == "signal":       # daemon events of the lifecycle suite
        if not args.name or not args.signal:
            raise CutoverError("lab signal: name the daemon and the signal (e.g. docker TERM)")
        lab.signal_daemon(args.name, args.signal)
    elif args.action == "kill-containerd":
        if not args.name:
            raise CutoverError("lab kill-containerd: name the dockerd (e.g. docker)")
        lab.kill_containerd(args.name)
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
            print(f"  loop devices of the lab: {len(st.get('loop_devices') or [])}")
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


def _new_run_id():
    # The same form as fixtures/options.py makes for plain pytest runs.
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ") + "-" + secrets.token_hex(3)


def results_exit(out, run_id=None, pytest_rc=None):
    """0 only when this run (run_id) completed and every record passed.

    The results must be this run's own (a file another run left is never read as ours), and
    pytest must have ended normally (0 or 1): an internal error (3), an interruption (2) or a
    crash is an incomplete run whatever results.json says.
    """
    from cutover import results
    try:
        data = results.load_run(out)
    except CutoverError as e:
        print(f"cutover: INCOMPLETE: results unreadable: {e}", file=sys.stderr)
        return 1
    if run_id is not None and data["run"].get("id") != run_id:
        print(f"cutover: INCOMPLETE: {out}/results.json is run {data['run'].get('id')!r}'s, not this run's "
              f"({run_id}): this run wrote no results (pytest exit {pytest_rc})", file=sys.stderr)
        return 1
    recs = data["results"]
    counts = {}
    for r in recs:
        counts[r["outcome"]] = counts.get(r["outcome"], 0) + 1
    complete = data["run"].get("complete") and recs and pytest_rc in (None, 0, 1)
    summary = ", ".join(f"{n} {o}" for o, n in sorted(counts.items())) or "no results"
    if pytest_rc not in (None, 0, 1):
        summary += f"; pytest exit {pytest_rc}"
    verdict = "ALL PASSED" if complete and counts.get("pass") == len(recs) else \
        ("INCOMPLETE" if not complete else "NOT CONFORMANT")
    print(f"cutover: {verdict}: {summary} ({len(recs)} records) -> {out}/results.json")
    return 0 if verdict == "ALL PASSED" else 1


def _refuse_previous_run(out):
    """An output folder holds one run: a previous run's results are never mixed with, or read
    as, this run's (a run that then failed to write would otherwise report the old verdict)."""
    old = os.path.join(out, "results.json")
    if os.path.lexists(old):
        raise CutoverError(f"--out {out} already holds a run's results.json: give a new folder (or remove it)")


def cmd_run(args, passthrough):
    from cutover.lab.lab import Lab
    tpath = args.targets or Lab(args.lab).targets_path
    ts = targets.select(targets.load(tpath), args.target)        # bad input -> exit 2 here
    if args.skip_controls:
        # Certify real configurations only: controls exist to prove the checks can fail.
        ts = {n: t for n, t in ts.items() if not t.control}
        args.target = ",".join(ts) or None
    from cutover import fleet
    ts = fleet.select(ts, hosts=args.host, shard=args.shard, ansible_group=args.ansible_group)
    allocations.parse_spec(args.allocations, host_cpus=os.cpu_count())
    quota.parse(args.quotas)
    out = args.out or _default_out()
    _refuse_previous_run(out)
    os.makedirs(out, exist_ok=True)
    _require_space(out)
    run_id = _new_run_id()
    argv = [sys.executable, "-m", "pytest", os.path.join(REPO, "conformance"), "--rootdir", REPO,
            "-c", os.path.join(REPO, "pytest.ini"),
            "--targets", os.path.abspath(tpath), "--allocations", args.allocations, "--quotas", args.quotas,
            "--out", os.path.abspath(out), "--junitxml", os.path.join(os.path.abspath(out), "junit.xml"),
            "--alluredir", os.path.join(os.path.abspath(out), "allure-results"), "--tb=line", "-q"]
    argv += ["--timeout", f"{args.test_timeout:g}", "--op-timeout", f"{args.op_timeout:g}"]
    if args.reference:
        if args.reference not in ts:
            raise CutoverError(f"--reference: '{args.reference}' is not one of the run's targets ({', '.join(ts)})")
        argv += ["--reference", args.reference]
    if args.target:
        argv += ["--target", args.target]
    for opt in ("host", "shard", "ansible_group"):
        if getattr(args, opt):
            argv += ["--" + opt.replace("_", "-"), getattr(args, opt)]
    if any(a == "-n" or a.startswith("-n") or a.startswith("--numprocesses") for a in passthrough):
        argv += ["--dist", "loadgroup"]
    argv += passthrough
    argv += ["--run-id", run_id]       # last: this run's results are recognised by it
    env = dict(os.environ)
    if args.lab:
        env["CUTOVER_LAB"] = os.path.abspath(args.lab)
    print(f"cutover: running {len(ts)} target(s) on {len(fleet.hosts_of(ts))} host(s) -> {out}",
          file=sys.stderr, flush=True)
    from cutover import preflight
    for name, endpoint, cause in preflight.unreachable(ts, args.op_timeout):
        # The run still goes on: this target's checks will be errors, and the run not a pass.
        print(f"cutover: target {name}: endpoint {endpoint} unreachable: {cause}", file=sys.stderr, flush=True)
    rc = _run_forwarding_signals(argv, env)
    if rc in (4, 5):      # pytest usage error / nothing collected: the input selected nothing
        print(f"cutover: pytest {'usage error' if rc == 4 else 'collected no checks'} (exit {rc})", file=sys.stderr)
        return 2
    if not os.path.exists(os.path.join(out, "results.json")):
        print(f"cutover: the run wrote no results (pytest exit {rc}): INCOMPLETE", file=sys.stderr)
        return 1
    return results_exit(out, run_id, rc)


MIN_FREE = 50 * 2**20     # results, JUnit and allure files of a large run fit in far less


def _require_space(out):
    st = os.statvfs(out)
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE:
        raise CutoverError(f"output folder {out} has {free // 1024} KiB free, needs {MIN_FREE // 2**20} MiB: "
                           "No space left on device")


def _run_forwarding_signals(argv, env):
    """Run pytest; a SIGTERM/SIGINT to us goes to it, so it can write partial results.

    pytest runs in a process group of its own, so that it gets each signal once, from us: a
    Ctrl-C in a terminal (or a kill of our group) would otherwise reach it twice, directly and
    forwarded, and the second KeyboardInterrupt would kill it in the middle of writing its
    partial results (seen: exit -2, a results.json saying exitstatus 0).
    """
    import signal
    child = subprocess.Popen(argv, cwd=REPO, env=env, process_group=0)

    def forward(signum, frame):
        if child.poll() is None:
            child.send_signal(signum)
    old = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        while True:
            try:
                return child.wait()
            except KeyboardInterrupt:
                continue
    finally:
        for s, h in old.items():
            signal.signal(s, h)


def cmd_report(args):
    from cutover import report
    path = report.html(args.run)
    print(f"cutover: Allure report {path}")
    return 0


def build_parser():
    p = _Parser(prog="cutover", description="Certify container runtimes against T4's promises.")
    p.add_argument("--lab", default=None, help="lab directory (default $CUTOVER_LAB or /var/lib/cutover-lab)")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    lab = sub.add_parser("lab", help="bring the local lab up or down, or show it")
    lab.add_argument("action", choices=["up", "down", "status", "start", "signal", "kill-containerd"])
    lab.add_argument("name", nargs="?", help="daemon name for 'start', 'signal', 'kill-containerd'")
    lab.add_argument("signal", nargs="?", help="TERM or KILL for 'signal' (returns once the daemon is gone)")
    lab.add_argument("--variant", help="'start' with a changed configuration (dockerd: 'upgraded')")
    lab.add_argument("--hosts", type=int, metavar="N",
                     help="'up': N simulated hosts h1..hN reached over ssh (0 removes them; default: keep)")
    lab.add_argument("--host-variant", action="append", metavar="I:VARIANT[,VARIANT]",
                     help="'up': make host I differ (no-live-restore, no-lxcfs, lxcfs-default, ansible)")
    lab.add_argument("--release", metavar="RELEASE",
                     help="'up': also run Debian RELEASE's stack (trixie) from a cached root; 'none' removes it")
    lab.add_argument("--guests", metavar="KERNEL[-cgroup2],...",
                     help="'up': also boot qemu guests with these kernels (6.1, 6.12; -cgroup2 for a v2 "
                          "boot), each with its own targets file <lab>/guests/vm-SPEC.yaml; 'none' removes them")
    lab.add_argument("--json", action="store_true")
    lab.set_defaults(func=cmd_lab)

    ch = sub.add_parser("checks", help="print the catalogue of checks")
    ch.add_argument("--json", action="store_true")
    ch.set_defaults(func=cmd_checks)

    run = sub.add_parser("run", help="run the conformance suites; extra arguments go to pytest")
    run.add_argument("--targets", help="targets YAML (default: the lab's)")
    run.add_argument("--target", help="comma-separated target names (default: all)")
    run.add_argument("--host", help="only hosts matching these globs (URL or name, comma-separated)")
    run.add_argument("--ansible-group", help="only the hosts of this group of the targets file's inventory")
    run.add_argument("--shard", metavar="K/N", help="the K-th of N disjoint shares of the hosts (CI runners)")
    run.add_argument("--out", help="output folder (default: out/<timestamp>)")
    run.add_argument("--allocations", default=allocations.DEFAULT_SPEC,
                     help="allocations spec (default: %(default)s)")
    run.add_argument("--quotas", default=quota.DEFAULT,
                     help="disk quota sizes of the disk quota suite (default: %(default)s)")
    run.add_argument("--skip-controls", action="store_true",
                     help="leave out targets marked 'control: true' (deliberately wrong configurations)")
    run.add_argument("--reference", help="differential run: compare every observation with this target's")
    run.add_argument("--test-timeout", type=seconds, default="300",
                     help="seconds one check may take before it is ended as an error (default 300)")
    run.add_argument("--op-timeout", type=seconds, default=os.environ.get("CUTOVER_OP_TIMEOUT", "30"),
                     help="seconds any single runtime operation may take (default 30)")
    run.set_defaults(func=cmd_run, passthrough=True)

    rep = sub.add_parser("report", help="offline Allure HTML report of a run folder (with history)")
    rep.add_argument("run", help="run folder written by 'cutover run'")
    rep.set_defaults(func=cmd_report)

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
    except OSError as e:
        # The machine refused something (a mount, a file, a socket): say what, in one line.
        print(f"cutover: {e.strerror or e}: {e.filename or ''}".rstrip(": "), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
