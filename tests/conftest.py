"""Shared helpers: the golden fixtures of the official implementation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from fakehub import hub  # noqa: F401  (the fake Hugging Face Hub fixture)
from safetensors.torch import load_file

FIXTURES = Path(__file__).parent / "fixtures"

#: Tolerances stated once: fp32 against the official outputs.
TINY_ATOL = 1e-5
FULL_ATOL = 1e-4

OFFICIAL_PRESETS: dict[str, Any] = json.loads((FIXTURES / "official_presets.json").read_text())


def load_json(name: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return data


def load_tensors(name: str) -> dict[str, torch.Tensor]:
    return load_file(str(FIXTURES / name))


def recipe_state_dict(shapes: dict[str, list[int]], seed: int) -> dict[str, torch.Tensor]:
    """The fixtures' weight recipe (fixtures/README.md): seeded normal tensors per sorted key."""
    state_dict = {}
    for i, key in enumerate(sorted(shapes)):
        g = torch.Generator().manual_seed(seed * 100003 + i)
        t = torch.randn(shapes[key], generator=g) * 0.05
        if key.endswith(".weight") and len(shapes[key]) == 1:
            t = t + 1.0
        elif key.endswith(".w"):
            t = t / 0.05
        state_dict[key] = t
    return state_dict


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)
