"""Evaluation preprocessing and label metadata that travel with a model's weights."""

from __future__ import annotations

from typing import Any

from torch import nn

from ..models.presets import PRESETS

__all__ = [
    "IMAGENET_DEFAULT_MEAN",
    "IMAGENET_DEFAULT_STD",
    "LABEL_SET_SIZES",
    "architecture_of",
    "default_pretrained_cfg",
    "first_layer",
    "label_count",
    "resolve_pretrained_cfg",
]

IMAGENET_DEFAULT_MEAN: tuple[float, float, float] = (0.485, 0.456, 0.406)
"""Per-channel RGB mean of ImageNet, on pixel values in [0, 1]."""
IMAGENET_DEFAULT_STD: tuple[float, float, float] = (0.229, 0.224, 0.225)
"""Per-channel RGB standard deviation of ImageNet, on pixel values in [0, 1]."""


#: Number of classes of each named label set (`t2t_vit.labels.LABEL_SETS`).
LABEL_SET_SIZES: dict[str, int] = {"imagenet-1k": 1000, "cifar-10": 10, "cifar-100": 100}


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
        "labels": "imagenet-1k" if num_classes == 1000 else [str(i) for i in range(num_classes)],
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


def label_count(labels: Any) -> int | None:
    """How many classes a `labels` entry names: a label-set name or a list; `None`: unknown."""
    if isinstance(labels, str):
        return LABEL_SET_SIZES.get(labels)
    if isinstance(labels, (list, tuple)):
        return len(labels)
    return None


def resolve_pretrained_cfg(model: nn.Module) -> dict[str, Any]:
    """The model's `pretrained_cfg` (set by `from_pretrained`), else the official defaults
    for its input size.

    Keys: `input_size` `[C, H, W]`, `crop_pct`, `interpolation`, `mean`, `std`, `labels`
    (`'imagenet-1k'`, `'cifar-10'`, `'cifar-100'` or an explicit list of class names),
    and optionally `metrics` and `source`.

    A config that sets only some keys (`{"labels": [...]}`) gets the defaults for the
    others. The labels always fit the model's head: where they do not (a head replaced with
    `reset_classifier`, say), the result names the classes by index and drops the
    checkpoint's `metrics`, which were measured with the old head.
    """
    return complete_pretrained_cfg(model, getattr(model, "pretrained_cfg", None))


def complete_pretrained_cfg(model: nn.Module, cfg: dict[str, Any] | None) -> dict[str, Any]:
    """`cfg` for `model`, with the official defaults for the keys it lacks (all of them for
    `None`) and labels that fit the model's head (see `resolve_pretrained_cfg`)."""
    num_classes = getattr(model, "num_classes", None)
    if not isinstance(cfg, dict):
        cfg = _model_defaults(model)
    missing = [key for key in _REQUIRED if key not in cfg]
    if missing:
        defaults = _model_defaults(model)
        cfg = {**{key: defaults[key] for key in missing}, **cfg}
    if isinstance(num_classes, int) and label_count(cfg.get("labels")) != num_classes:
        cfg = {k: v for k, v in cfg.items() if k != "metrics"}
        cfg["labels"] = [str(i) for i in range(num_classes)]
        if "num_classes" in cfg:
            cfg["num_classes"] = num_classes
    timm_keys = _timm_keys(model)
    if any(key not in cfg for key in timm_keys):
        cfg = {**cfg, **{k: v for k, v in timm_keys.items() if k not in cfg}}
    return cfg
