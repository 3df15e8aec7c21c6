"""Every smp 0.6 architecture on `tu-t2t_vit_7`, at the arguments smp users type: each
builds, trains two steps with gradients in the stem and the last block, and runs in eval
with a mask of the input's size; or it refuses in one line that says what to pass.

Interop tests: they run in CI's interop venv (`pytest -m interop`); a missing package
there fails the import, never skips. Inputs are the smallest each architecture takes
(PAN's pyramid pooling needs 128), to keep the matrix cheap."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import t2t_vit

pytestmark = pytest.mark.interop

ENCODER = "tu-t2t_vit_7"
DEPTH = 7  # t2t-vit-7's blocks
CLASSES = 2
#: The pyramid every `tu-` encoder gets by default (smp's depth 5: four levels).
PYRAMID = [
    "tokens_to_token.attention1",
    "tokens_to_token.attention2",
    f"blocks.{DEPTH - 1}",
    "downsample",
]

#: arch -> (smp keyword arguments, input side, levels the encoder returns).
MATRIX: dict[str, tuple[dict[str, Any], int, list[str]]] = {
    "Unet": ({}, 64, PYRAMID),
    "UnetPlusPlus": ({}, 64, PYRAMID),
    "FPN": ({}, 64, PYRAMID),
    # smp's PSPNet defaults to encoder_depth=3 (strides up to 8): the stem alone.
    "PSPNet": ({}, 64, PYRAMID[:2]),
    "PSPNet-depth4": (dict(encoder_depth=4, upsampling=16), 64, PYRAMID[:3]),
    "Linknet": ({}, 64, PYRAMID),
    # Default encoder_output_stride=16: the stride-32 level stays at 16 (unpooled).
    "PAN": ({}, 128, PYRAMID),
    "DeepLabV3-os16": (dict(encoder_output_stride=16), 64, PYRAMID),
    "DeepLabV3Plus": ({}, 64, PYRAMID),
    "MAnet": ({}, 64, PYRAMID),
    "UPerNet": ({}, 64, PYRAMID),
    "Segformer": ({}, 64, PYRAMID),
    # DPT takes the classifier and samples 4 of its levels (stem + blocks) uniformly.
    "DPT": ({}, 64, ["tokens_to_token.attention2", "blocks.1", "blocks.3", "blocks.6"]),
}


def _build(arch: str, kwargs: dict[str, Any]) -> nn.Module:
    torch.manual_seed(0)
    import segmentation_models_pytorch as smp

    import t2t_vit.timm  # noqa: F401  (registers the presets with timm)

    cls = getattr(smp, arch.split("-")[0])
    return cls(ENCODER, encoder_weights=None, classes=CLASSES, **kwargs)  # type: ignore[no-any-return]


def _levels(model: nn.Module) -> list[str]:
    encoder = model.encoder.model
    if isinstance(encoder, t2t_vit.T2TFeatures):
        return list(encoder.feature_info.module_name())
    names = [level["module"] for level in encoder.feature_info]
    return [names[i] for i in model.encoder._output_indices]


@pytest.mark.parametrize("arch", list(MATRIX))
def test_smp_architecture_trains_two_steps_and_evaluates(arch: str) -> None:
    kwargs, side, levels = MATRIX[arch]
    model = _build(arch, kwargs)
    assert _levels(model) == levels
    backbone = model.encoder.model
    stem = list(backbone.tokens_to_token.attention1.parameters())
    uses_blocks = any(name.startswith("blocks.") for name in levels)
    last = list(backbone.blocks[DEPTH - 1].parameters()) if uses_blocks else []
    if not uses_blocks:
        # Pruned as timm's feature wrappers do: no block, no projection to leave unused.
        assert len(backbone.blocks) == 0
        assert not hasattr(backbone.tokens_to_token, "project")
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 3, side, side, generator=g)
    target = torch.randint(0, CLASSES, (2, side, side), generator=g)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        loss = F.cross_entropy(model(x), target)
        assert math.isfinite(loss.item())
        loss.backward()
        for name, params in (("stem", stem), ("last block", last)):
            total = sum(float(p.grad.abs().sum()) for p in params if p.grad is not None)
            assert not params or total > 0, f"no gradient reaches the {name}"
        unused = [n for n, p in model.named_parameters() if p.grad is None]
        # smp's DPT keeps timm's whole classifier (as for timm's ViTs): its head and
        # final norm never run. Every other model leaves no parameter without a gradient.
        expected = ["encoder.model.norm.weight", "encoder.model.norm.bias"]
        expected += ["encoder.model.head.weight", "encoder.model.head.bias"]
        assert unused == (expected if arch == "DPT" else [])
        optimizer.step()
    model.eval()
    with torch.no_grad():
        mask = model(x)
    assert mask.shape == (2, CLASSES, side, side)
    assert torch.isfinite(mask).all()


def test_deeplabv3_default_output_stride_8_is_refused_naming_what_to_pass() -> None:
    expected = (
        "output_stride=8 is not available: this T2T-ViT's blocks are at stride 16 and it "
        "has no dilation to keep finer maps; pass 16 (smp: encoder_output_stride=16), 32 or "
        "None"
    )
    with pytest.raises(ValueError, match=r"^output_stride=8 is not available") as err:
        _build("DeepLabV3", {})
    assert str(err.value) == expected


def test_output_stride_16_caps_the_pyramid_so_deeplabv3_gives_a_full_size_mask() -> None:
    model = _build("DeepLabV3", dict(encoder_output_stride=16)).eval()
    backbone = model.encoder.model
    assert backbone.feature_info.reduction() == [4, 8, 16, 16]
    assert isinstance(backbone.downsample, nn.Identity)
    x = torch.randn(1, 3, 64, 96)
    with torch.no_grad():
        *_, last, capped = backbone(x)
        mask = model(x)
    assert torch.equal(capped, last)
    assert last.shape[-2:] == (4, 6)
    assert mask.shape == (1, CLASSES, 64, 96)
