"""Attention recording, rollout, T2T attention maps, overlays and forward_intermediates."""

from __future__ import annotations

import re
import sys

import numpy as np
import pytest
import torch
from einops import rearrange
from inference_models import tiny_model
from PIL import Image

import t2t_vit
from t2t_vit.inference.visualize import colormap_lut

KINDS = ("transformer", "performer")


def uniform_attention_model(tokens_type: str, depth: int) -> t2t_vit.T2TViT:
    """Zero qkv weights in every block: q = k = 0, so every softmax row is uniform."""
    model = tiny_model(tokens_type, depth=depth)
    with torch.no_grad():
        for block in model.blocks:
            block.attn.qkv.weight.zero_()
    return model


@pytest.mark.parametrize("tokens_type", KINDS)
def test_uniform_attention_gives_a_uniform_rollout(tokens_type: str) -> None:
    depth = 3
    model = uniform_attention_model(tokens_type, depth)
    x = torch.randn(2, 3, 32, 48)  # a 2x3 token grid
    maps = t2t_vit.record_attention_maps(model, x)
    n = 1 + 2 * 3
    for attn in maps.blocks:
        assert torch.allclose(attn, torch.full_like(attn, 1 / n))
    assert torch.allclose(maps.rollout(), torch.ones(2, 2, 3), atol=1e-6, rtol=0)
    # ((I + J/n) / 2)^L = (I + (2^L - 1) J/n) / 2^L: class row entries (2^L - 1) / (2^L n)
    raw = t2t_vit.attention_rollout(maps.blocks, maps.grid, normalize=False)
    expected = (2**depth - 1) / (2**depth * n)
    assert torch.allclose(raw, torch.full((2, 2, 3), expected), atol=1e-7)


def test_rollout_follows_the_class_token_to_the_token_it_attends() -> None:
    # one block, 2x2 grid: the class token attends only to spatial token 2 (row 1, col 0)
    attn = torch.full((1, 2, 5, 5), 0.2)
    attn[0, :, 0] = torch.tensor([0.0, 0.0, 0.0, 1.0, 0.0])
    mask = t2t_vit.attention_rollout([attn], (2, 2))
    assert torch.equal(mask, torch.tensor([[[0.0, 0.0], [1.0, 0.0]]]))
    # two blocks compose: (A2 + I)/2 @ (A1 + I)/2, head mean first
    a1 = torch.softmax(torch.randn(1, 3, 5, 5), -1)
    a2 = torch.softmax(torch.randn(1, 3, 5, 5), -1)
    step = [(a.mean(1)[0] + torch.eye(5)) / 2 for a in (a1, a2)]
    row = (step[1] @ step[0])[0, 1:]
    expected = (row / row.max()).view(1, 2, 2)
    assert torch.allclose(t2t_vit.attention_rollout([a1, a2], (2, 2)), expected, atol=1e-6)


@pytest.mark.parametrize("tokens_type", KINDS)
def test_rollout_shapes_and_range_for_both_t2t_kinds(tokens_type: str) -> None:
    model = tiny_model(tokens_type)
    model.train()
    x = torch.randn(3, 3, 64, 48)
    mask = t2t_vit.rollout(model, x)
    assert model.training  # restored
    assert mask.shape == (3, 4, 3)
    assert bool((mask > 0).all())
    assert bool((mask <= 1).all())
    assert torch.allclose(mask.amax(dim=(1, 2)), torch.ones(3))
    big = t2t_vit.rollout(model, x, size=(64, 48))
    assert big.shape == (3, 64, 48)
    assert float(big.min()) >= 0.0
    assert float(big.max()) <= 1.0 + 1e-6
    # recording leaves the fused path in place
    assert all(m.attn_store is None for m in model.modules() if isinstance(m, t2t_vit.Attention))


def test_recorded_logits_equal_the_fused_forward() -> None:
    model = tiny_model("transformer")
    x = torch.randn(2, 3, 32, 32)
    maps = t2t_vit.record_attention_maps(model, x)
    with torch.no_grad():
        assert torch.allclose(maps.logits, model(x), atol=1e-5)


