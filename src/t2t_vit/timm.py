"""T2T-ViT in timm: `import t2t_vit.timm` registers every preset and every weight.

After the import, `timm.create_model("t2t_vit_14")` builds the preset (official underscore
names: `t2t_vit_7` ... `t2t_vit_24`, `t2t_vit_t_14` ... `t2t_vit_t_24`,
`t2t_vit_14_resnext`, `t2t_vit_14_wide`, `t2t_vit_14_384`), and each registered weight is
a timm tag (`t2t_vit_14.cifar10`) with its `pretrained_cfg` (input size, crop,
interpolation, mean/std, classes, license). `pretrained=True` loads through this
library's own loader (`t2t_vit.from_pretrained`: the Hub, then the original release file,
converted and cached), not timm's downloader, which cannot convert the originals.
`features_only=True` returns this library's `T2TFeatures`, whose `feature_info` answers
timm's calls. timm is the optional extra `".[timm]"` (`t2t-vit[timm]` once on PyPI); the
core package never imports it.
"""

from __future__ import annotations

import sys
from typing import Any

try:
    from timm.models import generate_default_cfgs, register_model
except ImportError as err:  # pragma: no cover - the extra is missing
    from .inference.preprocess import install_line

    raise ImportError("t2t_vit.timm needs timm: " + install_line("timm")) from err

from torch import nn

from .factory import create_model
from .models.presets import PRESETS
from .weights.pretrained_cfg import default_pretrained_cfg
from .weights.registry import WEIGHTS, PretrainedWeights, get_weights

__all__ = ["TIMM_NAMES", "timm_name"]

_PAPER = "Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet"


def timm_name(preset: str) -> str:
    """The timm name of a preset: `t2t-vit-t-14` -> `t2t_vit_t_14`."""
    return preset.replace("-", "_")


TIMM_NAMES: dict[str, str] = {timm_name(p): p for p in PRESETS}
"""timm model name -> this library's preset name."""


def _weights_of(preset: str) -> list[PretrainedWeights]:
    """The preset's weights, its default (`get_weights(preset)`) first."""
    entries = [w for w in WEIGHTS.values() if w.preset == preset]
    try:
        default = get_weights(preset)
    except ValueError:
        return entries
    return [default, *(w for w in entries if w is not default)]


def _cfg(preset: str, entry: PretrainedWeights | None) -> dict[str, Any]:
    if entry is None:
        args = PRESETS[preset]
        size = int(args.get("img_size", 224))
        cfg = default_pretrained_cfg((size, size))
        classes = 1000
    else:
        cfg = entry.pretrained_cfg()
        classes = entry.num_classes
    return {
        # The original file, for information: timm never downloads it (see _create).
        "url": "" if entry is None else entry.url,
        "num_classes": classes,
        "input_size": tuple(cfg["input_size"]),
        "crop_pct": cfg["crop_pct"],
        "crop_mode": "center",
        "interpolation": cfg["interpolation"],
        "mean": tuple(cfg["mean"]),
        "std": tuple(cfg["std"]),
        "first_conv": "tokens_to_token.attention1",
        "classifier": "head",
        "license": None if entry is None else entry.license,
        "origin_url": "https://github.com/yitu-opensource/T2T-ViT",
        "paper_ids": "arXiv:2101.11986",
        "paper_name": _PAPER,
        "notes": () if entry is None or not entry.notes else (entry.notes,),
    }


def _default_cfgs() -> dict[str, Any]:
    cfgs: dict[str, Any] = {}
    for preset in PRESETS:
        entries = _weights_of(preset)
        if not entries:
            cfgs[timm_name(preset)] = _cfg(preset, None)
        for entry in entries:
            cfgs[f"{timm_name(preset)}.{entry.tag}"] = _cfg(preset, entry)
    return generate_default_cfgs(cfgs)  # type: ignore[no-any-return]


#: Read by timm's `register_model`: the pretrained cfgs of each architecture, by tag.
default_cfgs = _default_cfgs()


def _tag(preset: str, pretrained_cfg: Any) -> str | None:
    """The weight tag timm passes (`t2t_vit_14.cifar10` gives `cifar10`), checked."""
    if pretrained_cfg is None:
        return None
    tag = pretrained_cfg if isinstance(pretrained_cfg, str) else None
    if tag is None:
        tag = getattr(pretrained_cfg, "tag", None)
        if tag is None and isinstance(pretrained_cfg, dict):
            tag = pretrained_cfg.get("tag")
    if not tag:
        return None
    tags = [w.tag for w in _weights_of(preset)]
    if tag not in tags:
        known = ", ".join(f"{timm_name(preset)}.{t}" for t in tags) or "none"
        raise ValueError(
            f"unknown pretrained tag {tag!r} for {timm_name(preset)}; its weights: {known}"
        )
    return str(tag)


def _create(
    preset: str,
    pretrained: bool = False,
    pretrained_cfg: Any = None,
    pretrained_cfg_overlay: dict[str, Any] | None = None,
    cache_dir: Any = None,
    output_stride: int | None = None,
    features_only: bool = False,
    out_indices: Any = None,
    **kwargs: Any,
) -> nn.Module:
    name = timm_name(preset)
    if pretrained_cfg_overlay:
        raise ValueError(
            f"pretrained_cfg_overlay={pretrained_cfg_overlay!r} is not supported for {name}: "
            "its weights load through t2t_vit.from_pretrained; pass a folder written by "
            "t2t_vit.save_pretrained to t2t_vit.create_model instead"
        )
    if output_stride not in (None, 16):
        raise ValueError(
            f"output_stride={output_stride} is not available for {name}: its deepest maps "
            "have stride 16 (a T2T-ViT has no dilation); accepted: 16 or None"
        )
    tag = _tag(preset, pretrained_cfg)
    if pretrained and tag is None:
        tag = get_weights(preset).tag  # raises, naming the presets with weights
    weights = preset if tag is None else f"{preset}.{tag}"
    if pretrained and cache_dir is not None:
        kwargs["cache_dir"] = cache_dir
    model = create_model(
        weights,
        pretrained=pretrained,
        features_only=features_only,
        out_indices=out_indices,
        **kwargs,
    )
    if model.pretrained_cfg is None:
        # Untrained: the preprocessing of the tag's weights (as timm keeps a tag's
        # pretrained_cfg), else the official settings, at the model's own size, for
        # timm.data.resolve_data_config.
        in_chans, classes = int(model.config["in_chans"]), int(model.config["num_classes"])
        cfg = default_pretrained_cfg(model.img_size, in_chans, classes)
        if tag is not None:
            cfg = {**get_weights(weights).pretrained_cfg(), "input_size": cfg["input_size"]}
        model.pretrained_cfg = cfg
    return model


def _entrypoint(preset: str) -> Any:
    def entry(pretrained: bool = False, **kwargs: Any) -> nn.Module:
        return _create(preset, pretrained, **kwargs)

    entry.__name__ = entry.__qualname__ = timm_name(preset)
    entry.__module__ = __name__
    entry.__doc__ = f"T2T-ViT preset {preset!r} (see t2t_vit.create_model)."
    return entry


_module = sys.modules[__name__]
for _preset in PRESETS:
    _fn = _entrypoint(_preset)
    setattr(_module, _fn.__name__, _fn)
    register_model(_fn)
