"""The project's reference in docs/: every ``docs/<page>.md#<section>`` reference in the code and
the docs, and every relative link between docs pages, names a page and a heading that exist."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"
SEARCHED = ("src", "plugins", "tests", "benchmarks", "examples", "docs", "README.md")
REFERENCE = re.compile(r"docs/([\w./-]+?\.md)(?:#([\w-]+))?")
RELATIVE_LINK = re.compile(r"\]\((?!https?:|/|\.\./)([\w./-]+?\.md)(?:#([\w-]+))?\)")


def anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to hyphens."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def anchors(page: Path) -> set[str]:
    text = re.sub(r"```.*?```", "", page.read_text(encoding="utf-8"), flags=re.S)  # no headings in code
    return {anchor(m.group(1)) for m in re.finditer(r"^#{1,6}\s+(.+?)\s*$", text, flags=re.M)}


def searched_files():
    for name in SEARCHED:
        path = ROOT / name
        files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.suffix in {".py", ".md", ".toml"})
        yield from (p for p in files if ".venv" not in p.parts and "site-packages" not in p.parts)


def references():
    for path in searched_files():
        text = path.read_text(encoding="utf-8")
        for m in REFERENCE.finditer(text):
            yield path, DOCS / m.group(1), m.group(2)
        if path.parent == DOCS:
            for m in RELATIVE_LINK.finditer(text):
                yield path, (DOCS / m.group(1)).resolve(), m.group(2)


def test_anchor_follows_githubs_rule():
    assert anchor("The public API: `ptycho_cli.api`") == "the-public-api-ptycho_cliapi"
    assert anchor("Legacy PtychoPINN NPZ") == "legacy-ptychopinn-npz"


def test_every_docs_reference_resolves():
    found = list(references())
    assert len(found) > 50  # the code does point into docs/
    broken = [f"{path.relative_to(ROOT)}: {target.relative_to(ROOT)}{'#' + section if section else ''}"
              for path, target, section in found
              if not target.is_file() or (section and section not in anchors(target))]
    assert broken == []


def test_a_broken_reference_is_caught(tmp_path):
    page = tmp_path / "page.md"
    page.write_text("# Title\n\n## Photon gauge\n\n```\n## not a heading\n```\n", encoding="utf-8")
    assert anchors(page) == {"title", "photon-gauge"}


def test_no_reference_to_a_specification_outside_the_repository():
    stale = [str(path.relative_to(ROOT)) for path in searched_files() if "SPEC " + "§" in path.read_text(encoding="utf-8")]
    assert stale == []


@pytest.mark.parametrize("page", sorted(p.name for p in DOCS.glob("*.md")))
def test_every_page_is_listed_in_the_index(page):
    assert page == "README.md" or f"({page})" in (DOCS / "README.md").read_text(encoding="utf-8")
