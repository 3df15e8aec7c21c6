"""Linear layers through oneDNN's prepacked GEMM where that is measured faster."""

from __future__ import annotations

import weakref
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torch.nn.modules import module as _module_mod

from . import precision

__all__ = [
    "PACKED_MIN_ROWS",
    "linear",
    "prefers_packed_linear",
    "sequential",
    "use_packed_linear",
]

#: Below this many rows (tokens x batch) a prepacked GEMM is slower than MKL's: the
#: classifier head at a small batch (one row per image) stays on `F.linear`.
PACKED_MIN_ROWS = 64

#: The attribute `use_packed_linear` sets on each `nn.Linear`: True, False, or absent
#: for the automatic choice.
_CHOICE_ATTR = "t2t_vit_packed_gemm"


class _Packed(NamedTuple):
    weight: weakref.ref[Tensor]
    version: int
    data_ptr: int
    packed: Tensor


# Keyed weakly by module, so the packed copy lives as long as its layer and never
# enters the module's own state: `state_dict`, `deepcopy` and pickling do not see it
# (an opaque oneDNN tensor cannot be deep-copied).
_packed_weights: weakref.WeakKeyDictionary[nn.Module, _Packed] = weakref.WeakKeyDictionary()


def _ops_available() -> bool:
    return (
        bool(torch.backends.mkldnn.is_available())  # type: ignore[no-untyped-call]
        and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        and hasattr(torch.ops.mkldnn, "_reorder_linear_weight")
    )


_HAS_OPS = _ops_available()


def prefers_packed_linear(rows: int, dtype: torch.dtype, device: torch.device) -> bool:
    """Whether a prepacked oneDNN GEMM was measured faster than `F.linear` here.

    True for fp32 on an x86 CPU with AVX2 but without AVX-512, from `PACKED_MIN_ROWS`
    rows on: on an AMD EPYC of that kind the prepacked GEMM ran the blocks' shapes 5-9%
    faster than MKL's and whole models 5-10% faster (`docs/performance.md`). Other CPU
    kinds have not been measured, so they keep `F.linear` unless
    `use_packed_linear(model, True)` asks for it. Never for half precision, whose GEMMs
    already run through oneDNN.
    """
    if device.type != "cpu" or dtype != torch.float32 or rows < PACKED_MIN_ROWS:
        return False
    flags = precision.cpu_flags()
    return flags is not None and "avx2" in flags and "avx512f" not in flags


def _plain_call(module: nn.Module, kind: type[nn.Module]) -> bool:
    """Whether `module(x)` is exactly `kind.forward(module, x)`: no hooks, no patches."""
    return (
        type(module) is kind
        and not module._forward_hooks
        and not module._forward_pre_hooks
        and "forward" not in module.__dict__
        and not getattr(_module_mod, "_global_forward_hooks", None)
        and not getattr(_module_mod, "_global_forward_pre_hooks", None)
    )


def _packed_weight(module: nn.Module, weight: Tensor, rows: int) -> Tensor:
    entry = _packed_weights.get(module)
    version = weight._version
    if (
        entry is not None
        and entry.weight() is weight
        and entry.version == version
        and entry.data_ptr == weight.data_ptr()
    ):
        return entry.packed
    packed: Tensor = torch.ops.mkldnn._reorder_linear_weight(weight.detach(), rows)
    _packed_weights[module] = _Packed(weakref.ref(weight), version, weight.data_ptr(), packed)
    return packed


def _call(module: nn.Module, x: Tensor) -> Tensor:
    out: Tensor = module(x)
    return out


def linear(module: nn.Module, x: Tensor) -> Tensor:
    """`module(x)`, through a prepacked oneDNN GEMM where that is faster and exact to rounding.

    The packed path runs only in fp32 inference (autograd and autocast off), on plain CPU
    tensors of a plain `nn.Linear` with no hooks, outside tracing, compiling and export, and where
    the layer's choice (`use_packed_linear`) or `prefers_packed_linear` says so. The
    weight is packed once and packed again whenever it changes (a load, an optimiser
    step, `.to()`); everything else calls `module(x)`, so quantised, LoRA-wrapped and
    hooked layers behave as they always do.
    """
    if (
        not _HAS_OPS
        or torch.compiler.is_compiling()  # first: dynamo then traces none of the checks below
        or torch.is_grad_enabled()
        or type(x) is not Tensor
        or x.device.type != "cpu"
        or x.dtype != torch.float32
        or precision.autocast_on_cpu()  # autocast casts `F.linear`'s operands, not this op's
        or not _plain_call(module, nn.Linear)
        or torch._C._get_tracing_state() is not None
        or not torch.backends.mkldnn.enabled
    ):
        return _call(module, x)
    weight = module.weight
    if type(weight) is not nn.Parameter or weight.dtype != torch.float32 or weight.is_inference():
        return _call(module, x)  # e.g. `functional_call` weights, or weights made in inference mode
    rows = x.numel() // x.shape[-1] if x.shape[-1] else 0
    choice = getattr(module, _CHOICE_ATTR, None)
    if choice is None:
        choice = prefers_packed_linear(rows, x.dtype, x.device)
    if not choice or rows == 0 or x.shape[-1] != weight.shape[1]:
        return _call(module, x)  # a width mismatch gets `F.linear`'s own message
    bias = module.bias
    out: Tensor = torch.ops.mkldnn._linear_pointwise(
        x, _packed_weight(module, weight, rows), bias, "none", [], ""
    )
    return out


def sequential(module: nn.Module, x: Tensor) -> Tensor:
    """`module(x)` for an `nn.Sequential`, with each of its `nn.Linear` layers through `linear`."""
    if not isinstance(module, nn.Sequential) or not _plain_call(module, nn.Sequential):
        return _call(module, x)
    for layer in module:
        x = linear(layer, x)
    return x


def use_packed_linear(model: nn.Module, enabled: bool | None = True) -> None:
    """Run every `nn.Linear` in `model` through the prepacked oneDNN GEMM in inference
    (`True`), never (`False`), or where `prefers_packed_linear` says so (`None`, the
    default).

    A packed layer keeps a second, packed copy of its weight while the model lives
    (t2t-vit-14: about 85 MiB), and its results differ from `F.linear`'s by rounding only.
    """
    for module in model.modules():
        if isinstance(module, nn.Linear):
            if enabled is None:
                if _CHOICE_ATTR in module.__dict__:
                    delattr(module, _CHOICE_ATTR)
            else:
                setattr(module, _CHOICE_ATTR, bool(enabled))
            _packed_weights.pop(module, None)
