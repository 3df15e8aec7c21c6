"""Turning state dicts of other layouts into this library's, and checking them against a model."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import torch
from torch import Tensor, nn

from ..models.presets import PRESETS
from ..models.wrappers import strip_wrapper_prefixes

__all__ = [
    "SOURCES",
    "StateDictMismatchError",
    "adapt_input_channels",
    "check_state_dict",
    "convert_state_dict",
    "describe_weights",
    "detect_source",
    "infer_model_args",
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


def detect_source(state_dict: Mapping[str, Tensor]) -> str:
    """`'mmpretrain'` for OpenMMLab key names (`backbone.`, `head.layers.`), else `'official'`."""
    keys = list(strip_wrapper_prefixes(state_dict))
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
    keeps the official key names, so only the `module.` (DataParallel/DDP) and
    `_orig_mod.` (`torch.compile`) prefixes are removed. `mmpretrain`: OpenMMLab's
    T2T-ViT_t files (`backbone.encoder.N.ln1`,
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
    out = strip_wrapper_prefixes(state_dict)
    if source == "auto":
        source = detect_source(out)
    if source == "mmpretrain":
        out = _from_mmpretrain(out)
    if model is not None:
        check_state_dict(model, out)
    return out


class StateDictMismatchError(ValueError):
    """A state dict does not fit a model. The message summarises; `missing`, `unexpected`
    and `mismatched` (`(key, checkpoint shape, model shape)`) hold the full lists."""

    def __init__(
        self,
        message: str,
        missing: list[str],
        unexpected: list[str],
        mismatched: list[tuple[str, tuple[int, ...], tuple[int, ...]]],
    ) -> None:
        """The error of a state dict that does not fit.

        Args:
            message: The summary: counts, the first few keys and what the weights look like.
            missing: Every key the model has and the state dict lacks.
            unexpected: Every key the state dict has and the model lacks.
            mismatched: Every `(key, checkpoint shape, model shape)` that differs.
        """
        super().__init__(message)
        self.missing = missing
        self.unexpected = unexpected
        self.mismatched = mismatched


#: How many keys of each kind a mismatch message shows.
SHOWN_KEYS = 3


def _first(items: list[str], sep: str = ", ") -> str:
    more = len(items) - SHOWN_KEYS
    return sep.join(items[:SHOWN_KEYS]) + (f"{sep}... and {more} more" if more > 0 else "")


def describe_weights(state_dict: Mapping[str, Tensor]) -> str:
    """Which architecture a state dict's shapes show: `'t2t-vit-14 (performer stem, width
    384, 14 blocks, 1000 classes, 224x224)'`, or what they show when no preset fits."""
    try:
        preset, args, _ = infer_model_args(state_dict)
    except ValueError:
        return "not a T2T-ViT's (no T2T layer, or no class token)"
    shape = (
        f"{args['tokens_type']} stem, width {args['embed_dim']}, {args['depth']} blocks, "
        f"{args['num_classes']} classes, {args['img_size']}x{args['img_size']}"
    )
    return f"{preset} ({shape})" if preset else f"no preset ({shape})"


