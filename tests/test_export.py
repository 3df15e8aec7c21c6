"""Deployment: `torch.compile(fullgraph=True)` and ONNX export, both against eager."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch

from t2t_vit import T2TViT

TINY: dict[str, Any] = dict(
    img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=10
)

#: fp32 compiled or exported graphs against eager PyTorch.
EXPORT_ATOL = 1e-4


def test_compile_fullgraph_inductor_matches_eager() -> None:
    # Inductor generates and builds C++ for the CPU (about 40 s cold on two cores);
    # the Performer stem is the default kind and the one with the fp32 island.
    model = T2TViT(tokens_type="performer", **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    compiled = torch.compile(model, fullgraph=True, backend="inductor")
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=EXPORT_ATOL, rtol=0)


def test_compile_fullgraph_has_no_graph_break_in_training_or_on_other_sizes() -> None:
    # aot_eager traces the same full graphs as inductor without code generation:
    # fullgraph=True raises on any graph break, here in forward and backward and
    # on the resampled position table of another input size.
    model = T2TViT(tokens_type="transformer", **TINY).train()
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=False)
    x = torch.randn(2, 3, 32, 32)
    compiled(x).sum().backward()
    compiled_grads = [p.grad.clone() for p in model.parameters()]
    model.zero_grad()
    model(x).sum().backward()
    for compiled_grad, p in zip(compiled_grads, model.parameters(), strict=True):
        torch.testing.assert_close(compiled_grad, p.grad, atol=EXPORT_ATOL, rtol=0)
    model.eval()
    x = torch.randn(2, 3, 48, 80)
    with torch.no_grad():
        torch.testing.assert_close(compiled(x), model(x), atol=EXPORT_ATOL, rtol=0)


@pytest.mark.parametrize("tokens_type", ["transformer", "performer", "patch"])
def test_onnx_export_matches_pytorch_in_onnxruntime(tokens_type: str, tmp_path: Path) -> None:
    model = T2TViT(tokens_type=tokens_type, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    path = tmp_path / "model.onnx"
    torch.onnx.export(
        model,
        (x,),
        str(path),
        dynamo=True,
        opset_version=18,
        input_names=["image"],
        output_names=["logits"],
        dynamic_shapes={"x": {0: torch.export.Dim("batch", min=1, max=64)}},
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    x3 = torch.randn(3, 3, 32, 32)  # another batch size through the dynamic axis
    for batch in (x, x3):
        (logits,) = session.run(None, {"image": batch.numpy()})
        with torch.no_grad():
            expected = model(batch).numpy()
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, atol=EXPORT_ATOL, rtol=0)
