"""How the docs tier reads README.md and docs/*.md (the running itself: tests/docs)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.docs.blocks import MarkerError, blocks, parse

pytestmark = pytest.mark.unit

REPO = Path(__file__).resolve().parents[2]

PAGE = """# A page

```bash
echo one
```

<!-- docs-test: skip (needs a GPU) -->

```sh
nvidia-smi
```

```python
print("never run")
```

```
plain output, never run
```

<!-- docs-test: expect (two) -->
```console
$ echo two
two
$ echo three
```
"""


def test_shell_blocks_with_their_lines_markers_and_commands() -> None:
    found = parse(PAGE, "page.md")
    assert [(b.where, b.language, b.skip, b.expect) for b in found] == [
        ("page.md:3", "bash", None, ()),
        ("page.md:9", "sh", "needs a GPU", ()),
        ("page.md:22", "console", None, ("two",)),
    ]
    assert found[0].text == "echo one"
    assert found[2].text == "echo two\necho three"


@pytest.mark.parametrize(("markdown", "complaint"), [
    ("<!-- docs-test: skip -->\n```bash\nx\n```\n", "page.md:1: write <!-- docs-test: skip"),
    ("<!-- docs-test: skip (why) -->\ntext\n```bash\nx\n```\n", "not right above a block"),
    ("<!-- docs-test: skip (why) -->\n```python\nx\n```\n", "above a python block"),
    ("text\n<!-- docs-test: skip (why) -->\n", "page.md:2: a docs-test marker with no block"),
])
def test_a_marker_the_tier_cannot_use_is_an_error(markdown: str, complaint: str) -> None:
    with pytest.raises(MarkerError, match=complaint.replace("(", r"\(")):
        parse(markdown, "page.md")


def test_an_unclosed_fence_runs_to_the_end() -> None:
    assert parse("```bash\necho a\n", "p.md")[0].text.strip() == "echo a"


def test_every_document_of_this_repository_follows_the_conventions() -> None:
    found = blocks(REPO)
    assert any(b.path == "README.md" and not b.skip for b in found)
    assert all(b.skip is None or b.skip.strip() for b in found)
