"""Looking through `torch.compile`, `DataParallel` and `DistributedDataParallel`: the one place
that knows their wrappers, for every function that takes a model or its state dict."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TypeVar

from torch import nn

__all__ = ["WRAPPER_PREFIXES", "strip_wrapper_prefixes", "unwrap_model"]

#: Key prefixes the wrappers add to a state dict: `torch.compile`'s OptimizedModule keeps
#: the model as `_orig_mod`, (Distributed)DataParallel as `module`.
WRAPPER_PREFIXES: tuple[str, ...] = ("_orig_mod.", "module.")

V = TypeVar("V")


def unwrap_model(model: nn.Module, caller: str = "this function") -> nn.Module:
    """The model inside any nesting of `torch.compile`'s and (Distributed)DataParallel's
    wrappers, whose parameters are the same tensors under their own names.

    FSDP (version 1) flattens the parameters into shards that name no layer: refused with a
    message naming `caller`.
    """
    from torch.distributed.fsdp import FullyShardedDataParallel
    from torch.nn.parallel import DataParallel, DistributedDataParallel

    while True:
        if isinstance(model, FullyShardedDataParallel):
            raise ValueError(
                f"{caller} cannot read FullyShardedDataParallel's flattened parameters; use "
                "FSDP2 (torch.distributed.fsdp.fully_shard), which keeps the model and its "
                "parameter names"
            )
        inner = getattr(model, "_orig_mod", None)  # torch.compile's OptimizedModule
        if isinstance(inner, nn.Module):
            model = inner
        elif isinstance(model, (DataParallel, DistributedDataParallel)):
            model = model.module
        else:
            return model


def strip_wrapper_prefixes(state_dict: Mapping[str, V]) -> dict[str, V]:
    """A state dict without the `_orig_mod.` / `module.` prefixes that every one of its keys
    carries (in any nesting, e.g. `module._orig_mod.`); keys are left alone when not all of
    them carry the prefix."""
    out = dict(state_dict)
    while out:
        for prefix in WRAPPER_PREFIXES:
            if all(k.startswith(prefix) for k in out):
                out = {k[len(prefix) :]: v for k, v in out.items()}
                break
        else:
            return out
    return out