def test_transformer_stem_attention_at_224_covers_3136_and_784_tokens() -> None:
    model = t2t_vit.T2TViT(
        img_size=224, tokens_type="transformer", embed_dim=32, depth=1, num_heads=2,
        token_dim=8, num_classes=10,
    )  # fmt: skip
    maps = t2t_vit.record_attention_maps(model, torch.randn(1, 3, 224, 224))
    assert [tuple(a.shape) for a in maps.t2t] == [(1, 1, 3136, 3136), (1, 1, 784, 784)]
    assert maps.t2t_grids == [(56, 56), (28, 28)]
    assert maps.grid == (14, 14)
    assert tuple(maps.blocks[0].shape) == (1, 2, 197, 197)
    for attn in maps.t2t:
        assert torch.allclose(attn.sum(-1), torch.ones(attn.shape[:-1]), atol=1e-4)
    received = maps.t2t_map(1)
    assert received.shape == (1, 56, 56)
    assert torch.allclose(received.sum(), torch.tensor(1.0), atol=1e-4)
    query = maps.t2t_map(2, query=(3, 5))
    assert query.shape == (1, 28, 28)
    assert torch.allclose(query.flatten(), maps.t2t[1][0, 0, 3 * 28 + 5], atol=1e-7)


def test_performer_stem_records_blocks_only_and_says_why() -> None:
    maps = t2t_vit.record_attention_maps(tiny_model("performer"), torch.randn(1, 3, 32, 32))
    assert maps.t2t == []
    assert len(maps.blocks) == 2
    with pytest.raises(ValueError, match=r"^no T2T attention") as err:
        maps.t2t_map(1)
    assert str(err.value) == (
        "no T2T attention was recorded: the 'performer' stem forms no softmax attention "
        "matrix (only tokens_type='transformer' does)"
    )


def test_overlay_blends_the_colormap_over_the_image() -> None:
    img = Image.fromarray(np.full((20, 30, 3), 100, dtype=np.uint8))
    mask = torch.ones(2, 3)
    assert np.array_equal(np.asarray(t2t_vit.overlay_map(img, mask, alpha=0.0)), np.asarray(img))
    full = np.asarray(t2t_vit.overlay_map(img, mask, alpha=1.0, colormap="viridis"))
    assert full.shape == (20, 30, 3)
    assert (full == colormap_lut("viridis")[255]).all()
    half = np.asarray(t2t_vit.overlay_map(img, torch.zeros(2, 3), alpha=0.5))
    expected = np.round(0.5 * 100 + 0.5 * colormap_lut("inferno")[0].astype(np.float32))
    assert (half == expected.astype(np.uint8)).all()


def test_builtin_colormap_without_matplotlib(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)
    lut = colormap_lut("inferno")
    assert lut.shape == (256, 3)
    assert lut.dtype == np.uint8
    assert lut[0].tolist() == [13, 8, 64]  # round(255 * (0.05, 0.03, 0.25))
    assert lut[255].tolist() == [252, 232, 38]  # round(255 * (0.99, 0.91, 0.15))
    out = t2t_vit.overlay_map(Image.new("RGB", (8, 8)), torch.ones(2, 2), alpha=1.0)
    assert np.asarray(out)[0, 0].tolist() == [252, 232, 38]


