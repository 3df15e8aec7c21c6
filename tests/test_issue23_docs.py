"""Issue 23, docs that say what the code does (R5): the CPU torch kept through the timm
extra (24), install lines that work from a clone (25), and training.md's ONNX export with
dynamic height and width, run at a second size in onnxruntime (26)."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import torch
from docs_blocks import ROOT, code_blocks

import t2t_vit

#: Where install advice is given: pages, examples, and the library's own messages.
SOURCES = [
    "README.md",
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "docs").glob("*.md")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "examples").glob("*.py")),
    *sorted(str(p.relative_to(ROOT)) for p in (ROOT / "src").rglob("*.py")),
]


def test_the_readme_keeps_the_cpu_torch_through_the_timm_extra() -> None:
    blocks = code_blocks("README.md", "bash")
    commands = [
        [line.split("#")[0].strip() for line in block.splitlines() if line.split("#")[0].strip()]
        for block in blocks
    ]
    assert [
        "pip install torch torchvision --index-url https://download.pytorch.org/whl/cpu",
        'pip install ".[timm]"',
    ] in commands


@pytest.mark.parametrize("source", SOURCES)
def test_every_extra_named_for_pypi_is_also_named_for_a_clone(source: str) -> None:
    text = (ROOT / source).read_text()
    for match in re.finditer(r"t2t-vit\[(\w+)\]", text):
        extra = match[1]
        # The sentence around it (or, for the library's helper, its f-string).
        around = text[max(0, match.start() - 300) : match.end() + 300]
        assert f".[{extra}]" in around or ".[{extra}]" in around, (
            f"{source}: {match[0]!r} without the clone's install line near it"
        )


def test_the_pillow_message_names_both_install_lines() -> None:
    from t2t_vit.inference.preprocess import install_line

    assert install_line("image") == (
        'pip install ".[image]" in a clone of t2t-vit (pip install "t2t-vit[image]" once it is '
        "on PyPI)"
    )


def test_the_onnx_export_of_training_md_runs_at_a_second_size(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = code_blocks("docs/training.md")
    export = next(b for b in blocks if "torch.onnx.export" in b)
    assert "dynamic_shapes" in export
    monkeypatch.chdir(tmp_path)
    # The page's model, small: the snippet itself is run as written.
    model = t2t_vit.T2TViT(embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=5).eval()
    namespace = {"torch": torch, "t2t_vit": t2t_vit, "model": model, "Dim": torch.export.Dim}
    exec(compile(export, "docs/training.md ONNX block", "exec"), namespace)
    x = namespace["x"]
    assert tuple(x.shape[-2:]) == (160, 288)
    with torch.no_grad():
        expected = model(x).numpy()
    np.testing.assert_allclose(namespace["onnx_logits"], expected, atol=1e-4, rtol=0)
