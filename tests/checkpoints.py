"""Original checkpoint files as their trainers write them, for conversion and download tests."""

from __future__ import annotations

import argparse
import io
import re
from typing import Any

import torch

#: The official T2T-ViT-7 release file's name.
T7 = "71.7_T2T_ViT_7.pth.tar"


def to_bytes(obj: object) -> bytes:
    """What `torch.save(obj, file)` writes."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def assert_state(model: torch.nn.Module, state: dict[str, torch.Tensor]) -> None:
    """The model's state dict has exactly these keys and values."""
    own = model.state_dict()
    assert sorted(own) == sorted(state)
    for key, value in state.items():
        assert torch.equal(own[key], value), key


def to_mmpretrain(key: str) -> str:
    """Official key -> mmpretrain key (the inverse of the converter's mapping)."""
    if key.startswith("head."):
        return "head.layers." + key
    key = re.sub(r"^blocks\.(\d+)\.", r"encoder.\1.", key)
    for old, new in ((".norm1.", ".ln1."), (".norm2.", ".ln2."), (".mlp.fc1.", ".ffn.layers.0.0."),
                     (".mlp.fc2.", ".ffn.layers.1.")):  # fmt: skip
        key = key.replace(old, new)
    return "backbone." + key


def official_checkpoint(
    state: dict[str, torch.Tensor], ema: dict[str, torch.Tensor]
) -> dict[str, Any]:
    """The layout timm 0.3.4's CheckpointSaver writes, as the official training does."""
    return {
        "epoch": 309,
        "arch": "t2t_vit_14",
        "state_dict": {"module." + k: v for k, v in state.items()},
        "optimizer": {"state": {}, "param_groups": [{"lr": 1e-5, "params": [0, 1]}]},
        "version": 2,
        "args": argparse.Namespace(model="t2t_vit_14", lr=1e-3, img_size=224, model_ema=True),
        "state_dict_ema": {"module." + k: v for k, v in ema.items()},
        "metric": 81.5,
    }


def mmpretrain_checkpoint(state: dict[str, torch.Tensor]) -> dict[str, Any]:
    """The layout mmpretrain (mmcls 0.x) saves: `meta` and the renamed `state_dict`."""
    return {
        "meta": {"mmcls_version": "0.19.0", "epoch": 310, "iter": 775000},
        "state_dict": {to_mmpretrain(k): v for k, v in state.items()},
    }
