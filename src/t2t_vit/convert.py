"""Turning checkpoints of other layouts into this library's state dict and Hub folder."""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import Tensor, nn

__all__ = [
    "SOURCES",
    "ConversionResult",
    "check_state_dict",
    "convert_checkpoint",
    "convert_state_dict",
    "detect_source",
    "infer_model_args",
    "sha256sum",
]

#: Checkpoint layouts `convert_state_dict` reads.
SOURCES: tuple[str, ...] = ("official", "mmpretrain")

# mmpretrain -> official names. Applied in order to keys that had the `backbone.` prefix
# (and to the classifier `head.layers.head.`); anything else is left for the checks to flag.
_MMPRETRAIN_RULES: tuple[tuple[re.Pattern[str], str], ...] = tuple(
    (re.compile(p), r)
    for p, r in (
        (r"^encoder\.(\d+)\.", r"blocks.\1."),
        (r"\.ln1\.", ".norm1."),
        (r"\.ln2\.", ".norm2."),
        (r"\.ffn\.layers\.0\.0\.", ".mlp.fc1."),
        (r"\.ffn\.layers\.1\.", ".mlp.fc2."),
    )
)


def _strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def detect_source(state_dict: Mapping[str, Tensor]) -> str:
    """`'mmpretrain'` for OpenMMLab key names (`backbone.`, `head.layers.`), else `'official'`."""
    keys = [k.removeprefix("module.") for k in state_dict]
    if any(k.startswith(("backbone.", "head.layers.")) for k in keys):
        return "mmpretrain"
    return "official"


def _from_mmpretrain(state_dict: Mapping[str, Tensor]) -> dict[str, Tensor]:
    out: dict[str, Tensor] = {}
    for key, value in state_dict.items():
        # mmcv's EMAHook keeps the raw weights in `ema_*` buffers while the regular keys
        # hold the averaged (evaluated) weights at save time; the raw copy is not needed.
        if key.startswith("ema_"):
            continue
        new = key
        if key.startswith("backbone."):
            new = key.removeprefix("backbone.")
            for pattern, repl in _MMPRETRAIN_RULES:
                new = pattern.sub(repl, new)
        elif key.startswith("head.layers.head."):
            new = "head." + key.removeprefix("head.layers.head.")
        if new in out:
            raise ValueError(f"two checkpoint keys map to {new!r} (second: {key!r})")
        out[new] = value
    return out


