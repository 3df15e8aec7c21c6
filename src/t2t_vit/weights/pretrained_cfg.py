"""Evaluation preprocessing and label metadata that travel with a model's weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.class_names import LABEL_SET_SIZES, for_new_head, index_labels, label_count
from ..models.presets import PRESETS
from ..models.wrappers import unwrap_model

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "LABEL_SET_SIZES",
    "architecture_of",
    "check_labels",
    "default_pretrained_cfg",
    "first_layer",
    "for_new_head",
    "index_labels",
    "label_count",
    "resolve_pretrained_cfg",
]

IMAGENET_DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet, on pixel values in [0, 1]."""
IMAGENET_DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet, on pixel values in [0, 1]."""


#: One-channel (grey) models: the ImageNet mean and std averaged over the three channels.
_GREY_MEAN, _GREY_STD = 0.449, 0.226


def default_pretrained_cfg(
    img_size: tuple[int, int] = (224, 224), in_chans: int = 3, num_classes: int = 1000
) -> dict[str, Any]:
    """The official evaluation settings: resize to `img_size / 0.9`, bicubic, center crop,
    ImageNet mean and std; ImageNet-1k labels for 1000 classes, else the class indices.

    A model of other than 3 channels gets one mean and std per channel, the ImageNet values
    averaged over RGB (0.449 and 0.226), as for grey images.
    """
    rgb = in_chans == 3
    return {
        "input_size": [in_chans, img_size[0], img_size[1]],
        "crop_pct": 0.9,
        "interpolation": "bicubic",
        "mean": list(IMAGENET_DEFAULT_MEAN) if rgb else [_GREY_MEAN] * in_chans,
        "std": list(IMAGENET_DEFAULT_STD) if rgb else [_GREY_STD] * in_chans,
        "labels": "imagenet-1k" if num_classes == 1000 else index_labels(num_classes),
    }


def _model_defaults(model: nn.Module) -> dict[str, Any]:
    img_size = getattr(model, "img_size", (224, 224))
    in_chans = getattr(model, "in_chans", 3)
    num_classes = getattr(model, "num_classes", None)
    return default_pretrained_cfg(
        tuple(img_size), in_chans, 1000 if num_classes is None else num_classes
    )


def architecture_of(model_args: dict[str, Any]) -> str:
    """The timm name of the preset a `T2TViT`'s arguments are (`t2t_vit_14`); for other
    arguments, the first preset with the same stem. timm's `architecture`: a saved folder's
    `model_args` hold every argument, so any network is rebuilt from it."""
    tokens_type = model_args.get("tokens_type", "performer")
    same = [
        p for p, args in PRESETS.items() if all(model_args.get(k) == v for k, v in args.items())
    ]
    stem = [p for p, args in PRESETS.items() if args["tokens_type"] == tokens_type]
    return (same or stem or list(PRESETS))[0].replace("-", "_")


def first_layer(model: nn.Module) -> str:
    """The first weight the input meets (timm's `first_conv`)."""
    for name, param in model.named_parameters():
        if name.endswith(".weight") and param.ndim >= 2:
            return name.removesuffix(".weight")
    return "tokens_to_token"  # pragma: no cover - every stem has a weight


def _timm_keys(model: nn.Module) -> dict[str, Any]:
    """timm's keys of a model's `pretrained_cfg` (`architecture`, `num_classes`,
    `first_conv`, ...), which timm's `save_for_hf` and tools read."""
    config = getattr(model, "config", None)
    if not isinstance(config, dict):
        return {}
    num_classes = getattr(model, "num_classes", config.get("num_classes", 0))
    return {
        "architecture": architecture_of(config),
        "num_classes": num_classes,
        "fixed_input_size": not config.get("dynamic_img_size", True),
        "crop_mode": "center",
        "first_conv": first_layer(model),
        "classifier": "head" if num_classes else None,
    }


#: The keys preprocessing and labelling read; a config missing one gets its default.
_REQUIRED = ("input_size", "crop_pct", "interpolation", "mean", "std", "labels")


def check_labels(labels: Any, num_classes: int | None) -> None:
    """`ValueError` in one line for a `labels` entry that is no known label-set name nor a
    list, or that names another number of classes than `num_classes` (when given)."""
    known = ", ".join(LABEL_SET_SIZES)
    if isinstance(labels, str) and label_count(labels) is None:
        raise ValueError(
            f"pretrained_cfg labels {labels!r} is no known label set ({known}); give one of "
            "them or a list of class names"
        )
    count = label_count(labels)
    if count is None:
        raise ValueError(
            f"pretrained_cfg labels must be a label-set name ({known}) or a list of class "
            f"names, got {labels!r}"
        )
    if num_classes is not None and count != num_classes:
        shown = repr(labels) if isinstance(labels, str) else _short_list(labels)
        raise ValueError(
            f"pretrained_cfg labels {shown} name {count} classes but the model has "
            f"{num_classes}; set model.pretrained_cfg['labels'] to {num_classes} names "
            "(reset_classifier names a new head's classes by index)"
        )


def _short_list(labels: Any) -> str:
    items = list(labels)
    more = ", ..." if len(items) > 3 else ""
    return f"[{', '.join(repr(x) for x in items[:3])}{more}]"


def resolve_pretrained_cfg(model: nn.Module) -> dict[str, Any]:
    """The model's `pretrained_cfg` (set by `from_pretrained`), else the official defaults
    for its input size.

    Keys: `input_size` `[C, H, W]`, `crop_pct`, `interpolation`, `mean`, `std`, `labels`
    (`'imagenet-1k'`, `'cifar-10'`, `'cifar-100'` or an explicit list of class names),
    and optionally `metrics` and `source`.

    A config that sets only some keys (`{"labels": [...]}`) gets the defaults for the
    others. Labels are returned as they are: those that do not fit the model's head (a list
    of another length, an unknown label-set name) are refused where they are used
    (`resolve_labels`, `predict`, `evaluate`, `save_pretrained`), never replaced silently.
    `reset_classifier` and `from_pretrained(..., num_classes=N)` name a new head's classes
    by index and drop the checkpoint's `metrics`, which were measured with the old head.
    A model inside `torch.compile` or (Distributed)DataParallel is read through (R3).
    """
    model = unwrap_model(model, "resolve_pretrained_cfg")
    return complete_pretrained_cfg(model, getattr(model, "pretrained_cfg", None))


def complete_pretrained_cfg(model: nn.Module, cfg: dict[str, Any] | None) -> dict[str, Any]:
    """`cfg` for `model`, with the official defaults for the keys it lacks (all of them for
    `None`); the labels as they are (see `resolve_pretrained_cfg`)."""
    if not isinstance(cfg, dict):
        cfg = _model_defaults(model)
    missing = [key for key in _REQUIRED if key not in cfg]
    if missing:
        defaults = _model_defaults(model)
        cfg = {**{key: defaults[key] for key in missing}, **cfg}
    timm_keys = _timm_keys(model)
    if any(key not in cfg for key in timm_keys):
        cfg = {**cfg, **{k: v for k, v in timm_keys.items() if k not in cfg}}
    return cfg
