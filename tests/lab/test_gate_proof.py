"""The gate end to end on a real run: FAIL on docker, PASS on docker-lxcfs, waivers, expiry,
truncation, and what a person sees in the summary page rendered by headless Chromium."""
import json
import os
import shutil
import struct
import subprocess
import zlib
from html.parser import HTMLParser

import pytest

from tests.conftest import cutover

FUTURE, PAST = "2099-12-31", "2020-01-01"


def gate(*args):
    return cutover("gate", *args, timeout=120)


def gate_json(folder):
    with open(os.path.join(folder, "gate.json")) as f:
        return json.load(f)


def waive_docker(tmp_path, expires):
    p = tmp_path / f"policy-{expires}.yaml"
    p.write_text(f"""
default: blocking
advisory: ["severity:minor", "vis.sysinfo-memory", "vis.nproc"]
waivers:
  - check: "vis.*"
    target: "docker*"
    reason: "plain Docker has no LXCFS yet; LXCFS injection is scheduled"
    owner: "platform-team"
    expires: {expires}
""")
    return str(p)


@pytest.fixture
def run(visibility_run, tmp_path):
    """A private copy of the shared run, so gate outputs never mix."""
    dst = tmp_path / "run"
    shutil.copytree(visibility_run, dst, ignore=shutil.ignore_patterns("gate.json", "certificates", "summary.html"))
    return str(dst)


def test_default_policy_fails_docker_passes_lxcfs(run):
    res = gate(run)
    assert res.returncode == 1, res.stdout + res.stderr
    g = gate_json(run)
    assert g["verdict"] == "FAIL"
    assert g["targets"]["docker"]["verdict"] == "FAIL"
    assert g["targets"]["docker-lxcfs"]["verdict"] == "PASS"
    [name] = os.listdir(os.path.join(run, "certificates"))
    cert = json.load(open(os.path.join(run, "certificates", name)))
    assert (cert["host"], cert["verdict"], cert["certified"]) == ("local://", "FAIL", False)
    assert cert["facts"]["kernel"] == os.uname().release
    assert cert["facts"]["targets"]["docker"]["runtime_version"].startswith("20.10")


def test_waivers_turn_pass_and_expiry_fails_again(run, tmp_path):
    res = gate(run, "--policy", waive_docker(tmp_path, FUTURE))
    assert res.returncode == 0, res.stdout + res.stderr
    assert gate_json(run)["verdict"] == "PASS"
    res = gate(run, "--policy", waive_docker(tmp_path, PAST))
    assert res.returncode == 1
    assert any(r["kind"] == "waiver-expired" or "expired" in r.get("message", "") for r in gate_json(run)["reasons"])


