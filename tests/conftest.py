"""Shared helpers: the golden fixtures of the official implementation."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import torch
from checkpoints import official_checkpoint, to_bytes
from fakehub import (  # noqa: F401  (fixtures)
    hub,
    no_hub,
    quiet_hub_client,
    refusing_url,
    releases,
    silent_url,
)
from safetensors.torch import load_file

import t2t_vit

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


def pytest_configure(config: pytest.Config) -> None:
    # Under pytest-xdist (`-n N`, the README's command), each worker takes its share of the
    # cores: N workers each with torch's default of one thread per core would oversubscribe
    # the CPU, and OpenMP threads that spin on a busy core slow every test down.
    workers = os.environ.get("PYTEST_XDIST_WORKER_COUNT")
    if workers:
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // int(workers)))


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """The tiny official transformer fixture saved in the Hub layout (`save_pretrained`)."""
    model = t2t_vit.T2TViT(**load_json("tiny_transformer.json")["official_kwargs"])
    model.load_state_dict(load_tensors("tiny_transformer.state_dict.safetensors"))
    return t2t_vit.save_pretrained(model, tmp_path / "tiny")


@pytest.fixture(scope="session")
def t7_state() -> dict[str, torch.Tensor]:
    """T2T-ViT-7 weights made by the fixtures' recipe (seed 7)."""
    return recipe_state_dict(OFFICIAL_PRESETS["t2t_vit_7"]["state_dict_shapes"], seed=7)


@pytest.fixture(scope="session")
def t7_file(t7_state: dict[str, torch.Tensor]) -> bytes:
    """T2T-ViT-7 as the official trainer saved it: weights under `module.`, args pickled.
    (The raw and EMA weights share storage, which torch.save writes once.)"""
    return to_bytes(official_checkpoint(t7_state, t7_state))


@pytest.fixture(autouse=True)
def _seed() -> None:
    torch.manual_seed(0)


@pytest.fixture(autouse=True)
def _no_network(
    monkeypatch: pytest.MonkeyPatch,
    tmp_path_factory: pytest.TempPathFactory,
    request: pytest.FixtureRequest,
) -> None:
    """No test reaches a real server or writes to the user's caches: the Hub and the release
    mirror point at a refusing loopback port (fixtures such as `hub` and `releases` point
    them elsewhere), and the caches live in a temporary folder."""
    home = tmp_path_factory.mktemp("home")
    refusing: str = request.getfixturevalue("refusing_url")
    quiet_hub_client(monkeypatch, refusing)
    monkeypatch.setenv("T2T_VIT_RELEASE_MIRROR", refusing + "/releases")
    monkeypatch.setenv("T2T_VIT_CACHE", str(home / "t2t-vit"))
    monkeypatch.setenv("HF_HOME", str(home / "huggingface"))
    monkeypatch.setenv("HF_HUB_CACHE", str(home / "huggingface" / "hub"))
    # huggingface_hub read HF_HUB_CACHE at import; its download code reads the constant.
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(home / "huggingface" / "hub"))
