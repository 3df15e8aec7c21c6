"""Named architectures: the official presets (build one with `t2t_vit.create_model`)."""

from __future__ import annotations

import difflib
import re
from typing import Any

__all__ = ["PRESETS", "canonical_name", "list_models"]

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

The names are in the order of the paper's tables; `t2t_vit.create_model(name)` builds one."""


def canonical_name(name: str) -> str:
    """The preset name for any official spelling: `T2t_vit_t_14` -> `t2t-vit-t-14`.

    Raises `ValueError` listing the known presets for an unknown name.
    """
    key = re.sub(r"[_\s]+", "-", name.strip().lower())
    if key not in PRESETS:
        raise ValueError(
            f"unknown model {name!r}{did_you_mean(key, PRESETS)}; known: {', '.join(PRESETS)}"
        )
    return key


def closest(name: str, known: Any) -> str | None:
    """The one of `known` closest to `name`, if any is close (a likely typo)."""
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.75)
    return close[0] if close else None


def did_you_mean(name: str, known: Any) -> str:
    """`" (did you mean 'x'?)"` for the closest of `known` to `name`, else `""`."""
    close = closest(name, known)
    return f" (did you mean {close!r}?)" if close else ""


def list_models() -> list[str]:
    """The preset names, in the order of the paper's tables."""
    return list(PRESETS)
