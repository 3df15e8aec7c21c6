"""`pretrained=True` beyond the checkpoint as trained: the mode every submodule comes back
in."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

import t2t_vit
from t2t_vit import T2TFeatures, T2TViT

TINY = dict(img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10)
STEMS = ["transformer", "performer", "patch"]


def _saved(tmp_path: Path, tokens_type: str) -> tuple[T2TViT, Path]:
    """A tiny model with trained-looking LayerNorms (scale and shift away from 1 and 0, so
    folding them is tested), saved in the Hub layout."""
    torch.manual_seed(3)
    model = T2TViT(tokens_type=tokens_type, **TINY).eval()
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "norm" in name:
                p.add_(torch.randn_like(p) * 0.3)
    return model, t2t_vit.save_pretrained(model, tmp_path / tokens_type)


def _modes(model: torch.nn.Module) -> set[bool]:
    return {m.training for m in model.modules()}


# -- one mode -------------------------------------------------------------------------------


@pytest.mark.parametrize("features_only", [False, True])
def test_create_model_pretrained_is_in_training_mode_throughout_with_stochastic_depth_on(
    tmp_path: Path, features_only: bool
) -> None:
    _, folder = _saved(tmp_path, "transformer")
    model = t2t_vit.create_model(
        str(folder), pretrained=True, features_only=features_only, drop_path_rate=0.5
    )
    assert isinstance(model, T2TFeatures if features_only else T2TViT)
    assert _modes(model) == {True}
    x = torch.randn(8, 3, 32, 32)

    def run() -> torch.Tensor:
        out = model(x)
        return out[-1] if isinstance(out, list) else out

    with torch.no_grad():
        # Stochastic depth drops whole samples' branches: two passes differ.
        assert not torch.equal(run(), run())
        model.eval()
        assert _modes(model) == {False}
        assert torch.equal(run(), run())


def test_from_pretrained_is_in_eval_mode_throughout_and_its_feature_model_too(
    tmp_path: Path,
) -> None:
    _, folder = _saved(tmp_path, "performer")
    model = t2t_vit.from_pretrained(folder, drop_path_rate=0.5)
    assert _modes(model) == {False}
    assert _modes(t2t_vit.create_feature_model(model)) == {False}
    # A fresh model is in training mode, and so is the feature model built on it.
    assert _modes(t2t_vit.create_feature_model(T2TViT(**TINY))) == {True}
    assert _modes(t2t_vit.create_model("t2t-vit-7", features_only=True)) == {True}