@pytest.mark.parametrize("tokens_type", KINDS)
def test_forward_intermediates_equal_the_tokens_of_a_manual_run(tokens_type: str) -> None:
    model = tiny_model(tokens_type, depth=3)
    x = torch.randn(2, 3, 48, 32)  # 3x2 token grid
    with torch.no_grad():
        tokens, grid = model.tokens_to_token(x)
        h = torch.cat((model.cls_token.expand(2, -1, -1), tokens), 1) + model.pos_embed_for(grid)
        manual = []
        for block in model.blocks:
            h = block(h)
            manual.append(h)
        # Levels: the two T2T layers, then the blocks (2, 3, 4).
        final, maps = model.forward_intermediates(x, indices=[2, -1])
        assert grid == (3, 2)
        assert torch.allclose(final, model.forward_features(x), atol=1e-6)
        assert [tuple(m.shape) for m in maps] == [(2, 32, 3, 2)] * 2
        for got, ref in zip(maps, (manual[0], manual[2]), strict=True):
            assert torch.allclose(
                got, rearrange(ref[:, 1:], "b (h w) c -> b c h w", h=3), atol=1e-6
            )
        # a token at grid position (row 2, col 1) is token 2 * 2 + 1 of the sequence
        assert torch.allclose(maps[1][:, :, 2, 1], manual[2][:, 1 + 5], atol=1e-6)

        nlc = model.forward_intermediates(
            x, indices=2, output_fmt="NLC", norm=True, return_prefix_tokens=True,
            intermediates_only=True,
        )  # fmt: skip
        assert len(nlc) == 2
        for (spatial, prefix), ref in zip(nlc, manual[1:], strict=True):
            normed = model.norm(ref)
            assert torch.allclose(spatial, normed[:, 1:], atol=1e-6)
            assert torch.allclose(prefix, normed[:, :1], atol=1e-6)

        early = model.forward_intermediates(x, indices=[3], stop_early=True)[1]
        assert torch.allclose(
            early[0], rearrange(manual[1][:, 1:], "b (h w) c -> b c h w", h=3), atol=1e-6
        )


def test_forward_intermediates_rejects_bad_indices_and_format() -> None:
    model = tiny_model(depth=2)
    x = torch.randn(1, 3, 32, 32)
    with pytest.raises(ValueError, match=r"indices entry 5 is out of range: valid are 0..3 or"):
        model.forward_intermediates(x, indices=[0, 5])
    with pytest.raises(ValueError, match="output_fmt must be 'NCHW' or 'NLC', got 'NHWC'"):
        model.forward_intermediates(x, output_fmt="NHWC")  # type: ignore[arg-type]


@pytest.mark.parametrize("bad", [float("nan"), float("inf")])
def test_overlay_of_a_map_with_nan_or_inf_is_one_clear_error(bad: float) -> None:
    img = Image.fromarray(np.full((20, 30, 3), 100, dtype=np.uint8))
    mask = torch.zeros(2, 3)
    mask[1, 2] = bad
    with pytest.raises(
        ValueError,
        match=r"^the map holds 1 NaN or infinite value\(s\) \(first at \[1, 2\]\); "
        r"pass a finite \(h, w\) map in \[0, 1\]$",
    ):
        t2t_vit.overlay_map(img, mask)


def test_record_attention_maps_of_an_image_path_says_to_preprocess_it() -> None:
    model = tiny_model(depth=1)
    # The model's own input gate (tests/test_issue23_inputs.py walks every entry point).
    with pytest.raises(
        TypeError,
        match=r"^the model takes a \(B, 3, H, W\) tensor, got a str 'photo\.jpg'; "
        r"t2t_vit\.preprocess\(images, model\) makes one from images$",
    ):
        t2t_vit.record_attention_maps(model, "photo.jpg")  # type: ignore[arg-type]
    with pytest.raises(
        TypeError, match=r"^record_attention_maps takes a model \(T2TViT\) first, got str"
    ):
        t2t_vit.record_attention_maps("photo.jpg", model)  # type: ignore[arg-type]
    with pytest.raises(
        ValueError,
        match=r"^expected an image batch of shape \(B, 3, H, W\), got a 3-D tensor of shape "
        r"\(3, 32, 32\) \(for one image pass x\[None\]\)$",
    ):
        t2t_vit.record_attention_maps(model, torch.randn(3, 32, 32))


@pytest.mark.parametrize(
    ("indices", "message"),
    [
        (
            [0, 0],
            "indices [0, 0] names level 0 (tokens_to_token.attention1) twice (0 and 0); "
            "name each level once",
        ),
        (
            [3, -1],
            "indices [3, -1] names level 3 (blocks.1) twice (3 and -1); name each level once",
        ),
    ],
)
def test_forward_intermediates_refuses_a_block_named_twice_as_out_indices_does(
    indices: list[int], message: str
) -> None:
    model = tiny_model(depth=2)
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        model.forward_intermediates(torch.randn(1, 3, 32, 32), indices=indices)
