"""Deployment against eager: `torch.compile` (inductor, any input size), `torch.export`,
ONNX Runtime, FX symbolic tracing and dynamic int8 quantization."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnxruntime as ort
import pytest
import torch
from inference_models import photo_like
from PIL import Image

import t2t_vit
from t2t_vit import T2TViT, create_feature_model

TINY: dict[str, Any] = dict(
    img_size=32, embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=10
)

#: fp32 compiled or exported graphs against eager PyTorch.
EXPORT_ATOL = 1e-4

#: Batch, height and width dynamic. A symbolic size is at least 2 (torch's 0/1
#: specialisation), here the token grid: 32 is the smallest side that gives a 2x2 grid on
#: both stems (the paper's T2T stem: 19; the patch stem: 32); export names the bound when
#: a Dim allows less.
SHAPES = {
    "x": {
        0: torch.export.Dim("batch", min=1, max=64),
        2: torch.export.Dim("height", min=32, max=1024),
        3: torch.export.Dim("width", min=32, max=1024),
    }
}


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
def test_onnx_export_with_dynamic_size_matches_pytorch_in_onnxruntime(
    tokens_type: str, tmp_path: Path
) -> None:
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
        dynamic_shapes=SHAPES,
    )
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    # The traced size, another batch size, and other heights and widths (the position
    # table resampled inside the graph).
    for batch in (
        x,
        torch.randn(3, 3, 32, 32),
        torch.randn(3, 3, 48, 80),
        torch.randn(1, 3, 61, 37),
    ):
        (logits,) = session.run(None, {"image": batch.numpy()})
        with torch.no_grad():
            expected = model(batch).numpy()
        assert logits.shape == expected.shape
        np.testing.assert_allclose(logits, expected, atol=EXPORT_ATOL, rtol=0)


# -- any input size: torch.compile (inductor), torch.export, ONNX, FX ------------------------

#: Three sizes in a row: the native one, then two others (the second makes torch.compile's
#: automatic dynamic shapes recompile with symbolic height and width, the third reuses it).
SIZES = ((32, 32), (48, 80), (61, 37))


def _model(kind: str, tokens_type: str = "performer") -> torch.nn.Module:
    """The classifier, or its `features_only` model with the stem levels and the last block
    (the stem maps are the outputs that broke inductor's dynamic shapes while they were
    permuted views); the patch stem has no stem level."""
    model = T2TViT(tokens_type=tokens_type, **{**TINY, "depth": 2}).eval()
    if kind == "classifier":
        return model
    return create_feature_model(model, out_indices=(-1,) if tokens_type == "patch" else None)


def _outputs(out: torch.Tensor | list[torch.Tensor]) -> list[torch.Tensor]:
    return out if isinstance(out, list) else [out]


#: Inductor's C++ code generation without vectorization (1 lane). With symbolic sizes,
#: choosing the vector tiling of each kernel took most of the build: on 2 cores with an empty
#: cache, the symbolic graph of this test built in 275 s vectorized and 104 s scalar. The
#: tests check the graphs our model gives inductor and the numbers they compute, which the
#: scalar code covers; how inductor vectorizes a kernel is its own.
SCALAR_CPP = {"cpp.simdlen": 1}

#: The sizes of each mode, and the graphs inductor must build for them. Automatic dynamic
#: shapes: the native size builds a static graph, the second size a symbolic one, which the
#: third reuses. dynamic=True: one symbolic graph for three sizes (the native size would add
#: a second one: sizes that equal the position table's grid take its own guards).
COMPILE_RUNS = {
    "automatic-dynamic": (None, SIZES, 2),
    "dynamic": (True, ((48, 80), (61, 37), (40, 56)), 1),
}


@pytest.mark.slow  # inductor builds C++ for each graph: minutes on two cores
@pytest.mark.parametrize("mode", COMPILE_RUNS)
def test_compile_inductor_classifier_and_features_at_three_sizes_in_a_row_match_eager(
    mode: str,
) -> None:
    # The classifier and its feature model (the stem levels, which broke inductor's dynamic
    # shapes as permuted views, and the last block) in one graph: one build covers both,
    # and fullgraph=True fails on any graph break.
    dynamic, sizes, graphs = COMPILE_RUNS[mode]
    model = T2TViT(tokens_type="performer", **TINY).eval()
    features = create_feature_model(model)

    def both(x: torch.Tensor) -> list[torch.Tensor]:
        return [model(x), *features(x)]

    torch._dynamo.reset()
    counters = torch._dynamo.utils.counters
    counters.clear()
    compiled = torch.compile(both, fullgraph=True, backend="inductor", dynamic=dynamic)
    with torch._inductor.config.patch(SCALAR_CPP):
        for height, width in sizes:
            x = torch.randn(2, 3, height, width)
            with torch.no_grad():
                ours, theirs = compiled(x), both(x)
            assert [o.shape for o in ours] == [t.shape for t in theirs]
            for o, t in zip(ours, theirs, strict=True):
                assert o.is_contiguous()
                torch.testing.assert_close(o, t, atol=EXPORT_ATOL, rtol=0)
    assert counters["stats"]["unique_graphs"] == graphs


def test_maps_come_back_contiguous_nchw() -> None:
    model = T2TViT(**{**TINY, "depth": 2}).eval()
    x = torch.randn(1, 3, 48, 80)
    maps = create_feature_model(model, out_indices=(0, 1, 3))(x)
    _, blocks = model.forward_intermediates(x)
    assert [tuple(m.shape) for m in maps] == [(1, 8, 12, 20), (1, 8, 6, 10), (1, 32, 3, 5)]
    assert all(m.is_contiguous() for m in [*maps, *blocks])


@pytest.mark.parametrize("tokens_type", ["transformer", "performer", "patch"])
@pytest.mark.parametrize("kind", ["classifier", "features"])
def test_export_with_dynamic_batch_height_width_matches_eager_at_untraced_sizes(
    kind: str, tokens_type: str
) -> None:
    model = _model(kind, tokens_type)
    program = torch.export.export(model, (torch.randn(2, 3, 32, 32),), dynamic_shapes=SHAPES)
    exported = program.module()
    for batch, (height, width) in ((3, (48, 80)), (1, (61, 37)), (2, (32, 32))):
        x = torch.randn(batch, 3, height, width)
        with torch.no_grad():
            ours, theirs = _outputs(exported(x)), _outputs(model(x))
        for o, t in zip(ours, theirs, strict=True):
            assert o.shape == t.shape
            torch.testing.assert_close(o, t, atol=EXPORT_ATOL, rtol=0)


@pytest.mark.parametrize("tokens_type", ["transformer", "performer", "patch"])
def test_fx_symbolic_trace_matches_eager_at_other_sizes(tokens_type: str) -> None:
    # What torchvision's create_feature_extractor and timm's FeatureGraphNet build on.
    for module in (_model("classifier", tokens_type), _model("features", tokens_type)):
        graph = torch.fx.symbolic_trace(module)
        # The graph calls each `nn.Linear`; bit-equality needs eager on the same GEMM, not
        # the packed one of CPU inference (tests/test_packed_linear.py).
        t2t_vit.use_packed_linear(module, False)
        for height, width in SIZES:
            x = torch.randn(2, 3, height, width)
            with torch.no_grad():
                ours, theirs = _outputs(graph(x)), _outputs(module(x))
            for o, t in zip(ours, theirs, strict=True):
                assert torch.equal(o, t)


#: Dynamic int8 quantization of every Linear against fp32, on T2T-ViT-7 with the fixtures'
#: recipe weights: the relative L2 error of the logits measured 0.067 (4 photo-like images).
INT8_REL_ERROR = 0.1


@pytest.mark.filterwarnings("ignore:.*torch.ao.quantization is deprecated:DeprecationWarning")
@pytest.mark.filterwarnings("ignore:.*quantized tensor creation functions:DeprecationWarning")
def test_dynamic_int8_quantized_model_runs_and_its_logits_are_close_to_fp32(
    t7_state: dict[str, torch.Tensor],
) -> None:
    # quantize_dynamic replaces each nn.Linear, whose `weight` becomes a method: the
    # input check must not read the projection's weight as a tensor.
    model = t2t_vit.create_model("t2t-vit-7").eval()
    model.load_state_dict(t7_state)
    quantized = torch.ao.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
    assert not isinstance(quantized.tokens_to_token.project.weight, torch.Tensor)
    x = torch.cat(
        [
            t2t_vit.preprocess(Image.fromarray(photo_like(224, 224, seed)), model)
            for seed in range(4)
        ]
    )
    with torch.no_grad():
        ours, theirs = quantized(x), model(x)
    error = float((ours - theirs).norm() / theirs.norm())
    assert 0 < error < INT8_REL_ERROR
    # The input checks still name a bad batch.
    with pytest.raises(
        ValueError, match=r"^input dtype torch.float64 does not match the model's torch.float32"
    ):
        quantized(x.double())
