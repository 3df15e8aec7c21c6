"""Saving and loading the Hub layout from a local folder."""

from __future__ import annotations

import json
from pathlib import Path

import torch

import t2t_vit


def test_save_then_load_roundtrips_weights_config_and_outputs(tmp_path: Path) -> None:
    model = t2t_vit.T2TViT(
        img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10
    )
    model.eval()
    t2t_vit.save_pretrained(model, tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_args"]["embed_dim"] == 32
    assert config["pretrained_cfg"]["input_size"] == [3, 32, 32]
    loaded = t2t_vit.from_pretrained(tmp_path).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(loaded(x), model(x))
    assert loaded.pretrained_cfg is not None
    assert loaded.pretrained_cfg["crop_pct"] == 0.9
