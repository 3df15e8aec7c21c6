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
    from timm.models import build_model_with_cfg, generate_default_cfgs, register_model
except ImportError as err:  # pragma: no cover - the extra is missing
    # The wording of `install_line` (inference), which this layer does not import.
    raise ImportError(
        't2t_vit.timm needs timm: pip install ".[timm]" in a clone of t2t-vit '
        '(pip install "t2t-vit[timm]" once it is on PyPI)'
    ) from err

from torch import nn

from .factory import create_model
from .models.features import T2TFeatures
from .models.presets import PRESETS
from .models.t2t_vit import T2TViT
from .weights.pretrained_cfg import complete_pretrained_cfg, default_pretrained_cfg
from .weights.registry import WEIGHTS, PretrainedWeights, get_weights
from .weights.serialization import TIMM_CFG_KEYS

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


def _first_layer(preset: str) -> str:
    """The first layer with a weight that reads the image's channels (timm's `first_conv`,
    which `in_chans` adaptation changes): the first T2T layer's query/key/value projection
    (its input is the `in_chans x 7 x 7` soft split)."""
    if PRESETS[preset].get("tokens_type") == "transformer":
        return "tokens_to_token.attention1.attn.qkv"
    return "tokens_to_token.attention1.kqv"


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
        "first_conv": _first_layer(preset),
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


#: The `features_only` keywords timm's builder and its callers (smp, transformers) pass.
_FEATURE_KEYS = ("out_indices", "feature_cls", "levels", "norm", "output_fmt", "flatten_sequential")
_FEATURE_CLASSES = ("getter", "hook", "list", "dict", "fx")


def _feature_model(
    model: nn.Module,
    out_indices: Any = None,
    levels: str | None = None,
    norm: bool = False,
    output_fmt: str = "NCHW",
    output_stride: int | None = None,
) -> nn.Module:
    """timm's `feature_cls` for a T2T-ViT by default: this library's `T2TFeatures`."""
    if output_fmt != "NCHW":
        raise ValueError(
            f"output_fmt={output_fmt!r} is not available for T2T-ViT features_only; "
            "accepted: 'NCHW' (or feature_cls='getter', whose forward_intermediates takes 'NLC')"
        )
    assert isinstance(model, T2TViT)
    # One level per stride (4, 8, 16, 32) by default, as timm's hierarchical models give
    # their stages: what smp's `tu-` encoders index with range(depth). `levels="all"` gives
    # each block.
    return T2TFeatures(
        model,
        out_indices=out_indices,
        norm=norm,
        levels=levels or "pyramid",
        output_stride=output_stride,
    )


def _feature_cfg(name: str, kwargs: dict[str, Any], output_stride: Any) -> dict[str, Any]:
    """The `feature_cfg` for timm's builder: this library's feature model, unless the caller
    names one of timm's wrappers with `feature_cls`."""
    cfg = {k: kwargs.pop(k) for k in _FEATURE_KEYS if k in kwargs}
    feature_cls = cfg.get("feature_cls")
    if feature_cls is None:
        cfg.pop("feature_cls", None)
        cfg.pop("flatten_sequential", None)
        cfg.setdefault("out_indices", None)  # the library's default levels, not timm's 0-4
        # T2TFeatures checks output_stride (16 caps the pyramid at stride 16).
        return {"feature_cls": _feature_model, "output_stride": output_stride, **cfg}
    _check_output_stride(name, output_stride)
    if isinstance(feature_cls, str) and feature_cls.lower() not in _FEATURE_CLASSES:
        raise ValueError(
            f"feature_cls={feature_cls!r} is not one of timm's feature wrappers for {name}; "
            f"accepted: {', '.join(map(repr, _FEATURE_CLASSES))}, a class, or none (this "
            "library's T2TFeatures)"
        )
    if "levels" in cfg:
        raise ValueError(
            f"levels={cfg['levels']!r} applies to this library's feature model; leave "
            f"feature_cls={feature_cls!r} out to use it, or drop levels"
        )
    return cfg


def _merge_cfg(
    ours: dict[str, Any] | None,
    timms: dict[str, Any],
    explicit: dict[str, Any],
) -> dict[str, Any]:
    """One `pretrained_cfg` with timm's keys and this library's.

    timm's resolved cfg (the tag's, with the caller's `pretrained_cfg` dict and overlay) is
    the base; what the model itself fixes (its input size and channels, its labels, and the
    loaded weights' source and metrics) replaces it; what the caller gave explicitly wins.
    """
    cfg = {**timms, **(ours or {}), **explicit}
    labels = cfg.get("labels")
    if cfg.get("label_names") is None and isinstance(labels, list):
        cfg["label_names"] = list(labels)
    return cfg


