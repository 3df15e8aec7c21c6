"""Evaluation preprocessing and label metadata that travel with a model's weights."""

from __future__ import annotations

from typing import Any

from torch import nn

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "default_pretrained_cfg",
    "resolve_pretrained_cfg",
]

IMAGENET_DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet, on pixel values in [0, 1]."""
IMAGENET_DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet, on pixel values in [0, 1]."""


def default_pretrained_cfg(
    img_size: tuple[int, int] = (224, 224), in_chans: int = 3
) -> dict[str, Any]:
    """The official evaluation settings: resize to `img_size / 0.9`, bicubic, center crop,
    ImageNet mean and std, ImageNet-1k labels."""
    return {
        "input_size": [in_chans, img_size[0], img_size[1]],
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": list(IMAGENET_DEFAULT_MEAN),
        "std": list(IMAGENET_DEFAULT_STD),
        "labels": "imagenet-1k",
    }


def resolve_pretrained_cfg(model: nn.Module) -> dict[str, Any]:
    """The model's `pretrained_cfg` (set by `from_pretrained`), else the official defaults
    for its input size.

    Keys: `input_size` `[C, H, W]`, `crop_pct`, `interpolation`, `mean`, `std`, `labels`
    (`'imagenet-1k'`, `'cifar-10'`, `'cifar-100'` or an explicit list of class names),
    and optionally `metrics` and `source`.
    """
    cfg = getattr(model, "pretrained_cfg", None)
    if isinstance(cfg, dict):
        return cfg
    img_size = getattr(model, "img_size", (224, 224))
    in_chans = getattr(model, "in_chans", 3)
    return default_pretrained_cfg(tuple(img_size), in_chans)