def convert_state_dict(
    state_dict: Mapping[str, Tensor],
    source: str = "official",
    model: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Convert a state dict of the `source` layout to this library's layout.

    `official`: the released `yitu-opensource/T2T-ViT` checkpoints. This library
    keeps the official key names, so only a DataParallel/DDP `module.` prefix is
    removed. `mmpretrain`: OpenMMLab's T2T-ViT_t files (`backbone.encoder.N.ln1`,
    `ffn.layers.0.0`, `head.layers.head`, ...) are renamed to the official names.
    `auto` picks one with `detect_source`. With `model`, the result is checked
    against it: every key present, none extra, every shape equal (`check_state_dict`).
    """
    if source not in (*SOURCES, "auto"):
        raise ValueError(
            f"unknown checkpoint source {source!r}; accepted: {', '.join(SOURCES)}, auto"
        )
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ValueError("expected a non-empty mapping of parameter names to tensors")
    out = _strip_prefix(state_dict, "module.")
    if source == "auto":
        source = detect_source(out)
    if source == "mmpretrain":
        out = _from_mmpretrain(out)
    if model is not None:
        check_state_dict(model, out)
    return out


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise `ValueError` listing missing keys, unexpected keys and shape mismatches."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        f"{k}: checkpoint {tuple(state_dict[k].shape)} vs model {tuple(expected[k].shape)}"
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if missing or unexpected or mismatched:
        parts = []
        if missing:
            parts.append(f"missing keys ({len(missing)}): {', '.join(missing)}")
        if unexpected:
            parts.append(f"unexpected keys ({len(unexpected)}): {', '.join(unexpected)}")
        if mismatched:
            parts.append(f"shape mismatches ({len(mismatched)}): {'; '.join(mismatched)}")
        raise ValueError("checkpoint does not fit the model: " + "; ".join(parts))


# -- architecture inference ---------------------------------------------------------------


def _shape(state_dict: Mapping[str, Tensor], key: str) -> tuple[int, ...]:
    if key not in state_dict:
        raise ValueError(
            f"cannot infer the architecture: the checkpoint has no {key!r} "
            "(is it a T2T-ViT checkpoint? pass --model NAME or --model CONFIG.json)"
        )
    return tuple(state_dict[key].shape)


def infer_model_args(
    state_dict: Mapping[str, Tensor],
) -> tuple[str | None, dict[str, Any], list[str]]:
    """Read the architecture off an official-layout state dict's shapes.

    Returns `(preset, kwargs, alternatives)`: the first preset whose shapes fit (`None`
    when none does), `T2TViT` kwargs (the preset's, with `num_classes` and `img_size`
    from the head and position table), and other presets with the same shapes (they
    can differ in `num_heads`, which shapes do not show).
    """
    from .presets import PRESETS

    if "tokens_to_token.attention1.kqv.weight" in state_dict:
        tokens_type = "performer"
    elif "tokens_to_token.attention1.attn.qkv.weight" in state_dict:
        tokens_type = "transformer"
    else:
        raise ValueError(
            "cannot infer the architecture: no T2T layer found (expected "
            "tokens_to_token.attention1.kqv.weight or tokens_to_token.attention1.attn.qkv.weight)"
        )
    embed_dim = _shape(state_dict, "cls_token")[-1]
    depth = len({int(m.group(1)) for k in state_dict if (m := re.match(r"blocks\.(\d+)\.", k))})
    hidden = _shape(state_dict, "blocks.0.mlp.fc1.weight")[0]
    mlp_ratio = hidden / embed_dim
    num_tokens = _shape(state_dict, "pos_embed")[1] - 1
    side = round(num_tokens**0.5)
    if side * side != num_tokens:
        raise ValueError(f"cannot infer img_size from a non-square grid of {num_tokens} tokens")
    # The default stem (strides 4, 2, 2) maps a side of 16*g pixels to g tokens.
    img_size = side * 16
    num_classes = _shape(state_dict, "head.weight")[0] if "head.weight" in state_dict else 0
    fits = [
        name
        for name, args in PRESETS.items()
        if "img_size" not in args
        and args["tokens_type"] == tokens_type
        and args["embed_dim"] == embed_dim
        and args["depth"] == depth
        and args["mlp_ratio"] == mlp_ratio
    ]
    found = {
        "tokens_type": tokens_type,
        "embed_dim": embed_dim,
        "depth": depth,
        "mlp_ratio": mlp_ratio,
        "token_dim": _shape(state_dict, "tokens_to_token.attention1.norm2.weight")[0],
        "in_chans": _shape(state_dict, "tokens_to_token.attention1.norm1.weight")[0] // 49,
        "qkv_bias": "blocks.0.attn.qkv.bias" in state_dict,
    }
    extra = {"num_classes": num_classes, "img_size": img_size}
    if not fits:
        return None, {**found, **extra}, []
    return fits[0], {**PRESETS[fits[0]], **extra}, fits[1:]


# -- whole-checkpoint conversion -----------------------------------------------------------


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote and decided."""

    out_dir: Path
    #: Written file name -> SHA-256.
    files: dict[str, str]
    model_args: dict[str, Any]
    #: Registry weight name or preset the architecture came from (`None`: a custom config).
    model_name: str | None
    source: str
    #: The checkpoint key the weights were read from (`None`: the file is a bare state dict).
    state_dict_key: str | None
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_model_json(path: Path) -> dict[str, Any]:
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError(f"{path} must hold a JSON object of T2TViT arguments")
    for key in ("model_args", "official_kwargs"):
        if isinstance(data.get(key), dict):
            return dict(data[key])
    return data