def _check_output_stride(name: str, output_stride: Any) -> None:
    if output_stride not in (None, 16):
        raise ValueError(
            f"output_stride={output_stride} is not available for {name}: its deepest maps "
            "have stride 16 (a T2T-ViT has no dilation); accepted: 16 or None"
        )


#: The model keywords timm's builder fills from the `pretrained_cfg` when not given.
_FILLED_BY_TIMM = ("num_classes", "in_chans", "global_pool")


def _create(preset: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """What timm's `create_model` calls: timm's own builder (`build_model_with_cfg`) around
    this library's model, so timm's keywords work as for its own models.

    timm resolves the `pretrained_cfg` (tag, `pretrained_cfg=`, `pretrained_cfg_overlay=`),
    fills `num_classes`/`in_chans` from it, and wraps `features_only` models; the model and
    its pretrained weights come from `t2t_vit.create_model`, whose loader converts the
    original release files (timm's downloader cannot).
    """
    name = timm_name(preset)
    pretrained_cfg = kwargs.pop("pretrained_cfg", None)
    overlay = dict(kwargs.pop("pretrained_cfg_overlay", None) or {})
    cache_dir = kwargs.pop("cache_dir", None)
    output_stride = kwargs.pop("output_stride", None)
    features_only = bool(kwargs.pop("features_only", False))
    # One guard for the feature keywords, whether the model is a preset or a folder's.
    feature_cfg = _feature_cfg(name, kwargs, output_stride) if features_only else None
    if not features_only:
        _check_output_stride(name, output_stride)
        extra = [k for k in _FEATURE_KEYS if k in kwargs]
        if extra:
            raise ValueError(f"{extra[0]}={kwargs[extra[0]]!r} needs features_only=True")
    if _folder_of(pretrained_cfg) is not None:
        return _create_from_folder(
            preset, pretrained, pretrained_cfg, cache_dir, feature_cfg, overlay, kwargs
        )
    tag = _tag(preset, pretrained_cfg)
    if pretrained and tag is None:
        tag = get_weights(preset).tag  # raises, naming the presets with weights
    weights = preset if tag is None else f"{preset}.{tag}"
    explicit = {**(pretrained_cfg if isinstance(pretrained_cfg, dict) else {}), **overlay}
    built: dict[str, Any] = {}

    asked = set(kwargs)

    def build(**model_kwargs: Any) -> T2TViT:
        if pretrained:
            # timm fills `num_classes`/`in_chans` from the cfg; the loader takes the
            # checkpoint's own unless the caller asked for others.
            for key in _FILLED_BY_TIMM:
                if key not in asked:
                    model_kwargs.pop(key, None)
            if cache_dir is not None:
                model_kwargs["cache_dir"] = cache_dir
        model = create_model(weights, pretrained=pretrained, **model_kwargs)
        assert isinstance(model, T2TViT)
        built["cfg"] = model.pretrained_cfg
        return model

    if tag is not None and not isinstance(pretrained_cfg, dict):
        pretrained_cfg = tag
    model: nn.Module = build_model_with_cfg(
        build,
        name,
        pretrained=False,  # loaded by `build`, through this library's loader
        pretrained_cfg=pretrained_cfg,
        pretrained_cfg_overlay=overlay,
        feature_cfg=feature_cfg,
        features_only=features_only,
        **kwargs,
    )
    cfg = _merge_cfg(built.get("cfg"), dict(getattr(model, "pretrained_cfg", None) or {}), explicit)
    _set_cfg(model, cfg, headless=features_only and isinstance(model, T2TFeatures))
    return model


def _set_cfg(model: nn.Module, cfg: dict[str, Any], headless: bool) -> None:
    """Give `model` its `pretrained_cfg` after timm's builder set its own; a `headless`
    feature model's has no classifier and `num_classes` 0."""
    if headless:
        cfg.pop("classifier", None)
        cfg["num_classes"] = 0
    # One of timm's own wrappers has `default_cfg` as a plain attribute: kept in step.
    for attr in ("pretrained_cfg", "default_cfg"):
        setattr(model, attr, cfg)


#: The sources timm reads a folder's `config.json` from (`timm.create_model("local-dir:...")`).
_FOLDER_SOURCES = ("local-dir", "hf-hub")


def _folder_of(pretrained_cfg: Any) -> tuple[str, str] | None:
    """`("local-dir", path)` or `("hf-hub", "org/name[@revision]")` when timm took the
    architecture from a folder's `config.json`; `None` otherwise."""
    if hasattr(pretrained_cfg, "to_dict"):
        pretrained_cfg = pretrained_cfg.to_dict()
    if not isinstance(pretrained_cfg, dict):
        return None
    source = pretrained_cfg.get("source")
    if source not in _FOLDER_SOURCES:
        return None
    where = pretrained_cfg.get("file" if source == "local-dir" else "hf_hub_id")
    return (source, where) if isinstance(where, str) and where else None


def _create_from_folder(
    preset: str,
    pretrained: bool,
    pretrained_cfg: Any,
    cache_dir: Any,
    feature_cfg: dict[str, Any] | None,
    overlay: dict[str, Any],
    kwargs: dict[str, Any],
) -> nn.Module:
    """The model of a `local-dir:` or `hf-hub:` folder.

    timm reads the folder's `config.json` itself, calls the entry point its `architecture`
    names and passes the folder's `model_args` as keywords (with a copy in
    `pretrained_model_args`) and its `pretrained_cfg`, with the folder's place in it.
    `pretrained=True` loads that folder through `t2t_vit.from_pretrained`, never the
    registry's weights for the `tag` the folder's `pretrained_cfg` may name; keywords the
    caller gave that differ from the folder's (`num_classes=10`, ...) apply as they do
    there. `pretrained=False` builds the folder's architecture, untrained, with its
    preprocessing. `features_only` goes through timm's builder with the same `feature_cfg`
    as a preset's (this library's pyramid by default, or the wrapper `feature_cls` names).
    """
    found = _folder_of(pretrained_cfg)
    assert found is not None
    source, where = found
    saved = kwargs.pop("pretrained_model_args", None) or {}
    cfg = dict(pretrained_cfg.to_dict() if hasattr(pretrained_cfg, "to_dict") else pretrained_cfg)
    built: dict[str, Any] = {}

    def build(**model_kwargs: Any) -> nn.Module:
        # What the caller asked for: timm added the folder's own arguments to the keywords.
        asked = {k: v for k, v in model_kwargs.items() if not (k in saved and saved[k] == v)}
        model: nn.Module
        if pretrained:
            name = where
            if source == "hf-hub":
                name, _, revision = where.partition("@")
                asked.setdefault("revision", revision or None)
                if cache_dir is not None:
                    asked.setdefault("cache_dir", cache_dir)
            model = create_model(name, pretrained=True, **asked)
        else:
            # The folder's preprocessing and class names: timm's pretrained_cfg, where it
            # found them left out; its class count unless the caller gives one.
            classifier = create_model(preset, **model_kwargs)
            assert isinstance(classifier, T2TViT)
            names = cfg.get("label_names")
            own = {k: v for k, v in cfg.items() if k not in _FOLDER_ONLY_KEYS}
            if isinstance(names, (list, tuple)) and len(names) == classifier.num_classes:
                own["labels"] = [str(n) for n in names]
            classifier.pretrained_cfg = complete_pretrained_cfg(classifier, own)
            model = classifier
        built["cfg"] = dict(getattr(model, "pretrained_cfg", None) or {})
        return model

    model: nn.Module = build_model_with_cfg(
        build,
        timm_name(preset),
        pretrained=False,  # loaded by `build`, from the folder
        # timm builds its PretrainedCfg from the dict: its own keys only (a folder that
        # timm's save_for_hf wrote from our model also holds this library's keys).
        pretrained_cfg={k: v for k, v in cfg.items() if k in TIMM_CFG_KEYS},
        pretrained_cfg_overlay=overlay,
        feature_cfg=feature_cfg,
        features_only=feature_cfg is not None,
        **kwargs,
    )
    # timm's builder set its resolved cfg: the folder's own, as loaded, is kept.
    _set_cfg(model, {**built["cfg"], **overlay}, headless=feature_cfg is not None)
    return model


#: Keys of timm's folder cfg that say where the folder is, or that T2T-ViT names otherwise.
_FOLDER_ONLY_KEYS = ("source", "file", "hf_hub_id", "url", "label_names", "label_descriptions")


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
