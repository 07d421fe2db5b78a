"""Every relative link in the user docs resolves inside the repository.

README.md, docs/*.md and benchmarks/README.md: each ``[text](target)`` that is not
a URL must name a file or folder of the repository (not outside it), and a
``#anchor`` on a Markdown file must name one of its headings (GitHub's slugs).
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LINK = re.compile(r"!?\[[^\]]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
FENCE = re.compile(r"^(```|~~~).*?^\1", re.M | re.S)
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.M)


def doc_files(root: Path) -> list[Path]:
    return [root / "README.md", *sorted((root / "docs").glob("*.md")),
            root / "benchmarks" / "README.md"]


def slug(heading: str) -> str:
    """GitHub's anchor for a heading: lower case, punctuation dropped, spaces to '-'."""
    text = re.sub(r"`|\*|_(?=\W)|(?<=\W)_", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(path: Path) -> set[str]:
    text = FENCE.sub("", path.read_text())
    return {slug(h) for h in HEADING.findall(text)}


def broken_links(path: Path, root: Path) -> list[str]:
    """The links of one Markdown file that do not resolve, with the reason."""
    root = root.resolve()
    problems = []
    text = FENCE.sub("", path.read_text())
    for target in LINK.findall(text):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:
            continue
        file_part, _, anchor = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.is_relative_to(root):
            problems.append(f"{target}: outside the repository")
        elif not dest.exists():
            problems.append(f"{target}: no such file")
        elif anchor and dest.suffix == ".md" and anchor not in anchors(dest):
            problems.append(f"{target}: no heading #{anchor} in {dest.name}")
    return problems


def test_every_relative_doc_link_resolves_in_the_repo():
    files = doc_files(ROOT)
    assert len(files) >= 5 and all(f.exists() for f in files), files
    problems = {str(f.relative_to(ROOT)): broken_links(f, ROOT) for f in files}
    assert {k: v for k, v in problems.items() if v} == {}
    # the check saw links at all
    assert sum(len(LINK.findall(f.read_text())) for f in files) > 20


def test_the_check_finds_missing_files_anchors_and_links_out_of_the_repo(tmp_path):
    root = tmp_path / "repo"
    (root / "docs").mkdir(parents=True)
    (root / "docs" / "a.md").write_text("# Alerts out\n\n## The `evidence`, per detector\n")
    (root / "README.md").write_text(
        "[ok](docs/a.md) [ok anchor](docs/a.md#alerts-out)\n"
        "[code anchor](docs/a.md#the-evidence-per-detector) [url](https://example.com/x)\n"
        "[gone](docs/b.md) [bad anchor](docs/a.md#nope) [out](../shared/DESIGN.md)\n"
        "```\n[in code](not/checked.md)\n```\n")
    assert broken_links(root / "README.md", root) == [
        "docs/b.md: no such file",
        "docs/a.md#nope: no heading #nope in a.md",
        "../shared/DESIGN.md: outside the repository",
    ]
