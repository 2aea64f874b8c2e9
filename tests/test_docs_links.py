"""No dead links: every relative link in the Markdown docs, and every docs page or benchmark script that the docs,
the package and the benchmarks name (``docs/...md``, ``benchmarks/...py``), points at a file that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
PATH = re.compile(r"(?<![\w./-])((?:docs|benchmarks)/[\w./-]*\w\.(?:md|py|json|png|jpg|gif|mp4))")
# the lead's scripts under rework (issue #17) keep their old run commands until that work lands
PENDING: set[str] = set()


def _markdown_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]


def _text_files() -> list[Path]:
    files = _markdown_files() + sorted((ROOT / "src").rglob("*.py")) + sorted((ROOT / "benchmarks").rglob("*.py"))
    return [f for f in files if f.is_file()]


@pytest.mark.parametrize("md", _markdown_files(), ids=lambda p: str(p.relative_to(ROOT)))
def test_markdown_links_resolve(md: Path) -> None:
    dead = []
    for target in LINK.findall(md.read_text()):
        if re.match(r"^[a-z]+:", target) or target.startswith("#"):
            continue  # a web address or an anchor in the same page
        path = target.split("#", 1)[0]
        if path and not (md.parent / path).exists():
            dead.append(target)
    assert not dead, f"{md.relative_to(ROOT)}: dead links {dead}"


def test_named_repository_paths_exist() -> None:
    dead = set()
    for f in _text_files():
        if str(f.relative_to(ROOT)) in PENDING:
            continue
        for path in PATH.findall(f.read_text()):
            # relative to the repository root, the file itself, or docs/ (links the scripts write into docs pages)
            if not any((base / path).exists() for base in (ROOT, f.parent, ROOT / "docs")):
                dead.add(f"{f.relative_to(ROOT)}: {path}")
    assert not dead, "\n".join(sorted(dead))
