"""The README stays short, and its links and the docs pages' links lead somewhere."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.support.harness import ROOT

README = ROOT / "README.md"
DOCS = sorted((ROOT / "docs").glob("*.md"))
PAGES = [README, *DOCS]

# [text](target) or [text](target "title"), outside fenced code blocks and code spans.
LINK = re.compile(r"(?<!!)\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^\s*(```|~~~)")
CODE_SPAN = re.compile(r"`+[^`]*`+")
EXTERNAL = ("http://", "https://", "mailto:")


def _prose(text: str) -> str:
    """The text with fenced blocks and code spans blanked out (a link there is not one)."""
    lines, fenced = [], False
    for line in text.splitlines():
        if FENCE.match(line):
            fenced = not fenced
            lines.append("")
        else:
            lines.append("" if fenced else CODE_SPAN.sub("", line))
    return "\n".join(lines)


def _links(page: Path) -> list[str]:
    return LINK.findall(_prose(page.read_text()))


def _anchors(page: Path) -> set[str]:
    """GitHub's heading ids: lower case, punctuation dropped, spaces to hyphens."""
    ids: set[str] = set()
    for line in _prose(page.read_text()).splitlines():
        heading = re.match(r"#{1,6}\s+(.*?)\s*#*\s*$", line)
        if heading:
            text = re.sub(r"[^\w\- ]", "", heading.group(1).lower())
            ids.add(text.replace(" ", "-"))
    return ids


def test_readme_is_short() -> None:
    lines = README.read_text().splitlines()
    assert len(lines) <= 250, f"README.md has {len(lines)} lines; move detail into docs/"


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_resolve(page: Path) -> None:
    broken = []
    for target in _links(page):
        if target.startswith(EXTERNAL):
            continue
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(f"{target}: no {dest}")
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(f"{target}: no heading #{anchor} in {dest.name}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_every_docs_page_is_linked_from_the_readme() -> None:
    linked = {
        (README.parent / target.partition("#")[0]).resolve()
        for target in _links(README)
        if not target.startswith(EXTERNAL)
    }
    missing = [str(p.relative_to(ROOT)) for p in DOCS if p.resolve() not in linked]
    assert DOCS and not missing, f"docs pages not linked from README.md: {missing}"


def test_the_link_finder_sees_links_and_skips_code() -> None:
    page = "[a](docs/x.md) `[b](no.md)` [c](https://e.org)\n```\n[d](no.md)\n```\n"
    assert LINK.findall(_prose(page)) == ["docs/x.md", "https://e.org"]


def test_the_command_line_page_is_current() -> None:
    from tests.support.cli_doc import DOC, render

    assert DOC.read_text() == render(), "docs/command-line.md is out of date: run `make docs`"
