"""`pretrained=True` beyond the checkpoint as trained: the mode every submodule comes back
in, and another number of input channels (the first layer adapted as timm adapts it)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import torch
from conftest import TINY_ATOL

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


# -- in_chans -------------------------------------------------------------------------------


@pytest.mark.parametrize("tokens_type", STEMS)
def test_in_chans_1_gives_on_gray_what_the_checkpoint_gives_on_gray_repeated_to_rgb(
    tmp_path: Path, tokens_type: str
) -> None:
    model, folder = _saved(tmp_path, tokens_type)
    message = (
        "in_chans=1 differs from the checkpoint's 3: the first layer's weights are summed "
        "over its 3 channels, as timm's adapt_input_conv does"
    )
    with pytest.warns(UserWarning, match=f"{re.escape(message)}$"):
        gray_model = t2t_vit.from_pretrained(folder, in_chans=1)
    assert gray_model.in_chans == 1
    assert gray_model.pretrained_cfg is not None
    assert gray_model.pretrained_cfg["input_size"] == [1, 32, 32]
    gray = torch.randn(4, 1, 40, 48)
    with torch.no_grad():
        ours, theirs = gray_model(gray), model(gray.repeat(1, 3, 1, 1))
    assert theirs.abs().max() > 0.1
    torch.testing.assert_close(ours, theirs, atol=TINY_ATOL, rtol=0)


@pytest.mark.parametrize("tokens_type", STEMS)
def test_in_chans_6_gives_on_rgb_repeated_what_the_checkpoint_gives_on_rgb(
    tmp_path: Path, tokens_type: str
) -> None:
    model, folder = _saved(tmp_path, tokens_type)
    with pytest.warns(UserWarning, match=r"repeated and rescaled by 3/6 from its 3 channels"):
        six = t2t_vit.create_model(str(folder), pretrained=True, in_chans=6).eval()
    rgb = torch.randn(2, 3, 32, 40)
    with torch.no_grad():
        torch.testing.assert_close(six(rgb.repeat(1, 2, 1, 1)), model(rgb), atol=TINY_ATOL, rtol=0)


def test_in_chans_2_repeats_the_channels_rescaled_as_timm() -> None:
    # The patch stem's convolution is timm's case itself: channels r, g; scaled by 3/2.
    model = T2TViT(tokens_type="patch", **TINY)
    state = t2t_vit.adapt_input_channels(model.state_dict(), 2)
    weight = model.state_dict()["tokens_to_token.project.weight"]
    assert torch.equal(state["tokens_to_token.project.weight"], weight[:, :2] * 1.5)
    # The T2T stems: the soft split's patch is channel-major, (c, ki, kj); each channel's
    # block of the (LayerNorm-folded) projection is repeated.
    model = T2TViT(tokens_type="performer", **TINY)
    state = t2t_vit.adapt_input_channels(model.state_dict(), 2)
    kqv = model.state_dict()["tokens_to_token.attention1.kqv.weight"].reshape(-1, 3, 49)
    norm = model.state_dict()["tokens_to_token.attention1.norm1.weight"].reshape(3, 49)
    expected = (kqv * norm)[:, :2].reshape(-1, 98) * 1.5
    torch.testing.assert_close(state["tokens_to_token.attention1.kqv.weight"], expected)
    assert torch.equal(state["tokens_to_token.attention1.norm1.weight"], torch.ones(98))


@pytest.mark.parametrize("in_chans", [0, -1])
def test_an_in_chans_below_1_is_refused_in_one_line(tmp_path: Path, in_chans: int) -> None:
    _, folder = _saved(tmp_path, "transformer")
    message = f"in_chans must be at least 1, got {in_chans}"
    for load in (
        lambda: t2t_vit.from_pretrained(folder, in_chans=in_chans),
        lambda: t2t_vit.create_model(str(folder), pretrained=True, in_chans=in_chans),
        lambda: t2t_vit.create_model("t2t-vit-7", in_chans=in_chans),
        lambda: T2TViT(in_chans=in_chans),
    ):
        with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
            load()