def test_truncated_results_fail_closed(run):
    path = os.path.join(run, "results.json")
    data = open(path).read()
    with open(path, "w") as f:
        f.write(data[: len(data) // 2])
    res = gate(run)
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert gate_json(run)["verdict"] == "FAIL"


def test_edited_results_fail_closed(run):
    path = os.path.join(run, "results.json")
    data = json.load(open(path))
    for r in data["results"]:
        r["outcome"] = "pass"          # someone "fixes" the results by hand
    json.dump(data, open(path, "w"))
    assert gate(run).returncode == 1
    assert any(r["kind"] == "tampered" for r in gate_json(run)["reasons"])


def chromium(*args, timeout=60):
    return subprocess.run(["chromium", "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
                           "--no-first-run", "--disable-background-networking", "--disable-component-update",
                           "--disable-sync", *args], capture_output=True, text=True, timeout=timeout)


class Dom(HTMLParser):
    """The DOM Chromium rendered: each element's attributes and the text a person reads in it
    (its own and its descendants')."""

    VOID = {"meta", "br", "link", "img", "input", "hr", "col"}

    def __init__(self, text):
        super().__init__()
        self.elements, self.stack = [], []
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        el = {"tag": tag, "text": "", **{k: v or "" for k, v in attrs}}
        self.elements.append(el)
        if tag not in self.VOID:
            self.stack.append(el)

    def handle_endtag(self, tag):
        while self.stack:
            if self.stack.pop()["tag"] == tag:
                break

    def handle_data(self, data):
        for el in self.stack:
            el["text"] += data

    def by_id(self, ident):
        found = [e for e in self.elements if e.get("id") == ident]
        assert len(found) == 1, f"#{ident}: {len(found)} elements"
        return found[0]

    def all(self, tag, cls=None, **attrs):
        return [e for e in self.elements if e["tag"] == tag and (cls is None or cls in e.get("class", "").split())
                and all(e.get(k.replace("_", "-")) == v for k, v in attrs.items())]


def words(el):
    return " ".join(el["text"].split())


def render(run, tmp_path, name):
    """Chromium's rendered DOM of the run's summary.html, and a screenshot of it."""
    page = "file://" + os.path.join(run, "summary.html")
    res = chromium(f"--user-data-dir={tmp_path / (name + '-dom')}", "--dump-dom", page)
    assert res.returncode == 0 and "<body" in res.stdout, res.stderr[-1000:]
    shot = tmp_path / f"{name}.png"
    chromium(f"--user-data-dir={tmp_path / (name + '-shot')}", f"--screenshot={shot}", "--window-size=1400,1000", page)
    return Dom(res.stdout), shot


# What a person must see on each page. Each is applied to the other page as well, and must
# fail there: an assertion that holds on both pages proves nothing.

def sees_waived_pass(dom):
    banner = dom.by_id("verdict")
    assert words(banner).startswith("PASS"), words(banner)
    cell = dom.by_id("cell--docker--vis.meminfo")
    assert words(cell).startswith("waived") and "waived" in cell["class"].split(), (words(cell), cell["class"])
    [row] = [r for r in dom.all("tr", "waiver") if "vis.*" in words(r)]
    assert "platform-team" in words(row) and "used" in words(row), words(row)
    waived = [r for r in dom.all("li", "reason", data_kind="waived") if "vis.meminfo on docker " in words(r)]
    assert waived and "LXCFS injection is scheduled" in words(waived[0])


def sees_fail(dom):
    banner = dom.by_id("verdict")
    assert words(banner).startswith("FAIL"), words(banner)
    cell = dom.by_id("cell--docker--vis.meminfo")
    assert words(cell).startswith("FAIL") and "blocking" in cell["class"].split(), (words(cell), cell["class"])
    assert "observed" in cell["title"] and "MemTotal" in cell["title"]
    assert words(dom.by_id("cell--docker-lxcfs--vis.meminfo")).startswith("pass")
    blocking = [r for r in dom.all("li", "reason", data_blocking="true") if "vis.meminfo on docker " in words(r)]
    assert blocking, "no blocking reason names vis.meminfo on docker"
    certs = {c["data-host"]: words(c) for c in dom.all("section", "certificate")}
    assert "not certified" in certs["local://"]


def banner_colour(png):
    """(r, g, b) of the verdict banner in the screenshot (a pixel inside it, left of its text)."""
    return pixel(png.read_bytes(), 8, 8)


def pixel(data, x, y):
    """One pixel of an 8-bit RGB(A), non-interlaced PNG (what Chromium writes)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    pos, idat, width = 8, b"", None
    while pos < len(data):
        n, kind = struct.unpack(">I4s", data[pos:pos + 8])
        body = data[pos + 8:pos + 8 + n]
        if kind == b"IHDR":
            width, _, depth, ctype, _, _, interlace = struct.unpack(">IIBBBBB", body)
            assert depth == 8 and ctype in (2, 6) and interlace == 0, (depth, ctype, interlace)
            bpp = 3 if ctype == 2 else 4
        elif kind == b"IDAT":
            idat += body
        pos += 12 + n
    raw, stride, prev = zlib.decompress(idat), width * bpp, bytearray(width * bpp)
    for row in range(y + 1):
        f, line = raw[row * (stride + 1)], bytearray(raw[row * (stride + 1) + 1:(row + 1) * (stride + 1)])
        for i in range(stride):
            a = line[i - bpp] if i >= bpp else 0
            b, c = prev[i], prev[i - bpp] if i >= bpp else 0
            if f == 1:
                line[i] = (line[i] + a) & 255
            elif f == 2:
                line[i] = (line[i] + b) & 255
            elif f == 3:
                line[i] = (line[i] + (a + b) // 2) & 255
            elif f == 4:
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 255
        prev = line
    return tuple(prev[x * bpp:x * bpp + 3])


GREEN, RED = (0x1a, 0x7f, 0x37), (0xcf, 0x22, 0x2e)     # summary.py's --pass and --fail


def near(colour, want):
    return all(abs(a - b) <= 8 for a, b in zip(colour, want))


@pytest.mark.skipif(not shutil.which("chromium"), reason="Debian's chromium is not installed (setup.sh installs it)")
def test_summary_page_shows_verdict_failing_cell_and_waiver(run, tmp_path):
    waived_run, failed_run = run, str(tmp_path / "failed")
    shutil.copytree(run, failed_run)
    assert gate(waived_run, "--policy", waive_docker(tmp_path, FUTURE)).returncode == 0
    assert gate(failed_run).returncode == 1
    waived, waived_png = render(waived_run, tmp_path, "waived")
    failed, failed_png = render(failed_run, tmp_path, "failed")

    sees_waived_pass(waived)
    sees_fail(failed)
    # Each page's assertions fail on the page of the other gate outcome.
    for check, wrong in ((sees_waived_pass, failed), (sees_fail, waived)):
        with pytest.raises(AssertionError):
            check(wrong)

    # The screenshot: the banner a person sees is green on the PASS page, red on the FAIL page.
    assert near(banner_colour(waived_png), GREEN), banner_colour(waived_png)
    assert near(banner_colour(failed_png), RED), banner_colour(failed_png)
