"""Gate policy: which checks block a cutover, which only advise, and what is waived.

A policy is a YAML mapping. Every key is optional; unknown keys are errors (a typo must
not silently turn a rule off)::

    default: blocking              # blocking | advisory: for checks no list below selects
    blocking:                      # selectors of checks whose non-pass fails the target
      - "vis.*"                    #   an fnmatch pattern over check IDs, or
    advisory:                      #   "severity:<critical|major|minor>", or
      - "severity:minor"           #   "promise:<visibility|disk-quota|...>"
    waivers:                       # accepted non-conformance, each with an owner and an end
      - check: "vis.nproc"         # required; fnmatch over check IDs; must match a catalogue check
        target: "docker*"          # optional, default "*" (fnmatch over target names)
        host: "ssh://web-*"        # optional, default "*" (fnmatch over host URLs)
        reason: "lxcfs cannot virtualize sched_getaffinity()"   # required
        owner: "runtime-team"      # required
        expires: 2026-06-30        # required, YYYY-MM-DD; the waiver holds through that day
    min_allocations: 2             # a check run under allocations needs at least this many (default 2)
    batch:
      min_certified_ratio: 0.99    # share of hosts that must be certified (0..1, default 1.0)
      canary_hosts: ["ssh://canary-*"]   # a non-certified canary host fails the batch

Rules:
- A check selected by both lists is blocking (when in doubt, block).
- Every selector must select at least one catalogue check, so a typo is an error, not a no-op.
- Waivers take check ID patterns only (no severity:/promise: selectors): a waiver should
  name what it forgives.
- Matching is case-sensitive.
"""
import datetime
import fnmatch
import hashlib
import os
import re
from dataclasses import dataclass, field

import yaml

from cutover import catalogue
from cutover.errors import CutoverError

DEFAULT_POLICY = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                              "policies", "default.yaml")

_TOP_KEYS = ("default", "blocking", "advisory", "waivers", "min_allocations", "batch")
_WAIVER_KEYS = ("check", "target", "host", "reason", "owner", "expires")
_BATCH_KEYS = ("min_certified_ratio", "canary_hosts")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Waiver:
    index: int
    check: str
    target: str
    host: str
    reason: str
    owner: str
    expires: datetime.date

    def matches(self, check, target, host):
        return (fnmatch.fnmatchcase(str(check), self.check)
                and fnmatch.fnmatchcase(str(target), self.target)
                and fnmatch.fnmatchcase(str(host), self.host))

    def expired(self, today):
        # "expires: 2026-06-30" means the waiver still holds on the 30th.
        return today > self.expires

    def label(self):
        return (f"waivers[{self.index}] (check {self.check}, target {self.target}, host {self.host}, "
                f"owner {self.owner}, expires {self.expires.isoformat()})")

    def as_dict(self):
        return {"index": self.index, "check": self.check, "target": self.target, "host": self.host,
                "reason": self.reason, "owner": self.owner, "expires": self.expires.isoformat()}


@dataclass(frozen=True)
class Policy:
    default: str = "blocking"
    blocking: tuple = ()
    advisory: tuple = ()
    waivers: tuple = ()
    min_certified_ratio: float = 1.0
    canary_hosts: tuple = ()
    min_allocations: int = 2
    source: str = "<policy>"
    digest: str = field(default="")

    def is_blocking(self, check_id):
        if any(_selects(s, check_id) for s in self.blocking):
            return True
        if any(_selects(s, check_id) for s in self.advisory):
            return False
        return self.default == "blocking"

    def is_canary(self, host):
        return any(fnmatch.fnmatchcase(str(host), p) for p in self.canary_hosts)

    def waivers_for(self, check, target, host):
        return [w for w in self.waivers if w.matches(check, target, host)]


def _selects(selector, check_id):
    """Does a blocking/advisory selector select this check ID?"""
    kind, _, value = selector.partition(":")
    if value and kind in ("severity", "promise"):
        check = catalogue.get(check_id)
        return check is not None and getattr(check, kind) == value
    return fnmatch.fnmatchcase(str(check_id), selector)


# YAML loading: PyYAML turns `2026-13-01` into a date (and raises ValueError on a bad one)
# and lets a repeated key silently replace the first. Neither is acceptable in a gate
# policy, so dates stay strings (validated below) and duplicate keys are errors.
class _Loader(yaml.SafeLoader):
    def construct_mapping(self, node, deep=False):
        if isinstance(node, yaml.MappingNode):
            seen = set()
            for key_node, _ in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                    if key_node.value in seen:
                        raise yaml.constructor.ConstructorError(
                            None, None, f"duplicate key '{key_node.value}'", key_node.start_mark)
                    seen.add(key_node.value)
        return super().construct_mapping(node, deep)


_Loader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:timestamp"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}


