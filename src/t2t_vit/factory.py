"""`create_model`: a preset or weight name to a model or a feature backbone, untrained or
pretrained (timm's habit)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any, Literal, overload

from .models.features import T2TFeatures, create_feature_model
from .models.presets import PRESETS, canonical_name
from .models.t2t_vit import T2TViT, check_model_args
from .weights.pretrained import from_pretrained
from .weights.pretrained_cfg import complete_pretrained_cfg, default_pretrained_cfg, label_count
from .weights.registry import get_weights

__all__ = ["create_model"]


@overload
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    features_only: Literal[False] = False,
    out_indices: None = None,
    levels: None = None,
    output_stride: None = None,
    **kwargs: Any,
) -> T2TViT: ...
@overload
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    features_only: Literal[True],
    out_indices: int | Sequence[int] | None = None,
    levels: str | None = None,
    output_stride: int | None = None,
    **kwargs: Any,
) -> T2TFeatures: ...
@overload
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    features_only: bool,
    out_indices: int | Sequence[int] | None = None,
    levels: str | None = None,
    output_stride: int | None = None,
    **kwargs: Any,
) -> T2TViT | T2TFeatures: ...
def create_model(
    name: str,
    pretrained: bool = False,
    *,
    features_only: bool = False,
    out_indices: int | Sequence[int] | None = None,
    levels: str | None = None,
    output_stride: int | None = None,
    **kwargs: Any,
) -> T2TViT | T2TFeatures:
    """Build a preset (`t2t-vit-14`) or the architecture of a registered weight
    (`t2t-vit-14.cifar10`) by name.

    `pretrained=False` initialises the weights randomly; `kwargs` replace any of the
    preset's `T2TViT` arguments (`num_classes`, `img_size`, `drop_path_rate`, ...).
    `pretrained=True` loads the name's weights with `from_pretrained(name, **kwargs)`,
    which takes the same overrides (a new `num_classes` gets a fresh head, a new `img_size`
    a resampled position table) and its own options (`source`, `cache_dir`, ...).

    `features_only=True` returns a `T2TFeatures` backbone whose `forward` gives a list of
    NCHW maps, the levels `out_indices` picks (default: the stem's T2T layers and the last
    block, strides 4, 8 and 16), with the classifier's parameter names. `levels`
    (`"all"` or `"pyramid"`, see `T2TFeatures`) sets the levels `out_indices` index, and
    `output_stride=16` caps their strides at 16. `device` and `dtype` place the model as it
    is built (`device="meta"` allocates nothing), as timm's `create_model` takes them.

    The model comes back in training mode, every submodule, as timm's `create_model`
    gives it, pretrained or not; call `.eval()` for inference (`from_pretrained` returns
    eval mode).
    """
    name = _model_name(name, pretrained)
    if out_indices is not None and not features_only:
        raise ValueError(
            f"out_indices={out_indices!r} selects feature levels; pass features_only=True too"
        )
    if levels is not None and not features_only:
        raise ValueError(f"levels={levels!r} sets feature levels; pass features_only=True too")
    if output_stride is not None and not features_only:
        raise ValueError(
            f"output_stride={output_stride!r} caps the feature maps' stride; pass "
            "features_only=True too"
        )
    if pretrained:
        model = from_pretrained(name, **kwargs)
    else:
        # timm's factory keywords: where and in which dtype the model is built.
        device, dtype = kwargs.pop("device", None), kwargs.pop("dtype", None)
        try:
            base = get_weights(name).model_args() if "." in name else PRESETS[canonical_name(name)]
        except ValueError as err:
            raise _path_error(name) or err from None
        check_model_args(kwargs)
        model = T2TViT(**{**base, **kwargs}, device=device, dtype=dtype)
        # A dict to fill in (`model.pretrained_cfg["labels"] = [...]`), saved with the model.
        cfg = default_pretrained_cfg(model.img_size, model.in_chans, model.num_classes)
        if "." in name and model.in_chans == 3:
            # A weight's name keeps that weight's preprocessing (as timm keeps a tag's
            # pretrained_cfg), and its labels while the class count fits them.
            # Not its source or metrics: this model is untrained.
            weights_cfg = get_weights(name).pretrained_cfg()
            cfg.update({k: weights_cfg[k] for k in ("crop_pct", "interpolation", "mean", "std")})
            if label_count(weights_cfg["labels"]) == model.num_classes:
                cfg["labels"] = weights_cfg["labels"]
        # With timm's keys (`architecture`, ...), which timm's save_for_hf reads.
        model.pretrained_cfg = complete_pretrained_cfg(model, cfg)
    result = (
        create_feature_model(
            model, out_indices, levels=levels or "all", output_stride=output_stride
        )
        if features_only
        else model
    )
    # timm's habit, pretrained or not: every submodule in training mode (from_pretrained,
    # transformers' habit, gives eval mode), so dropout and stochastic depth are on.
    return result.train()


def _model_name(name: object, pretrained: bool) -> str:
    """`name` as a string: a path only where `from_pretrained` loads it (`pretrained=True`)."""
    if isinstance(name, os.PathLike) and pretrained:
        return str(os.fspath(name))
    if isinstance(name, os.PathLike):
        raise _path_error(str(os.fspath(name)), always=True) or AssertionError
    if not isinstance(name, str):
        raise TypeError(
            f"create_model takes a model name such as 't2t-vit-14' (t2t_vit.list_models() "
            f"lists them), got {type(name).__name__} {name!r}"
        )
    return name


def _path_error(name: str, always: bool = False) -> ValueError | None:
    """What to say when an unknown model name is a path (or looks like one), else `None`:
    `create_model("saved7")` and `create_model("./saved7")` say the same."""
    exists = os.path.exists(name)
    looks = name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1
    if not (always or exists or looks or "/" in name):
        return None
    if os.path.isdir(name):
        what = "a folder"
    elif exists:
        what = "a file"
    elif looks or always:
        what = "a path (not found)"
    else:
        what = "a Hub repository id"
    return ValueError(
        f"{name!r} is {what}; create_model builds a preset by name (t2t_vit.list_models()), "
        f"from_pretrained loads a folder written by save_pretrained or t2t-vit convert: "
        f"t2t_vit.from_pretrained({name!r}), or create_model({name!r}, pretrained=True)"
    )
