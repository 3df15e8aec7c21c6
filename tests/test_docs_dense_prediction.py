"""docs/dense_prediction.md runs as written: its Python blocks execute in order, every
printed line is the one the page shows in the comment below or beside it, and its
figures are the example's own output format."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_blocks import code_blocks, run_blocks

PAGE = "docs/dense_prediction.md"


def _expected_output(block: str) -> list[str]:
    """What the block says it prints: `print(...)  # out` beside the call, or the
    `# out` comment lines right below it (a long value wraps over several lines)."""
    expected = []
    lines = block.splitlines()
    for i, line in enumerate(lines):
        if not line.startswith("print(") and not line.startswith("    print(err)"):
            continue
        beside = re.search(r"\)  # (.*)$", line)
        if beside:
            expected.append(beside.group(1))
            continue
        below = []
        for follow in lines[i + 1 :]:
            if not follow.startswith("# "):
                break
            below.append(follow[2:])
        assert below, f"no expected output for {line!r}"
        expected.append(" ".join(below))
    return expected


def test_dense_prediction_blocks_print_what_the_page_says(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.chdir(tmp_path)  # save_pretrained writes the reader's folder here
    blocks = code_blocks(PAGE)
    assert len(blocks) == 9
    printed = []
    namespace: dict[str, object] = {}
    for i, block in enumerate(blocks):
        run_blocks([block], f"{PAGE} block {i + 1}", namespace)
        out = capsys.readouterr().out.splitlines()
        expected = _expected_output(block)
        # A wrapped comment joins its lines with spaces; so does the comparison.
        assert [" ".join(line.split()) for line in out] == expected, f"block {i + 1}"
        printed += out
    assert (tmp_path / "my-classifier" / "model.safetensors").is_file()
    assert len(printed) >= 15