def load_policy(path=None):
    """Load and validate a policy file (the repo's default when path is None)."""
    path = path or DEFAULT_POLICY
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise CutoverError(f"{path}: cannot read policy: {e.strerror or e}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise CutoverError(f"{path}: policy is not UTF-8 text") from None
    return parse_policy(text, name=path)


def parse_policy(text, name="policy.yaml"):
    """Parse policy YAML text; CutoverError (one line, naming the field) on anything wrong."""
    digest = "sha256:" + hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
    try:
        doc = yaml.load(text, Loader=_Loader)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        problem = getattr(e, "problem", None) or str(e).splitlines()[0]
        raise CutoverError(f"{name}: not valid YAML{where}: {problem}") from None
    except (ValueError, TypeError, RecursionError) as e:
        # e.g. an explicit !!timestamp with a bad date, or absurd nesting
        raise CutoverError(f"{name}: not a usable policy: {_one_line(e)}") from None
    return _build(doc, name, digest)


def _build(doc, name, digest):
    def bad(field_name, problem):
        return CutoverError(f"{name}: {field_name}: {problem}")

    if doc is None:
        raise CutoverError(f"{name}: policy is empty; expected a mapping (see policies/README.md)")
    if not isinstance(doc, dict):
        raise CutoverError(f"{name}: policy must be a mapping, not {_type(doc)}")
    _no_unknown_keys(doc, _TOP_KEYS, "", bad)

    default = doc.get("default", "blocking")
    if default not in ("blocking", "advisory"):
        raise bad("default", f"{_show(default)} must be 'blocking' or 'advisory'")

    lists = {}
    for key in ("blocking", "advisory"):
        items = _list(doc.get(key, []), key, bad)
        for i, selector in enumerate(items):
            _check_selector(selector, f"{key}[{i}]", bad)
        lists[key] = tuple(items)

    waivers = tuple(_waiver(w, i, bad) for i, w in enumerate(_list(doc.get("waivers", []), "waivers", bad)))

    min_allocations = doc.get("min_allocations", 2)
    if isinstance(min_allocations, bool) or not isinstance(min_allocations, int) or min_allocations < 1:
        raise bad("min_allocations", f"{_show(min_allocations)} must be a whole number of at least 1")

    batch = doc.get("batch", {})
    if batch is None:
        batch = {}
    if not isinstance(batch, dict):
        raise bad("batch", f"must be a mapping, not {_type(batch)}")
    _no_unknown_keys(batch, _BATCH_KEYS, "batch.", bad)
    ratio = batch.get("min_certified_ratio", 1.0)
    if isinstance(ratio, bool) or not isinstance(ratio, (int, float)) or not 0 <= ratio <= 1:
        raise bad("batch.min_certified_ratio", f"{_show(ratio)} must be a number from 0 to 1")
    canaries = _list(batch.get("canary_hosts", []), "batch.canary_hosts", bad)
    for i, pattern in enumerate(canaries):
        if not isinstance(pattern, str) or not pattern:
            raise bad(f"batch.canary_hosts[{i}]", f"{_show(pattern)} must be a non-empty host pattern")

    return Policy(default=default, blocking=lists["blocking"], advisory=lists["advisory"],
                  waivers=waivers, min_certified_ratio=float(ratio), canary_hosts=tuple(canaries),
                  min_allocations=min_allocations, source=name, digest=digest)


def _check_selector(selector, where, bad):
    if not isinstance(selector, str) or not selector:
        raise bad(where, f"{_show(selector)} must be a check ID pattern")
    kind, _, value = selector.partition(":")
    if kind == "severity" and value:
        if value not in catalogue.SEVERITIES:
            raise bad(where, f"unknown severity '{value}' (one of {', '.join(catalogue.SEVERITIES)})")
    elif kind == "promise" and value:
        if value not in catalogue.PROMISES:
            raise bad(where, f"unknown promise '{value}' (one of {', '.join(catalogue.PROMISES)})")
    elif not _matches_catalogue(selector):
        raise bad(where, f"'{selector}' matches no check in the catalogue")


def _waiver(w, i, bad):
    where = f"waivers[{i}]"
    if not isinstance(w, dict):
        raise bad(where, f"must be a mapping, not {_type(w)}")
    _no_unknown_keys(w, _WAIVER_KEYS, where + ".", bad)
    for key in ("check", "reason", "owner", "expires"):
        if key not in w:
            raise bad(f"{where}.{key}", "is required")
    values = {}
    for key in ("check", "target", "host", "reason", "owner"):
        value = w.get(key, "*")
        if not isinstance(value, str) or not value.strip():
            raise bad(f"{where}.{key}", f"{_show(value)} must be a non-empty string")
        values[key] = value
    if not _matches_catalogue(values["check"]):
        hint = " (waivers take check ID patterns only)" if ":" in values["check"] else ""
        raise bad(f"{where}.check", f"'{values['check']}' matches no check in the catalogue{hint}")
    expires = w["expires"]
    try:
        if type(expires) is datetime.date:      # only from an explicit !!timestamp tag
            day = expires
        elif isinstance(expires, str) and _DATE.fullmatch(expires):
            day = datetime.date.fromisoformat(expires)
        else:
            raise ValueError
    except ValueError:
        raise bad(f"{where}.expires", f"{_show(expires)} is not a date (YYYY-MM-DD)") from None
    return Waiver(index=i, expires=day, **values)


def _matches_catalogue(pattern):
    return any(fnmatch.fnmatchcase(check_id, pattern) for check_id in catalogue.CHECKS)


def _list(value, where, bad):
    if value is None:
        return []
    if not isinstance(value, list):
        raise bad(where, f"must be a list, not {_type(value)}")
    return value


def _no_unknown_keys(mapping, allowed, prefix, bad):
    for key in mapping:
        if key not in allowed:
            raise bad(f"{prefix}{key}", f"unknown key (allowed: {', '.join(allowed)})")


def _show(value):
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _type(value):
    return {dict: "a mapping", list: "a list", str: "a string"}.get(type(value), type(value).__name__)


def _one_line(e):
    return " ".join(str(e).split()) or type(e).__name__
