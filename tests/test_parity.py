"""The library reproduces the official implementation's outputs (fixtures/README.md)."""

from __future__ import annotations

import pytest
import torch
from conftest import (
    FULL_ATOL,
    OFFICIAL_PRESETS,
    TINY_ATOL,
    load_json,
    load_tensors,
    recipe_state_dict,
)

import t2t_vit


def _tiny(name: str) -> t2t_vit.T2TViT:
    cfg = load_json(f"{name}.json")
    model = t2t_vit.T2TViT(**cfg["official_kwargs"]).eval()
    official = load_tensors(f"{name}.state_dict.safetensors")
    model.load_state_dict(t2t_vit.convert_state_dict(official, model=model), strict=True)
    return model


@pytest.mark.parametrize("name", ["tiny_transformer", "tiny_performer"])
@pytest.mark.parametrize("fused", [True, False], ids=["fused", "explicit"])
def test_tiny_model_matches_official_logits_and_features(name: str, fused: bool) -> None:
    model = _tiny(name)
    t2t_vit.use_fused_attention(model, fused)
    io = load_tensors(f"{name}.io.safetensors")
    with torch.no_grad():
        tokens = model.forward_features(io["input"])
        logits = model.forward_head(tokens)
    torch.testing.assert_close(tokens[:, 0], io["features"], atol=TINY_ATOL, rtol=0)
    torch.testing.assert_close(logits, io["logits"], atol=TINY_ATOL, rtol=0)


@pytest.mark.parametrize("name", ["tiny_transformer", "tiny_performer"])
def test_fused_and_explicit_attention_agree(name: str) -> None:
    model = _tiny(name)
    x = load_tensors(f"{name}.io.safetensors")["input"]
    with torch.no_grad():
        fused = model.forward_features(x)
        t2t_vit.use_fused_attention(model, False)
        explicit = model.forward_features(x)
    torch.testing.assert_close(fused, explicit, atol=TINY_ATOL, rtol=0)


def test_forward_features_returns_the_whole_token_sequence() -> None:
    model = _tiny("tiny_transformer")
    x = load_tensors("tiny_transformer.io.safetensors")["input"]
    with torch.no_grad():
        tokens = model.forward_features(x)
        pooled = model.forward_head(tokens, pre_logits=True)
    # 64x64 input -> 4x4 grid -> 16 tokens + class token.
    assert tokens.shape == (2, 17, 48)
    assert torch.equal(pooled, tokens[:, 0])


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["t2t_vit_t_14_recipe", "t2t_vit_14_recipe"])
def test_full_size_preset_matches_official(fixture: str) -> None:
    cfg = load_json(f"{fixture}.json")
    model = t2t_vit.create_model(cfg["preset"], **cfg["official_kwargs"]).eval()
    shapes = OFFICIAL_PRESETS[cfg["preset"]]["state_dict_shapes"]
    state_dict = t2t_vit.convert_state_dict(recipe_state_dict(shapes, cfg["seed"]), model=model)
    model.load_state_dict(state_dict, strict=True)
    io = load_tensors(f"{fixture}.io.safetensors")
    with torch.no_grad():
        tokens = model.forward_features(io["input"])
        logits = model.forward_head(tokens)
    torch.testing.assert_close(tokens[:, 0], io["features"], atol=FULL_ATOL, rtol=0)
    torch.testing.assert_close(logits, io["logits"], atol=FULL_ATOL, rtol=0)
