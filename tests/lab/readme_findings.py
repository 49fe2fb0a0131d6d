"""The README's findings lists: where a check that does not discriminate on the lab says why.

A findings list is the run of markdown bullets after a lead line, up to the next heading. A
check is explained when a bullet names it in backticks *and* gives a reason: at least
MIN_WORDS words left once the backticked names are taken out. Merely appearing somewhere in
the README is not enough (the generated matrix names every check).
"""
import re

MIN_WORDS = 8
CHECK_ID = re.compile(r"`([a-z]+\.[a-z0-9.-]+)`")


def findings(text, lead):
    """{check id: reason} from the bullets that follow `lead` in text."""
    at = text.find(lead)
    assert at >= 0, f"the README has no findings list (no line {lead!r})"
    bullets, cur = [], None
    for line in text[at + len(lead):].splitlines()[1:]:
        if line.startswith("#"):
            break
        if line.startswith("- "):
            cur = [line[2:]]
            bullets.append(cur)
        elif cur is not None and line.startswith("  ") and line.strip():
            cur.append(line.strip())
        elif not line.strip():
            cur = None
    out = {}
    for b in bullets:
        body = " ".join(b)
        reason = re.sub(r"`[^`]*`", " ", body)
        words = re.findall(r"[A-Za-z0-9]+", reason)
        for cid in CHECK_ID.findall(body):
            if len(words) >= MIN_WORDS:
                out[cid] = " ".join(words)
    return out


def unexplained(text, lead, check_ids):
    """The check ids that no bullet of the findings list explains."""
    have = findings(text, lead)
    return sorted(c for c in check_ids if c not in have)


def without_bullet(text, check_id):
    """text with every bullet that names check_id removed (to show the check then fails)."""
    blocks, cur = [], None          # [is a bullet, lines]
    for line in text.splitlines():
        if line.startswith("- "):
            cur = [True, [line]]
            blocks.append(cur)
        elif cur is not None and cur[0] and line.startswith("  ") and line.strip():
            cur[1].append(line)
        else:
            cur = [False, [line]]
            blocks.append(cur)
    return "\n".join(l for bullet, lines in blocks
                     if not (bullet and f"`{check_id}`" in "\n".join(lines)) for l in lines)
