"""Reading original `.pth` / `.pth.tar` checkpoints without running code from them."""

from __future__ import annotations

import argparse
import os
import pickle
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

__all__ = ["SAFE_GLOBALS", "UnsafeCheckpointError", "extract_state_dict", "load_checkpoint"]

#: Classes that weights-only unpickling may rebuild beyond tensors and plain containers.
#: The official files pickle their training arguments as an `argparse.Namespace`: a plain
#: attribute bag with no `__reduce__`/`__setstate__` of its own, so rebuilding one only
#: assigns the (already weights-only-safe) attribute values.
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

#: Keys that hold the weights in a training checkpoint, in order of preference: timm's EMA
#: weights (what the official evaluation loads), then the raw ones, then other trainers'.
STATE_DICT_KEYS: tuple[str, ...] = ("state_dict_ema", "state_dict", "model", "net")


class UnsafeCheckpointError(ValueError):
    """A checkpoint pickles objects that weights-only loading refuses to rebuild."""


def _unsafe_globals(path: Path, err: Exception) -> list[str]:
    try:
        with path.open("rb") as f:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(f)
        allowed = {f"{c.__module__}.{c.__qualname__}" for c in SAFE_GLOBALS}
        names = [g for g in found if g not in allowed]
        if names:
            return names
    except (ValueError, RuntimeError, OSError):
        pass  # not a zip checkpoint: fall back to the name in torch's message
    return re.findall(r"GLOBAL ([\w.]+)", str(err)) or ["<unknown>"]


def load_checkpoint(path: str | os.PathLike[str], *, trust_checkpoint: bool = False) -> Any:
    """Read a checkpoint file on the CPU.

    `.safetensors` files are read directly. Pickled files (`.pth`, `.pth.tar`, `.bin`) go
    through `torch.load(weights_only=True)` with only `SAFE_GLOBALS` added, so a file that
    carries any other object raises `UnsafeCheckpointError` naming it.
    `trust_checkpoint=True` unpickles with full pickle, which can run code from the file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {str(file)!r} does not exist or is not a file")
    if file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except SafetensorError as err:
            raise ValueError(f"{file} is not a valid safetensors file: {err}") from err
    try:
        if trust_checkpoint:
            return torch.load(file, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if trust_checkpoint or "Weights only load failed" not in str(err):
            raise ValueError(f"{file} is not a readable PyTorch checkpoint: {err}") from err
        names = _unsafe_globals(file, err)
        raise UnsafeCheckpointError(
            f"refusing to unpickle {file}: it holds objects of {', '.join(names)}, which "
            "weights-only loading does not rebuild (allowed beyond tensors and plain "
            f"containers: {', '.join(c.__qualname__ for c in SAFE_GLOBALS)}). If you trust "
            "where the file comes from, pass --trust-checkpoint (trust_checkpoint=True) to "
            "load it with full pickle, which can run code from the file."
        ) from None
    except (RuntimeError, EOFError) as err:
        raise ValueError(
            f"{file} is not a readable PyTorch checkpoint (truncated or corrupt?): {err}"
        ) from err


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def extract_state_dict(checkpoint: Any) -> tuple[dict[str, Tensor], str | None]:
    """The weights in a loaded checkpoint and the key they were under (`None`: the whole
    object is the state dict). Prefers `state_dict_ema`, then `state_dict`, `model`, `net`."""
    if isinstance(checkpoint, Mapping):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(checkpoint.get(key)):
                return dict(checkpoint[key]), key
        if _is_state_dict(checkpoint):
            return dict(checkpoint), None
        keys = ", ".join(repr(k) for k in list(checkpoint)[:10])
        raise ValueError(
            f"no state dict in the checkpoint: expected one of {', '.join(STATE_DICT_KEYS)} "
            f"holding parameter tensors, or a flat name -> tensor mapping; its keys: {keys}"
        )
    raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")
