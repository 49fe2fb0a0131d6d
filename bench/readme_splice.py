"""Put generated Markdown into README.md between <!-- NAME:begin --> and <!-- NAME:end -->.

    python bench/readme_splice.py NAME FILE     (FILE: the generated text; - for stdin)

The README's tables of real results (the matrix, the upgrade gate, the kernel gate) are written
by the tools that measured them, never typed: each script that makes one calls this.
"""
import re
import sys


def splice(readme, name, text):
    begin, end = f"<!-- {name}:begin -->", f"<!-- {name}:end -->"
    if begin not in readme or end not in readme:
        raise SystemExit(f"readme_splice: README.md has no {begin} ... {end} markers")
    pattern = re.compile(re.escape(begin) + r"\n.*?" + re.escape(end), re.S)
    return pattern.sub(lambda m: begin + "\n" + text.rstrip("\n") + "\n" + end, readme, count=1)


if __name__ == "__main__":
    if len(sys.argv) != 3:
        raise SystemExit("usage: readme_splice.py NAME FILE")
    name, path = sys.argv[1:]
    text = sys.stdin.read() if path == "-" else open(path).read()
    if not text.strip():        # the generator failed: keep the README's last real result
        raise SystemExit(f"readme_splice: no text for {name}; README.md left as it was")
    with open("README.md") as f:
        readme = f.read()
    with open("README.md", "w") as f:
        f.write(splice(readme, name, text))
    print(f"README.md: {name} section updated", file=sys.stderr)
