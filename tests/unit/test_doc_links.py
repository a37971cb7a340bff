"""The documentation a clone gets is whole: every relative link of the README and of docs/ points at a file
(and heading) inside the repository, and the contract pages it names are there."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"```.*?```", re.DOTALL)


def _anchor(heading: str) -> str:
    """GitHub's anchor of a Markdown heading: lower case, punctuation dropped, spaces to dashes."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


def _anchors(page: Path) -> set[str]:
    text = FENCE.sub("", page.read_text(encoding="utf-8"))
    return {_anchor(m.group(1)) for m in re.finditer(r"^#+ (.+)$", text, flags=re.MULTILINE)}


def _links(page: Path) -> list[str]:
    return LINK.findall(FENCE.sub("", page.read_text(encoding="utf-8")))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_stay_in_the_repository_and_resolve(page: Path) -> None:
    problems = []
    for link in _links(page):
        if re.match(r"^[a-z]+:", link):  # http(s), mailto: not a file of the clone
            continue
        path_part, _, fragment = link.partition("#")
        target = (page.parent / path_part).resolve() if path_part else page
        if not target.is_relative_to(ROOT):
            problems.append(f"{link}: leaves the repository")
        elif not target.exists():
            problems.append(f"{link}: no such file")
        elif fragment and target.suffix == ".md" and fragment not in _anchors(target):
            problems.append(f"{link}: no heading #{fragment} in {target.relative_to(ROOT)}")
    assert problems == []


def test_the_checker_sees_a_link_that_leaves() -> None:
    """The test above would pass on anything if the link pattern matched nothing."""
    assert _links(ROOT / "README.md"), "no link found in README.md"
    assert LINK.findall("see [the spec](../shared/spec/events.md) and [x](docs/kpis.md#windows)") == [
        "../shared/spec/events.md", "docs/kpis.md#windows"]
    assert not (ROOT / "../shared/spec/events.md").resolve().is_relative_to(ROOT)


def test_readme_links_the_contract_pages_in_the_repository() -> None:
    links = _links(ROOT / "README.md")
    assert "docs/events.md" in links and "docs/kpis.md" in links
    assert not any("shared/" in link for link in links)
    for page, needed in (("events.md", ("A first event to paste", "Topic `agent-events` (key `agent_id`)")),
                         ("kpis.md", ("Agents — contract v2; not yet computed", "Closed-loop feedback"))):
        text = (ROOT / "docs" / page).read_text(encoding="utf-8")
        for heading in needed:
            assert heading in text, (page, heading)
    readme_headings = _anchors(ROOT / "README.md")
    assert "troubleshooting" in readme_headings
