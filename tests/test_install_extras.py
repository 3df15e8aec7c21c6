"""Install: the CPU wheel of torch named where users install, and the named extras
(`[examples]`, `[export]`) that the examples and the documented ONNX export need."""

from __future__ import annotations

import re
from pathlib import Path

from docs_blocks import code_blocks
from test_docs_quickstart import _extras

ROOT = Path(__file__).parents[1]
CPU_WHEEL = "pip install torch --index-url https://download.pytorch.org/whl/cpu"


def _names(extra: str) -> list[str]:
    """The distribution names of one extra of pyproject.toml, without versions."""
    return [re.split(r"[<>=\[]", spec)[0] for spec in re.findall(r'"([^"]+)"', extra)]


def test_examples_and_export_extras_name_what_they_need() -> None:
    extras = _extras()
    assert _names(extras["examples"]) == ["scikit-learn", "Pillow", "numpy"]
    assert _names(extras["export"]) == ["onnx", "onnxscript", "onnxruntime"]
    # The dev extra holds both, so the test suite runs the examples and the export.
    assert set(_names(extras["examples"]) + _names(extras["export"])) <= set(_names(extras["dev"]))


def test_readme_says_how_to_take_the_cpu_wheel_of_torch_first() -> None:
    blocks = code_blocks("README.md", "bash")
    # The first block stays the install from a clone; the CPU wheel is the next one.
    assert CPU_WHEEL in blocks[1].splitlines()
    text = (ROOT / "README.md").read_text()
    assert "before `pip install .`" in text
    assert '`pip install ".[examples]"`' in text
    assert '`pip install ".[export]"`' in text


def test_the_extras_are_named_where_they_are_needed() -> None:
    training = (ROOT / "docs" / "training.md").read_text()
    export = training.split("### Compile and export", 1)[1].split("\n## ", 1)[0]
    assert 'pip install ".[export]"' in export
    digits = training.split("examples/train_digits.py`", 1)[1].split("\n## ", 1)[0]
    assert 'pip install ".[examples]"' in digits
    assert 'pip install ".[examples]"' in (ROOT / "docs" / "dense_prediction.md").read_text()
    for example in ("train_digits.py", "segment_digits.py"):
        source = (ROOT / "examples" / example).read_text()
        assert """pip install ".[examples]" """.strip() in source, example