def _resolve_model(
    model: str | Mapping[str, Any] | None,
    state_dict: Mapping[str, Tensor],
    checkpoint_name: str,
) -> tuple[dict[str, Any], str | None, Any, list[str]]:
    """(model kwargs, name, registry entry or None, notes)."""
    from .presets import PRESETS, canonical_name
    from .weights import find_weights_by_file_name, get_weights

    notes: list[str] = []
    entry = find_weights_by_file_name(checkpoint_name)
    if isinstance(model, Mapping):
        return dict(model), None, entry, notes
    if isinstance(model, str) and model.endswith(".json"):
        return _read_model_json(Path(model)), None, entry, notes
    if isinstance(model, str) and "." in model:
        entry = get_weights(model)
        return entry.model_args(), entry.name, entry, notes
    if isinstance(model, str):
        preset = canonical_name(model)
        _, inferred, _ = infer_model_args(state_dict)
        extra = {k: inferred[k] for k in ("num_classes", "img_size")}
        return {**PRESETS[preset], **extra}, preset, entry, notes
    if entry is not None:
        notes.append(f"recognised {entry.file_name} as registry weights {entry.name!r}")
        return entry.model_args(), entry.name, entry, notes
    found, kwargs, others = infer_model_args(state_dict)
    if found is None:
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise ValueError(
            f"the checkpoint's shapes ({shown}) fit no preset ({', '.join(PRESETS)}); pass "
            "--model CONFIG.json with its T2TViT arguments (num_heads cannot be read from shapes)"
        )
    notes.append(f"inferred preset {found!r} from the checkpoint's shapes")
    if others:
        notes.append(
            f"the shapes also fit {', '.join(others)} (num_heads differs); pass --model to choose"
        )
    return kwargs, found, None, notes


def convert_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    source: str = "auto",
    model: str | Mapping[str, Any] | None = None,
    trust_checkpoint: bool = False,
    ignore_keys: Iterable[str] = (),
) -> ConversionResult:
    """Convert an original checkpoint file into a Hub folder: `model.safetensors`,
    `config.json` and a model card `README.md`.

    `model` is a registry weight name (`t2t-vit-14.cifar10`), a preset name, a JSON file
    or a dict of `T2TViT` arguments; by default the file name is looked up in the
    registry, else the preset is inferred from the shapes. Keys starting with any of
    `ignore_keys` are dropped (and reported); every other key must be used and every
    shape must fit. The file is read with `load_checkpoint` (weights only unless
    `trust_checkpoint`).
    """
    from .checkpoint import extract_state_dict, load_checkpoint
    from .hub import CONFIG_NAME, MODEL_CARD_NAME, WEIGHTS_NAME, save_pretrained, write_model_card
    from .model import T2TViT
    from .pretrained_cfg import default_pretrained_cfg

    path = Path(checkpoint)
    raw, key = extract_state_dict(load_checkpoint(path, trust_checkpoint=trust_checkpoint))
    prefixes = tuple(ignore_keys)
    dropped = sorted(k for k in raw if prefixes and k.removeprefix("module.").startswith(prefixes))
    raw = {k: v for k, v in raw.items() if k not in dropped}
    detected: str = detect_source(_strip_prefix(raw, "module.")) if source == "auto" else source
    state_dict = convert_state_dict(raw, source=detected)
    model_args, name, entry, notes = _resolve_model(model, state_dict, path.name)
    if entry is not None and entry.source != detected:
        notes.append(
            f"registry entry {entry.name!r} is {entry.source}; the file reads as {detected}"
        )
    net = T2TViT(**model_args)
    try:
        check_state_dict(net, state_dict)
    except ValueError as err:
        raise ValueError(
            f"{path.name} does not fit {name or 'the given architecture'}: {err}"
        ) from None
    net.load_state_dict(state_dict, strict=True)

    if entry is not None:
        cfg = entry.pretrained_cfg()
    else:
        img = net.img_size
        cfg = default_pretrained_cfg(img, net.in_chans)
        classes = net.num_classes
        if classes != 1000:
            # Unknown classes: name them by index rather than guess a dataset.
            cfg["labels"] = [str(i) for i in range(classes)]
        cfg["source"] = {"origin": f"converted from {path.name}", "file_name": path.name}
    cfg["source"]["sha256"] = sha256sum(path)
    cfg["source"]["format"] = detected
    out = save_pretrained(net, out_dir, pretrained_cfg=cfg)
    write_model_card(out, model_args=net.config, pretrained_cfg=cfg, name=name)
    files = {n: sha256sum(out / n) for n in (WEIGHTS_NAME, CONFIG_NAME, MODEL_CARD_NAME)}
    if dropped:
        notes.append(f"dropped {len(dropped)} ignored keys: {', '.join(dropped)}")
    return ConversionResult(
        out_dir=out,
        files=files,
        model_args=net.config,
        model_name=name,
        source=detected,
        state_dict_key=key,
        dropped_keys=dropped,
        notes=notes,
    )
