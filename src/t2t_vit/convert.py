"""Turning checkpoints of other layouts into this library's state dict."""

from __future__ import annotations

from collections.abc import Mapping

from torch import Tensor, nn

__all__ = ["SOURCES", "check_state_dict", "convert_state_dict"]

SOURCES: tuple[str, ...] = ("official",)


def _strip_prefix(state_dict: Mapping[str, Tensor], prefix: str) -> dict[str, Tensor]:
    if state_dict and all(k.startswith(prefix) for k in state_dict):
        return {k[len(prefix) :]: v for k, v in state_dict.items()}
    return dict(state_dict)


def convert_state_dict(
    state_dict: Mapping[str, Tensor],
    source: str = "official",
    model: nn.Module | None = None,
) -> dict[str, Tensor]:
    """Convert a state dict of the `source` layout to this library's layout.

    `official`: the released `yitu-opensource/T2T-ViT` checkpoints. This library
    keeps the official key names, so only a DataParallel/DDP `module.` prefix is
    removed. With `model`, the result is checked against it: every key present,
    none extra, every shape equal (see `check_state_dict`).
    """
    if source not in SOURCES:
        raise ValueError(f"unknown checkpoint source {source!r}; accepted: {', '.join(SOURCES)}")
    if not isinstance(state_dict, Mapping) or not state_dict:
        raise ValueError("expected a non-empty mapping of parameter names to tensors")
    out = _strip_prefix(state_dict, "module.")
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
