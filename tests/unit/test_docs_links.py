"""Every relative link in the README and the docs points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

from budgetwatch.dev.stack import ROOT

DOCS = [ROOT / "README.md", ROOT / "alerts" / "runbooks.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\]\(([^)\s]+)\)")
# Plain mentions like `docs/rules.md` count too: a reader follows them the same way (not
# the tail of a longer path, such as instrumentation/budgetwatch/dashboards/panels.py).
MENTION = re.compile(
    r"(?<![\w/])((?:docs|alerts|dashboards|otel-collector|scripts|examples|instrumentation)/[\w./-]+\.\w+)"
)


def _targets(doc: Path) -> set[tuple[str, Path]]:
    text = doc.read_text()
    found = set()
    for link in LINK.findall(text):
        if link.startswith(("http://", "https://", "mailto:", "#")):
            continue
        found.add((link, (doc.parent / link.split("#")[0]).resolve()))
    for mention in MENTION.findall(text):
        if "*" not in mention and "<" not in mention:
            found.add((mention, (ROOT / mention).resolve()))
    return found


def test_relative_links_and_mentions_resolve() -> None:
    missing = [
        f"{doc.relative_to(ROOT)}: {ref}"
        for doc in DOCS
        for ref, path in sorted(_targets(doc))
        if not path.exists()
    ]
    assert missing == []


def test_the_check_sees_a_broken_link(tmp_path: Path) -> None:
    doc = tmp_path / "x.md"
    doc.write_text("see [here](nowhere.md) and docs/nothing.md")
    assert {ref for ref, path in _targets(doc) if not path.exists()} == {
        "nowhere.md",
        "docs/nothing.md",
    }
