"""Every relative link in README.md, infra/README.md and docs/ reaches a file, and its
#anchor a heading of that file (GitHub's anchor rule: lower case, punctuation dropped,
spaces to hyphens)."""
import glob
import os
import re

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = sorted(["README.md", os.path.join("infra", "README.md")]
                   + [os.path.relpath(path, REPO)
                      for path in glob.glob(os.path.join(REPO, "docs", "*.md"))])
LINK = re.compile(r"\]\(([^)\s]+)\)|<img src=\"([^\"]+)\"")


def anchors(text: str) -> set[str]:
    text = re.sub(r"^```.*?^```", "", text, flags=re.DOTALL | re.MULTILINE)
    return {re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
            for heading in re.findall(r"^#+ (.*)$", text, flags=re.MULTILINE)}


def broken_links(document: str, root: str = REPO) -> list[str]:
    with open(os.path.join(root, document)) as f:
        text = f.read()
    broken = []
    for match in LINK.finditer(text):
        link = match.group(1) or match.group(2)
        if re.match(r"[a-z]+:", link):
            continue
        path, _, anchor = link.partition("#")
        target = os.path.normpath(os.path.join(root, os.path.dirname(document), path)) if path \
            else os.path.join(root, document)
        if not os.path.exists(target):
            broken.append(f"{link}: no such file")
        elif anchor and target.endswith(".md"):
            with open(target) as f:
                if anchor not in anchors(f.read()):
                    broken.append(f"{link}: no such heading")
    return broken


@pytest.mark.parametrize("document", DOCUMENTS)
def test_links_reach_their_file_and_heading(document):
    assert broken_links(document) == []


def test_a_broken_link_is_found(tmp_path):
    (tmp_path / "a.md").write_text("# Top part\n\n[ok](#top-part) [no](#nowhere) [gone](b.md)\n")
    assert broken_links("a.md", str(tmp_path)) == ["#nowhere: no such heading",
                                                   "b.md: no such file"]
