"""docs/interop.md runs as written, and each client it builds trains: smp's Unet, FPN,
UPerNet and Segformer on `tu-t2t_vit_*`, transformers' `AutoBackbone` and UperNet, and
torchvision's Faster and Mask R-CNN. Two steps on synthetic data: the loss is finite and
the stem and the last block get gradients; then one eval pass.

Interop tests: they run in CI's interop venv (`pytest -m interop`); a missing package
there fails the import, never skips."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch
from docs_blocks import code_blocks, run_blocks
from test_docs_dense_prediction import _expected_output
from torch import nn

import t2t_vit

pytestmark = pytest.mark.interop

PAGE = "docs/interop.md"
SEGMENTERS = ["unet", "fpn", "upernet", "segformer", "hf_upernet"]
DETECTORS = ["faster_rcnn", "mask_rcnn"]


@pytest.fixture(scope="module")
def page() -> dict[str, Any]:
    """The page's blocks run in order in one namespace; each printed line is the one the
    page shows beside or below its `print`."""
    namespace: dict[str, Any] = {}
    import contextlib
    import io

    for i, block in enumerate(code_blocks(PAGE)):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run_blocks([block], f"{PAGE} block {i + 1}", namespace)
        printed = [" ".join(line.split()) for line in out.getvalue().splitlines()]
        assert printed == _expected_output(block), f"block {i + 1}"
    return namespace


def _backbone(model: nn.Module) -> t2t_vit.T2TFeatures:
    (found,) = [m for m in model.modules() if isinstance(m, t2t_vit.T2TFeatures)]
    return found


def _train_two_steps(model: nn.Module, loss_of: Any) -> None:
    backbone = _backbone(model)
    # Every block runs: the deepest block of the model is the feature model's last.
    assert len(backbone.blocks) == backbone.config["depth"]
    stem = list(backbone.tokens_to_token.attention1.parameters())
    last = list(backbone.blocks[-1].parameters())
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3)
    model.train()
    for _ in range(2):
        optimizer.zero_grad()
        loss = loss_of(model)
        assert math.isfinite(loss.item())
        loss.backward()
        for name, params in (("stem", stem), ("last block", last)):
            grads = [p.grad for p in params if p.grad is not None]
            assert grads, f"no gradient reaches the {name}"
            assert sum(float(g.abs().sum()) for g in grads) > 0, name
        optimizer.step()
    model.eval()


@pytest.mark.parametrize("client", SEGMENTERS)
def test_segmentation_recipe_trains_and_evaluates(page: dict[str, Any], client: str) -> None:
    model = page[client]
    torch.manual_seed(0)
    x = torch.randn(2, 3, 64, 64)
    y = torch.randint(0, 3, (2, 64, 64))

    def loss_of(m: nn.Module) -> torch.Tensor:
        if client == "hf_upernet":
            return m(pixel_values=x, labels=y).loss  # type: ignore[no-any-return]
        return nn.functional.cross_entropy(m(x), y)

    _train_two_steps(model, loss_of)
    with torch.no_grad():
        logits = model(pixel_values=x).logits if client == "hf_upernet" else model(x)
    assert logits.shape == (2, 3, 64, 64)
    assert torch.isfinite(logits).all()


def test_transformers_backbone_gives_the_stem_maps_and_the_last_block(
    page: dict[str, Any],
) -> None:
    backbone = page["backbone"]
    x = torch.randn(2, 3, 64, 96)

    def loss_of(m: nn.Module) -> torch.Tensor:
        return sum(f.square().mean() for f in m(x).feature_maps)  # type: ignore[return-value]

    _train_two_steps(backbone, loss_of)
    with torch.no_grad():
        maps = backbone(x).feature_maps
        ours = _backbone(backbone)(x)
    assert [tuple(m.shape) for m in maps] == [(2, 64, 16, 24), (2, 64, 8, 12), (2, 256, 4, 6)]
    for theirs, own in zip(maps, ours, strict=True):
        assert torch.equal(theirs, own)


@pytest.mark.parametrize("client", DETECTORS)
def test_detection_recipe_trains_and_evaluates(page: dict[str, Any], client: str) -> None:
    model = page[client]
    # Small images keep the test fast; the recipe itself uses torchvision's defaults.
    model.transform.min_size, model.transform.max_size = (96,), 96
    torch.manual_seed(0)
    images = [torch.rand(3, 96, 96), torch.rand(3, 80, 96)]
    targets = []
    for image in images:
        mask = torch.zeros(1, *image.shape[1:], dtype=torch.uint8)
        mask[0, 10:50, 20:60] = 1
        target = {"boxes": torch.tensor([[20.0, 10.0, 60.0, 50.0]]), "labels": torch.tensor([1])}
        if client == "mask_rcnn":
            target["masks"] = mask
        targets.append(target)

    def loss_of(m: nn.Module) -> torch.Tensor:
        losses = m(images, targets)
        if client == "mask_rcnn":
            assert "loss_mask" in losses
        return sum(losses.values())  # type: ignore[return-value]

    _train_two_steps(model, loss_of)
    with torch.no_grad():
        (first, second) = model(images)
    assert set(first) >= {"boxes", "labels", "scores"}
    assert first["boxes"].shape[1:] == (4,)
    if client == "mask_rcnn":
        assert first["masks"].shape[1:] == (1, 96, 96)
        assert second["masks"].shape[1:] == (1, 80, 96)
