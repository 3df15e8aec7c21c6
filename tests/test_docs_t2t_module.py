"""Every Python block on the T2TModule docs page runs as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[1] / "docs" / "t2t_module.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.DOTALL)


def test_the_page_has_code_blocks() -> None:
    assert len(BLOCKS) >= 6


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_docs_block_runs(index: int) -> None:
    namespace: dict[str, object] = {"__name__": f"docs_block_{index}"}
    exec(compile(BLOCKS[index], f"{PAGE.name}[block {index}]", "exec"), namespace)