def check_state_dict(model: nn.Module, state_dict: Mapping[str, Tensor]) -> None:
    """Raise `StateDictMismatchError` (a `ValueError`) when keys are missing or unexpected
    or shapes differ: counts, the first few of each, and the architecture the weights
    look like; the full lists are on the exception."""
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state_dict))
    unexpected = sorted(set(state_dict) - set(expected))
    mismatched = [
        (k, tuple(state_dict[k].shape), tuple(expected[k].shape))
        for k in sorted(set(expected) & set(state_dict))
        if tuple(state_dict[k].shape) != tuple(expected[k].shape)
    ]
    if not (missing or unexpected or mismatched):
        return
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing keys ({_first(missing)})")
    if unexpected:
        parts.append(f"{len(unexpected)} unexpected keys ({_first(unexpected)})")
    if mismatched:
        shapes = [f"{k}: checkpoint {c} vs model {m}" for k, c, m in mismatched]
        parts.append(f"{len(mismatched)} shape mismatches ({_first(shapes, '; ')})")
    message = (
        f"checkpoint does not fit the model: {'; '.join(parts)}. The weights look like "
        f"{describe_weights(state_dict)}"
    )
    raise StateDictMismatchError(message, missing, unexpected, mismatched)


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
    from the head and position table, and `in_chans` from the first layer when it is not
    3), and other presets with the same shapes (they
    can differ in `num_heads`, which shapes do not show).
    """
    state_dict = strip_wrapper_prefixes(state_dict)
    if "tokens_to_token.attention1.kqv.weight" in state_dict:
        tokens_type = "performer"
    elif "tokens_to_token.attention1.attn.qkv.weight" in state_dict:
        tokens_type = "transformer"
    else:
        keys = list(state_dict)
        shown = ", ".join(keys[:5]) + (f", ... ({len(keys)} keys)" if len(keys) > 5 else "")
        raise ValueError(
            "cannot infer the architecture: no T2T layer found (expected "
            "tokens_to_token.attention1.kqv.weight or tokens_to_token.attention1.attn.qkv.weight"
            f"; the checkpoint has {shown}). Is it a T2T-ViT checkpoint? Pass --model NAME or "
            "--model CONFIG.json for one of another layout"
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
    if found["in_chans"] != 3:
        # The first layer's width: a grey-scale (or multi-band) model of a preset's shape.
        extra["in_chans"] = found["in_chans"]
    if not fits:
        return None, {**found, **extra}, []
    return fits[0], {**PRESETS[fits[0]], **extra}, fits[1:]


# -- input channels -------------------------------------------------------------------------

_STEM = "tokens_to_token."


def _repeat_channels(weight: Tensor, in_chans: int) -> Tensor:
    """timm's `adapt_input_conv` on `(out, C, ...)`: one channel sums the checkpoint's,
    other counts repeat them cyclically, rescaled by `C / in_chans`."""
    chans = weight.shape[1]
    if in_chans == 1:
        return weight.sum(dim=1, keepdim=True)
    repeat = -(-in_chans // chans)
    tiled = weight.repeat(1, repeat, *([1] * (weight.ndim - 2)))[:, :in_chans]
    return tiled * (chans / in_chans)


def adapt_input_channels(
    state_dict: Mapping[str, Tensor], in_chans: int, from_chans: int = 3
) -> dict[str, Tensor]:
    """A state dict for `in_chans` input channels from one trained on `from_chans`, as timm's
    `adapt_input_conv` adapts a first convolution.

    The weights that see the image are those of the stem's first layer: the patch stem's
    convolution, or the first T2T layer's LayerNorm and projection over the soft split's
    `(channel, ki, kj)`-ordered patch. The LayerNorm's scale and shift are folded into the
    projection (LayerNorm of a channel-repeated patch equals that of one copy), so the
    per-channel blocks of the projection sum (`in_chans=1`) or repeat with a `3 / in_chans`
    rescale, as a convolution's would. A 1-channel model then gives on `x` exactly what
    the checkpoint's model gives on `x` repeated to RGB, as does an `in_chans` that is a
    multiple of 3 on RGB repeated. For the transformer stem, whose projection has no bias and
    whose attention scale follows the patch width, the folded shift is carried by the
    output projection's bias, the key's dropped (softmax ignores it), the query's solved
    into the new LayerNorm shift, and the scale change folded into the queries.
    """
    if in_chans < 1:
        raise ValueError(f"in_chans={in_chans} is not a channel count: pass 1 or more")
    state = dict(state_dict)
    if in_chans == from_chans:
        return state
    conv = state.get(_STEM + "project.weight")
    if conv is not None and conv.ndim == 4:  # the patch stem
        state[_STEM + "project.weight"] = _repeat_channels(conv.double(), in_chans).to(conv.dtype)
        return state
    layer = _STEM + "attention1."
    norm_w, norm_b = state[layer + "norm1.weight"].double(), state[layer + "norm1.bias"].double()
    dtype = state[layer + "norm1.weight"].dtype
    performer = layer + "kqv.weight" in state
    key = layer + ("kqv.weight" if performer else "attn.qkv.weight")
    weight = state[key].double()
    out = weight.shape[0]
    folded = weight * norm_w  # the LayerNorm's scale, per input feature
    shift = weight @ norm_b  # what its shift adds to every output
    adapted = _repeat_channels(folded.reshape(out, from_chans, -1), in_chans).reshape(out, -1)
    width = adapted.shape[1]
    new_shift = torch.zeros(width, dtype=torch.float64)
    if performer:
        bias = layer + "kqv.bias"
        state[bias] = (state[bias].double() + shift).to(dtype)
    else:
        q, k, v = adapted.chunk(3)
        shift_q, _, shift_v = shift.chunk(3)  # the key's is the same for every key: no effect
        # The attention scale is (patch width)^-0.5: keep the checkpoint's by scaling q.
        ratio = (width / folded.shape[1]) ** 0.5
        # The query's shift adds shift_q . k_j to every query's logit of key j; a LayerNorm
        # shift b gives q(b) . k_j instead, so solve (K^T Q) b = K^T shift_q.
        new_shift = torch.linalg.lstsq(k.T @ q, (k.T @ shift_q).unsqueeze(1)).solution[:, 0]
        # The values' shift (and that of the new LayerNorm shift) passes through the
        # attention unchanged (its rows sum to 1) into the residual and the projection.
        dv = shift_v - v @ new_shift
        proj_w = state[layer + "attn.proj.weight"].double()
        bias = layer + "attn.proj.bias"
        state[bias] = (state[bias].double() + dv + proj_w @ dv).to(dtype)
        adapted = torch.cat([q * ratio, k, v])
    state[key] = adapted.to(dtype)
    state[layer + "norm1.weight"] = torch.ones(width, dtype=dtype)
    state[layer + "norm1.bias"] = new_shift.to(dtype)
    return state
