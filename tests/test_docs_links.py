"""Every relative link in README.md and docs/*.md opens an existing file, at an existing anchor.

Anchors follow GitHub's slug rules: lowercase, punctuation other than ``-`` and ``_`` dropped,
each space a ``-``, and a repeated heading numbered ``-1``, ``-2``... Headings inside fenced
code blocks are not headings; links inside code spans and fences are not links.
"""

from __future__ import annotations

import re
from collections import Counter
from pathlib import Path
from urllib.parse import unquote

import pytest

REPO = Path(__file__).resolve().parents[1]
DOCS = [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]

_FENCE = re.compile(r"^\s*(```|~~~)")
_HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_CODE_SPAN = re.compile(r"(`+).*?\1")
_LINK = re.compile(r"(?<!!)\[(?:[^\[\]]|\[[^\]]*\])*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_IMAGE = re.compile(r"!\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_HTML_ANCHOR = re.compile(r"<a\s+(?:name|id)=\"([^\"]+)\"", re.IGNORECASE)


def prose_lines(text: str) -> list[str]:
    """The lines outside fenced code blocks."""
    lines, fenced = [], False
    for line in text.splitlines():
        if _FENCE.match(line):
            fenced = not fenced
            continue
        if not fenced:
            lines.append(line)
    return lines


def slug(heading: str) -> str:
    """GitHub's anchor for a heading's text (before de-duplication)."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link's text stays, its target goes
    text = re.sub(r"<[^>]+>", "", text)  # inline HTML tags
    text = text.strip().lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and _ (Unicode, like GitHub)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    """Every anchor GitHub gives ``path``: its headings' slugs (numbered when repeated) and HTML anchors."""
    seen: Counter[str] = Counter()
    found: set[str] = set()
    for line in prose_lines(path.read_text(encoding="utf-8")):
        found.update(_HTML_ANCHOR.findall(line))
        if match := _HEADING.match(line):
            base = slug(match.group(2))
            found.add(base if not seen[base] else f"{base}-{seen[base]}")
            seen[base] += 1
    return found


def relative_links(path: Path) -> list[str]:
    """The link targets of ``path`` that are neither absolute URLs nor mail addresses."""
    targets = []
    for line in prose_lines(path.read_text(encoding="utf-8")):
        line = _CODE_SPAN.sub("", line)
        for target in [*_LINK.findall(line), *_IMAGE.findall(line)]:
            if re.match(r"^[a-z][a-z0-9+.-]*:", target, re.IGNORECASE):
                continue  # http:, https:, mailto:, file: ...
            targets.append(target)
    return targets


def _shown(path: Path) -> str:
    return str(path.relative_to(REPO)) if path.is_relative_to(REPO) else path.name


def broken(path: Path) -> list[str]:
    """What is wrong with each relative link of ``path``."""
    problems = []
    for target in relative_links(path):
        file_part, _, anchor = target.partition("#")
        linked = (path.parent / unquote(file_part)).resolve() if file_part else path
        if not linked.exists():
            problems.append(f"{target}: no file {_shown(linked)}")
            continue
        if anchor and linked.suffix == ".md" and unquote(anchor) not in anchors(linked):
            problems.append(f"{target}: no heading in {_shown(linked)} has the anchor #{anchor}")
    return problems


def test_the_slug_follows_githubs_rules(tmp_path: Path) -> None:
    assert slug("Running it: three ways") == "running-it-three-ways"
    assert slug("Deploy: a Prefect server or Prefect Cloud, a weekly schedule") == (
        "deploy-a-prefect-server-or-prefect-cloud-a-weekly-schedule"
    )
    assert slug("`strava-elt run` and `--json`") == "strava-elt-run-and---json"
    assert slug("Production: S3, PostgreSQL, Redshift") == "production-s3-postgresql-redshift"
    doc = tmp_path / "a.md"
    doc.write_text("# Top\n## Notes\n```\n# not a heading\n```\n## Notes\n[ok](#notes-1) [bad](#nope)\n")
    assert anchors(doc) == {"top", "notes", "notes-1"}
    assert broken(doc) == ["#nope: no heading in a.md has the anchor #nope"]


@pytest.mark.parametrize("path", DOCS, ids=lambda p: str(p.relative_to(REPO)))
def test_every_relative_link_resolves(path: Path) -> None:
    assert broken(path) == []
