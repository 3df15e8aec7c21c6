"""`create_model`: a preset or weight name to a model, untrained or pretrained (timm's habit)."""

from __future__ import annotations

from typing import Any

from .model import T2TViT, check_model_args
from .presets import PRESETS, canonical_name
from .pretrained import from_pretrained
from .weights import get_weights

__all__ = ["create_model"]


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> T2TViT:
    """Build a preset (`t2t-vit-14`) or the architecture of a registered weight
    (`t2t-vit-14.cifar10`) by name.

    `pretrained=False` initialises the weights randomly; `kwargs` replace any of the
    preset's `T2TViT` arguments (`num_classes`, `img_size`, `drop_path_rate`, ...).
    `pretrained=True` loads the name's weights with `from_pretrained(name, **kwargs)`,
    which takes the same overrides (a new `num_classes` gets a fresh head, a new `img_size`
    a resampled position table) and its own options (`source`, `cache_dir`, ...).
    """
    if pretrained:
        return from_pretrained(name, **kwargs)
    base = get_weights(name).model_args() if "." in name else PRESETS[canonical_name(name)]
    check_model_args(kwargs)
    return T2TViT(**{**base, **kwargs})
