"""The one-page HTML summary: self-contained, and its DOM says what a person would see."""
import datetime
from html.parser import HTMLParser

import pytest

from cutover import summary
from cutover.gate import evaluate
from factories import ADVISORY, BLOCKING, DEFAULT_POLICY, SUITE_CHECKS, load, policy, records, write

TODAY = datetime.date(2026, 1, 1)


class Dom(HTMLParser):
    """Just enough DOM: every element's tag, attributes and own text."""

    def __init__(self, text):
        super().__init__()
        self.elements, self.stack = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "text": "", **{k: v or "" for k, v in attrs}}
        self.elements.append(el)
        if tag not in ("meta", "br", "link", "img", "input"):
            self.stack.append(el)

    def handle_endtag(self, tag):
        if self.stack and self.stack[-1]["tag"] == tag:
            self.stack.pop()

    def handle_data(self, data):
        if self.stack:
            self.stack[-1]["text"] += data

    def find(self, **attrs):
        return [e for e in self.elements if all(
            (v in e.get("class", "").split()) if k == "cls" else e.get(k) == v for k, v in attrs.items())]

    def cell(self, target, check):
        (cell,) = self.find(tag="td", **{"data-target": target, "data-check": check})
        return cell


@pytest.fixture
def page(tmp_path):
    docker = records("docker", outcomes={BLOCKING: "fail", ADVISORY: "skip"})
    docker[-1]["observed"] = "<script>alert('x')</script>"
    lxcfs = records("docker-lxcfs", host="ssh://h2", outcomes={"vis.nproc": "fail"},
                    checks=SUITE_CHECKS[:-1])
    base = write(tmp_path / "base", records("docker") + records("docker-lxcfs", host="ssh://h2"))
    run = write(tmp_path / "run", docker + lxcfs)
    pol = policy(DEFAULT_POLICY + "waivers: [{check: vis.nproc, target: docker-lxcfs, reason: 'lxcfs gap', "
                                  "owner: runtime-team, expires: 2026-06-30}]\n")
    result = evaluate(load(run), pol, baseline=load(base)[0], today=TODAY)
    path = tmp_path / "out" / "summary.html"
    summary.write(result, str(path))
    return path.read_text()


def test_page_is_self_contained(page):
    assert page.startswith("<!DOCTYPE html>")
    lowered = page.lower()
    for external in ("http://", "https://", "<script", "<link", " src=", "@import", "url("):
        assert external not in lowered, external


def test_verdict_banner(page):
    dom = Dom(page)
    (body,) = dom.find(tag="body")
    assert body["data-verdict"] == "FAIL"
    (banner,) = dom.find(id="verdict")
    assert "verdict-fail" in banner["class"].split()
    assert "FAIL" in page[page.index('id="verdict"'):][:400]


def test_failing_cell(page):
    cell = Dom(page).cell("docker", BLOCKING)
    assert {"cell", "outcome-fail", "blocking", "regressed"} <= set(cell["class"].split())
    assert cell["data-outcome"] == "fail" and cell["data-waived"] == "false"
    assert cell["text"].startswith("FAIL")
    assert "1cpu-512m: fail (expected 512 MiB, observed 15.5 GiB)" in cell["title"]
    assert cell["data-allocations"] == "1cpu-512m:fail 2cpu-1g:fail"
    assert cell["id"] == f"cell--docker--{BLOCKING}"


def test_waived_cell_is_marked_waived(page):
    cell = Dom(page).cell("docker-lxcfs", "vis.nproc")
    assert "waived" in cell["class"].split() and cell["data-waived"] == "true"
    assert cell["text"].startswith("waived") and "[waived]" in cell["title"]
    assert "blocking" not in cell["class"].split()


def test_other_cells(page):
    dom = Dom(page)
    assert dom.cell("docker", ADVISORY)["data-outcome"] == "skip"
    assert dom.cell("docker", SUITE_CHECKS[1])["data-outcome"] == "pass"
    missing = dom.cell("docker-lxcfs", SUITE_CHECKS[-1])
    assert missing["data-outcome"] == "missing" and "outcome-missing" in missing["class"]
    ids = [e["id"] for e in dom.elements if e.get("id")]
    assert len(ids) == len(set(ids))


def test_untrusted_text_is_escaped(page):
    assert "<script>alert" not in page
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in page


def test_reasons_regressions_and_certificates(page):
    dom = Dom(page)
    blocking = dom.find(tag="li", cls="reason", **{"data-blocking": "true"})
    assert {r["data-kind"] for r in blocking} >= {"check", "regression", "not-collected", "batch-ratio"}
    assert dom.find(tag="li", **{"data-kind": "waived", "data-target": "docker-lxcfs"})
    regressions = dom.find(tag="tr", cls="regression")
    assert {r["data-check"] for r in regressions} == {BLOCKING, ADVISORY, "vis.nproc"}
    certs = {c["data-host"]: c["data-verdict"] for c in dom.find(tag="section", cls="certificate")}
    assert certs == {"ssh://h1": "FAIL", "ssh://h2": "FAIL"}
    assert [w["data-status"] for w in dom.find(tag="tr", cls="waiver")] == ["used"]


def test_passing_page(tmp_path):
    run = write(tmp_path / "run", records("docker"))
    page = summary.render(evaluate(load(run), policy(), today=TODAY))
    dom = Dom(page)
    assert dom.find(tag="body")[0]["data-verdict"] == "PASS"
    assert not dom.find(tag="td", cls="outcome-fail") and "No blocking reasons." in page


def test_unreadable_run_page(tmp_path):
    (tmp_path / "run").mkdir()
    page = summary.render(evaluate(load(tmp_path / "run"), policy(), today=TODAY))
    assert 'data-verdict="FAIL"' in page and "results unreadable" in page


def test_judging_date_is_shown_and_an_override_says_so(page, tmp_path):
    (judged,) = Dom(page).find(id="judged-on")
    assert judged["data-date"] == "2026-01-01" and judged["data-overridden"] == "true"
    assert "set by --today" in page[page.index('id="judged-on"'):][:400]
    run = write(tmp_path / "plain", records("docker"))
    plain = summary.render(evaluate(load(run), policy()))
    (judged,) = Dom(plain).find(id="judged-on")
    assert judged["data-overridden"] == "false" and "--today" not in plain
    assert judged["data-date"] == datetime.date.today().isoformat()
