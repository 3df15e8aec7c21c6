"""Training helpers for the caller's loop: layer-wise lr decay groups and a cosine schedule."""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

from torch import nn

from .models.wrappers import unwrap_model

__all__ = ["cosine_with_warmup", "layer_id", "param_groups_layer_decay"]

#: Parameter-name prefixes of the embedding layer (layer id 0).
_EMBED_PREFIXES = ("tokens_to_token.", "cls_token", "pos_embed", "pos_drop.")


def layer_id(name: str, depth: int) -> int:
    """The layer id of a parameter name: 0 for the stem, class token and
    position table, `i + 1` for `blocks.i`, `depth + 1` for the rest (final
    norm, head)."""
    if name.startswith(_EMBED_PREFIXES):
        return 0
    if name.startswith("blocks."):
        return int(name.split(".")[1]) + 1
    return depth + 1


def param_groups_layer_decay(
    model: nn.Module,
    weight_decay: float = 0.05,
    layer_decay: float = 0.75,
    no_weight_decay: str | Iterable[str] = (),
    lr: float | None = None,
) -> list[dict[str, Any]]:
    """Optimizer parameter groups with layer-wise learning-rate decay (BEiT-style).

    With `depth` blocks there are `depth + 2` layer ids (see `layer_id`); a
    parameter in layer `i` gets `lr_scale = layer_decay ** (depth + 1 - i)`, so the
    head trains at the full rate and the stem at `layer_decay ** (depth + 1)`.
    One-dimensional parameters (biases, norms), names ending in `.bias`, the
    model's `no_weight_decay()` names and the names in `no_weight_decay` (one name or
    several) take no weight decay. Frozen parameters are left out. Each group carries `lr_scale`,
    `layer_id`, `weight_decay` and `param_names`; with `lr` given it also has
    `lr = lr * lr_scale`, so `torch.optim.lr_scheduler.LambdaLR` keeps the ratios.
    Groups are ordered by layer id, decayed group first.

    A model wrapped by `torch.compile`, `DistributedDataParallel` or `DataParallel` is read
    through the wrapper: the groups hold the same parameters, named without the wrapper's
    `_orig_mod.` or `module.` prefix.
    """
    model = unwrap_model(model, "param_groups_layer_decay")
    blocks = getattr(model, "blocks", None)
    if not isinstance(blocks, nn.ModuleList):
        raise ValueError(
            f"param_groups_layer_decay needs a model with a `blocks` nn.ModuleList "
            f"(T2TViT and ViT-like models); got {type(model).__name__}"
        )
    if not 0.0 < layer_decay <= 1.0:
        raise ValueError(f"layer_decay must be in (0, 1], got {layer_decay}")
    if weight_decay < 0.0:
        raise ValueError(f"weight_decay must be >= 0, got {weight_decay}")
    depth = len(blocks)
    # One name given as a string is that name, not its characters.
    given = {no_weight_decay} if isinstance(no_weight_decay, str) else set(no_weight_decay)
    skip = set(given)
    model_skip = getattr(model, "no_weight_decay", None)
    if callable(model_skip):
        skip |= set(model_skip())
    names = {name for name, _ in model.named_parameters()}
    unknown = sorted(given - names)
    if unknown:
        raise ValueError(f"no_weight_decay names {unknown} are not parameters of the model")

    groups: dict[tuple[int, bool], dict[str, Any]] = {}
    for name, param in model.named_parameters():
        if not param.requires_grad:
            continue
        lid = layer_id(name, depth)
        decay = not (param.ndim <= 1 or name.endswith(".bias") or name in skip)
        group = groups.get((lid, decay))
        if group is None:
            scale = layer_decay ** (depth + 1 - lid)
            group = {
                "params": [],
                "param_names": [],
                "weight_decay": weight_decay if decay else 0.0,
                "lr_scale": scale,
                "layer_id": lid,
            }
            if lr is not None:
                group["lr"] = lr * scale
            groups[(lid, decay)] = group
        group["params"].append(param)
        group["param_names"].append(name)
    return [groups[key] for key in sorted(groups, key=lambda k: (k[0], not k[1]))]


def cosine_with_warmup(step: int, total_steps: int, warmup_steps: int = 0) -> float:
    """The lr multiplier at `step` (for `LambdaLR`): `(step + 1) / warmup_steps`
    during warm-up, then a half cosine from 1 down to 0 at `total_steps`."""
    if total_steps < 1 or not 0 <= warmup_steps <= total_steps:
        raise ValueError(
            f"need total_steps >= 1 and 0 <= warmup_steps <= total_steps; "
            f"got total_steps={total_steps}, warmup_steps={warmup_steps}"
        )
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = (step - warmup_steps) / max(1, total_steps - warmup_steps)
    return 0.5 * (1.0 + math.cos(math.pi * min(1.0, progress)))
