"""Saving and loading models in the Hub layout: `config.json` and `model.safetensors`."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .convert import check_state_dict
from .model import T2TViT
from .pretrained_cfg import resolve_pretrained_cfg

__all__ = ["CONFIG_NAME", "WEIGHTS_NAME", "from_pretrained", "save_pretrained"]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    pretrained_cfg: dict[str, Any] | None = None,
) -> Path:
    """Write `config.json` (architecture and preprocessing) and `model.safetensors` to a folder.

    `config.json` holds `{"architecture": "T2TViT", "model_args": {...T2TViT kwargs...},
    "pretrained_cfg": {...}}`; `pretrained_cfg` defaults to the model's own.
    """
    if not isinstance(model, T2TViT):
        raise TypeError(f"save_pretrained expects a T2TViT, got {type(model).__name__}")
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": "T2TViT",
        "model_args": model.config,
        "pretrained_cfg": pretrained_cfg or resolve_pretrained_cfg(model),
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    return out


def from_pretrained(
    name_or_path: str | os.PathLike[str], *, map_location: str | torch.device = "cpu"
) -> T2TViT:
    """Load a model saved by `save_pretrained` from a local folder (strict loading)."""
    folder = Path(name_or_path)
    config = json.loads((folder / CONFIG_NAME).read_text())
    model = T2TViT(**config["model_args"])
    state = load_file(str(folder / WEIGHTS_NAME), device=str(map_location))
    check_state_dict(model, state)
    model.load_state_dict(state, strict=True)
    model.pretrained_cfg = config.get("pretrained_cfg") or resolve_pretrained_cfg(model)
    return model.to(map_location)
