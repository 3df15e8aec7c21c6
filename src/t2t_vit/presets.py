"""Named architectures: the official presets and `create_model`."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal, overload

from .model import T2TViT

if TYPE_CHECKING:
    from .features import T2TFeatures

__all__ = ["PRESETS", "canonical_name", "create_model", "list_models"]

_P = "performer"
_T = "transformer"

PRESETS: dict[str, dict[str, Any]] = {
    "t2t-vit-7": dict(tokens_type=_P, embed_dim=256, depth=7, num_heads=4, mlp_ratio=2.0),
    "t2t-vit-10": dict(tokens_type=_P, embed_dim=256, depth=10, num_heads=4, mlp_ratio=2.0),
    "t2t-vit-12": dict(tokens_type=_P, embed_dim=256, depth=12, num_heads=4, mlp_ratio=2.0),
    "t2t-vit-14": dict(tokens_type=_P, embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0),
    "t2t-vit-19": dict(tokens_type=_P, embed_dim=448, depth=19, num_heads=7, mlp_ratio=3.0),
    "t2t-vit-24": dict(tokens_type=_P, embed_dim=512, depth=24, num_heads=8, mlp_ratio=3.0),
    "t2t-vit-t-14": dict(tokens_type=_T, embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0),
    "t2t-vit-t-19": dict(tokens_type=_T, embed_dim=448, depth=19, num_heads=7, mlp_ratio=3.0),
    "t2t-vit-t-24": dict(tokens_type=_T, embed_dim=512, depth=24, num_heads=8, mlp_ratio=3.0),
    "t2t-vit-14-resnext": dict(
        tokens_type=_P, embed_dim=384, depth=14, num_heads=32, mlp_ratio=3.0
    ),
    # The official name says 14 but the network has 4 blocks of width 768.
    "t2t-vit-14-wide": dict(tokens_type=_P, embed_dim=768, depth=4, num_heads=12, mlp_ratio=3.0),
    "t2t-vit-14-384": dict(
        tokens_type=_P, embed_dim=384, depth=14, num_heads=6, mlp_ratio=3.0, img_size=384
    ),
}
"""Preset name -> `T2TViT` keyword arguments, as the official model functions set them.

The names are in the order of the paper's tables; `create_model(name)` builds one."""


def canonical_name(name: str) -> str:
    """The preset name for any official spelling: `T2t_vit_t_14` -> `t2t-vit-t-14`.

    Raises `ValueError` listing the known presets for an unknown name.
    """
    key = re.sub(r"[_\s]+", "-", name.strip().lower())
    if key not in PRESETS:
        raise ValueError(f"unknown model {name!r}; known: {', '.join(PRESETS)}")
    return key


def list_models() -> list[str]:
    """The preset names, in the order of the paper's tables."""
    return list(PRESETS)


@overload
def create_model(
    name: str,
    *,
    pretrained: bool = False,
    features_only: Literal[False] = False,
    out_indices: None = None,
    **overrides: Any,
) -> T2TViT: ...
@overload
def create_model(
    name: str,
    *,
    pretrained: bool = False,
    features_only: Literal[True],
    out_indices: int | Sequence[int] | None = None,
    **overrides: Any,
) -> T2TFeatures: ...
@overload
def create_model(
    name: str,
    *,
    pretrained: bool = False,
    features_only: bool,
    out_indices: int | Sequence[int] | None = None,
    **overrides: Any,
) -> T2TViT | T2TFeatures: ...
def create_model(
    name: str,
    *,
    pretrained: bool = False,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    **overrides: Any,
) -> T2TViT | T2TFeatures:
    """Build a preset by name, randomly initialised (`pretrained=True`: through
    `t2t_vit.from_pretrained`, where `overrides` are its keyword arguments).

    `overrides` replace any of the preset's `T2TViT` arguments (`num_classes`,
    `img_size`, `drop_path_rate`, ...). `features_only=True` returns a `T2TFeatures`
    backbone whose `forward` gives a list of NCHW maps, the levels `out_indices` picks
    (default: the stem's T2T layers and the last block, strides 4, 8 and 16).
    """
    if features_only:
        from .features import create_feature_model

        if pretrained:
            from .hub import from_pretrained

            return create_feature_model(from_pretrained(name, **overrides), out_indices)
        return create_feature_model(name, out_indices, **overrides)
    if out_indices is not None:
        raise ValueError(
            f"out_indices={out_indices!r} selects feature levels; pass features_only=True too"
        )
    if pretrained:
        from .hub import from_pretrained

        return from_pretrained(name, **overrides)
    kwargs = {**PRESETS[canonical_name(name)], **overrides}
    return T2TViT(**kwargs)
