"""Issue 23, R2: every entry point that takes a batch goes through the one input gate and
refuses the same bad batches with the same one line (items 7, 30)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import torch

import t2t_vit
from t2t_vit import T2TViT


def _model() -> T2TViT:
    # Built for 32x32 only: a batch of another size is refused too.
    return T2TViT(
        img_size=32,
        embed_dim=32,
        depth=2,
        num_heads=2,
        token_dim=8,
        num_classes=3,
        dynamic_img_size=False,
    ).eval()


#: Every entry point that takes a batch, by name. A new one is added here.
ENTRY_POINTS: dict[str, Callable[[T2TViT, Any], object]] = {
    "model(x)": lambda m, x: m(x),
    "forward_features": lambda m, x: m.forward_features(x),
    "forward_intermediates": lambda m, x: m.forward_intermediates(x),
    "forward_intermediates(intermediates_only)": lambda m, x: m.forward_intermediates(
        x, indices=[0], intermediates_only=True
    ),
    "record_attention_maps": lambda m, x: t2t_vit.record_attention_maps(m, x),
    "rollout": lambda m, x: t2t_vit.rollout(m, x),
    "T2TFeatures(x)": lambda m, x: t2t_vit.T2TFeatures(m)(x),
    "T2TFeatures(stem levels)(x)": lambda m, x: t2t_vit.T2TFeatures(m, out_indices=[0, 1])(x),
    "T2TFeatures.forward_intermediates": lambda m, x: t2t_vit.T2TFeatures(m).forward_intermediates(
        x
    ),
    "create_model(features_only)(x)": lambda m, x: t2t_vit.create_feature_model(m)(x),
}

#: Bad batches, by name: each is refused by every entry point with one and the same line.
BAD_BATCHES: dict[str, Callable[[], Any]] = {
    "uint8": lambda: torch.zeros(2, 3, 32, 32, dtype=torch.uint8),
    "int64": lambda: torch.zeros(2, 3, 32, 32, dtype=torch.int64),
    "float64": lambda: torch.zeros(2, 3, 32, 32, dtype=torch.float64),
    "one channel": lambda: torch.zeros(2, 1, 32, 32),
    "four channels": lambda: torch.zeros(2, 4, 32, 32),
    "3-D": lambda: torch.zeros(3, 32, 32),
    "5-D": lambda: torch.zeros(1, 2, 3, 32, 32),
    "too small": lambda: torch.zeros(2, 3, 8, 8),
    "not the fixed size": lambda: torch.zeros(2, 3, 48, 48),
    "a path": lambda: "photo.jpg",
    "a list": lambda: [[0.0]],
}


def _refusal(call: Callable[[], object]) -> tuple[type[BaseException], str]:
    with pytest.raises((TypeError, ValueError)) as err:
        call()
    return err.type, str(err.value)


@pytest.mark.parametrize("bad", list(BAD_BATCHES))
def test_every_batch_entry_point_refuses_a_bad_batch_with_the_models_own_line(bad: str) -> None:
    model = _model()
    expected = _refusal(lambda: model(BAD_BATCHES[bad]()))
    assert "\n" not in expected[1]
    got = {
        name: _refusal(lambda call=call: call(model, BAD_BATCHES[bad]()))  # type: ignore[misc]
        for name, call in ENTRY_POINTS.items()
    }
    assert got == dict.fromkeys(ENTRY_POINTS, expected)


def test_the_gate_names_the_uint8_batch_and_what_to_do() -> None:
    model = _model()
    with pytest.raises(
        ValueError,
        match=r"^input is a torch\.uint8 batch but the model takes normalised torch\.float32 "
        r"images; t2t_vit\.preprocess\(images, model\) scales and normalises them$",
    ):
        t2t_vit.rollout(model, torch.zeros(1, 3, 32, 32, dtype=torch.uint8))


def test_the_gate_names_a_path_given_for_a_batch() -> None:
    with pytest.raises(
        TypeError,
        match=r"^the model takes a \(B, 3, H, W\) tensor, got a str 'photo\.jpg'; "
        r"t2t_vit\.preprocess\(images, model\) makes one from images$",
    ):
        t2t_vit.record_attention_maps(_model(), "photo.jpg")  # type: ignore[arg-type]


def test_every_entry_point_takes_a_good_batch() -> None:
    model = _model()
    x = torch.randn(2, 3, 32, 32)
    for name, call in ENTRY_POINTS.items():
        assert call(model, x) is not None, name
    assert t2t_vit.rollout(model, x).shape == (2, 2, 2)


def test_preprocess_for_four_channels_says_what_to_do() -> None:
    model = T2TViT(embed_dim=32, depth=1, num_heads=2, token_dim=8, num_classes=3, in_chans=4)
    with pytest.raises(
        ValueError,
        match=r"^input_size must have 1 or 3 channels, got 4: preprocessing makes grey \(1\) "
        r"or RGB \(3\) images only; for a 4-channel model build the batch yourself, a "
        r"\(B, 4, H, W\) float32 tensor scaled to \[0, 1\] and normalised with the model's "
        r"pretrained_cfg mean and std$",
    ):
        t2t_vit.preprocess(torch.zeros(3, 8, 8, dtype=torch.uint8), model)
