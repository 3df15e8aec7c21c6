"""The T2T stem as a general tokenizer: any input size, the patch stem, clear errors,
and the model's position table on other input sizes."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
import torch.nn.functional as F

import t2t_vit
from t2t_vit import T2TModule, T2TViT

TINY: dict[str, Any] = dict(embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10)


def _official_stem(stem: T2TModule, x: torch.Tensor) -> torch.Tensor:
    """The official re-structurization, written with transpose/reshape and explicit h, w."""
    h, w = x.shape[2:]
    for (kernel, stride, padding), layer in zip(stem.layers, stem.attentions, strict=False):
        x = F.unfold(x, kernel, padding=padding, stride=stride).transpose(1, 2)
        h, w = (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1
        x = layer(x)
        x = x.transpose(1, 2).reshape(x.shape[0], x.shape[2], h, w)
    kernel, stride, padding = stem.layers[-1]
    x = F.unfold(x, kernel, padding=padding, stride=stride).transpose(1, 2)
    return stem.project(x)  # type: ignore[no-any-return]


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_t2t_stem_on_224x320_gives_a_14x20_grid_equal_to_the_official_reshape(
    tokens_type: str,
) -> None:
    stem = T2TModule(in_chans=3, embed_dim=16, token_dim=8, tokens_type=tokens_type).eval()
    x = torch.randn(1, 3, 224, 320)
    with torch.no_grad():
        tokens, grid = stem(x)
        expected = _official_stem(stem, x)
    assert grid == (14, 20) == stem.output_grid(224, 320)
    assert tokens.shape == (1, 280, 16)
    torch.testing.assert_close(tokens, expected, atol=1e-6, rtol=0)


def test_patch_stem_on_224x320_is_one_16x16_strided_convolution() -> None:
    stem = T2TModule(in_chans=3, embed_dim=16, tokens_type="patch")
    x = torch.randn(2, 3, 224, 320)
    tokens, grid = stem(x)
    conv = stem.project
    assert isinstance(conv, torch.nn.Conv2d)
    expected = F.conv2d(x, conv.weight, conv.bias, stride=16).flatten(2).transpose(1, 2)
    assert grid == (14, 20) == stem.output_grid(224, 320)
    assert tokens.shape == (2, 280, 16)
    torch.testing.assert_close(tokens, expected, atol=1e-6, rtol=0)
    assert stem.patch_size == 16
    assert stem.soft_splits == []
    assert stem.attentions == []


@pytest.mark.parametrize("tokens_type", ["transformer", "performer", "patch"])
@pytest.mark.parametrize(
    ("layers", "size", "grid"),
    [
        (((7, 4, 2), (3, 2, 1), (3, 2, 1)), (33, 47), (2, 3)),
        (((3, 2, 1), (3, 2, 1)), (16, 24), (4, 6)),
        (((3, 1, 1),), (8, 5), (8, 5)),
    ],
)
def test_output_grid_answers_without_running_and_matches_forward(
    tokens_type: str,
    layers: tuple[tuple[int, int, int], ...],
    size: tuple[int, int],
    grid: tuple[int, int],
) -> None:
    stem = T2TModule(in_chans=1, embed_dim=8, token_dim=4, tokens_type=tokens_type, layers=layers)
    tokens, out_grid = stem(torch.randn(2, 1, *size))
    patch = 1
    for _, stride, _ in layers:
        patch *= stride
    expected = (size[0] // patch, size[1] // patch) if tokens_type == "patch" else grid
    assert out_grid == stem.output_grid(*size) == expected
    assert tokens.shape == (2, expected[0] * expected[1], 8)


def test_model_runs_non_square_images_for_every_stem() -> None:
    for tokens_type in ("transformer", "performer", "patch"):
        model = T2TViT(img_size=(32, 48), tokens_type=tokens_type, **TINY).eval()
        assert model.grid == (2, 3)
        feats = model.forward_features(torch.randn(2, 3, 32, 48))
        assert feats.shape == (2, 1 + 6, 32)
        assert model.pos_embed.shape == (1, 7, 32)


@pytest.mark.parametrize(
    ("tokens_type", "size", "message"),
    [
        (
            "transformer",
            (64, 2),
            "input of 64x2 is too small for this T2T stem (tokens_type 'transformer', "
            "layers ((7, 4, 2), (3, 2, 1), (3, 2, 1))): its width 2 leaves no token; each side "
            "must be at least 3, the smallest it takes is 3x3 (input shape (1, 3, 64, 2))",
        ),
        (
            "patch",
            (8, 300),
            "input of 8x300 is too small for this T2T stem (tokens_type 'patch', "
            "layers ((7, 4, 2), (3, 2, 1), (3, 2, 1))): its height 8 leaves no token; each "
            "side must be at least 16, the smallest it takes is 16x16 (input shape (1, 3, 8, 300))",
        ),
    ],
)
def test_too_small_input_names_the_short_side_and_the_smallest_size(
    tokens_type: str, size: tuple[int, int], message: str
) -> None:
    stem = T2TModule(in_chans=3, embed_dim=8, token_dim=4, tokens_type=tokens_type)
    with pytest.raises(ValueError, match=re.escape(message)):
        stem(torch.randn(1, 3, *size))


def test_stem_without_padding_reports_its_own_smallest_size() -> None:
    stem = T2TModule(in_chans=1, embed_dim=8, token_dim=4, layers=((7, 4, 0), (3, 2, 0)))
    # 7 + 4 * (3 - 1) = 15 pixels give one token after both splits.
    assert stem.min_input_size() == 15
    assert stem.output_grid(15, 15) == (1, 1)
    with pytest.raises(
        ValueError,
        match=r"its height 14 and width 10 leaves no token; each side "
        r"must be at least 15, the smallest it takes is 15x15",
    ):
        stem(torch.randn(1, 1, 14, 10))
    with pytest.raises(
        ValueError,
        match=r"img_size \(14, 40\) is too small for the T2T stem \(layers \(\(7, 4, 0\), "
        r"\(3, 2, 0\)\)\); each side must be at least 15, the smallest it takes is 15x15",
    ):
        T2TViT(img_size=(14, 40), t2t_layers=((7, 4, 0), (3, 2, 0)), **TINY)


FORM = (
    "layers must be a non-empty sequence of (kernel, stride, padding) integer triples with "
    "kernel >= 1, stride >= 1, padding >= 0, e.g. ((7, 4, 2), (3, 2, 1), (3, 2, 1)); "
)


@pytest.mark.parametrize(
    ("layers", "tail"),
    [
        ((7, 4, 2), "entry 0 is 7 (for one soft split write ((7, 4, 2),))"),
        (((7, 4, 2), (3, 2)), "entry 1 is (3, 2)"),
        (((7, 0, 2),), "entry 0 is (7, 0, 2)"),
        (((7, 4, -1),), "entry 0 is (7, 4, -1)"),
        (((7, 4, 2.0),), "entry 0 is (7, 4, 2.0)"),
        (((7, True, 2),), "entry 0 is (7, True, 2)"),
        ((), "got ()"),
        ("742", "got '742'"),
        (7, "got 7"),
    ],
)
def test_layers_of_the_wrong_form_are_a_clear_error(layers: Any, tail: str) -> None:
    with pytest.raises(ValueError, match=re.escape(FORM + tail)):
        T2TModule(layers=layers)
    with pytest.raises(ValueError, match=re.escape(FORM + tail)):
        T2TViT(t2t_layers=layers, **TINY)


def test_unknown_tokens_type_is_rejected_by_the_model_too() -> None:
    with pytest.raises(
        ValueError, match=r"unknown tokens_type 'conv'; accepted: transformer, performer, patch"
    ):
        T2TViT(tokens_type="conv", **TINY)


@pytest.mark.parametrize("tokens_type", ["transformer", "performer", "patch"])
def test_native_size_output_is_bitwise_unchanged_by_the_dynamic_path(tokens_type: str) -> None:
    dynamic = T2TViT(img_size=32, tokens_type=tokens_type, **TINY).eval()
    fixed = T2TViT(img_size=32, tokens_type=tokens_type, dynamic_img_size=False, **TINY).eval()
    fixed.load_state_dict(dynamic.state_dict())
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(dynamic(x), fixed(x))
        assert torch.equal(dynamic.forward_features(x), fixed.forward_features(x))
    assert dynamic.pos_embed_for((2, 2)) is dynamic.pos_embed


@pytest.mark.parametrize("tokens_type", ["transformer", "performer", "patch"])
def test_other_sizes_use_the_bicubically_resampled_table(tokens_type: str) -> None:
    model = T2TViT(img_size=32, tokens_type=tokens_type, **TINY).eval()
    x = torch.randn(2, 3, 48, 80)
    # Written out: class row kept, the 2x2 grid part resized to 3x5 bicubically.
    table = model.pos_embed
    cls_row, cells = table[:, :1], table[:, 1:]
    cells = cells.reshape(1, 2, 2, 32).permute(0, 3, 1, 2)
    cells = F.interpolate(cells, size=(3, 5), mode="bicubic", align_corners=False)
    expected_table = torch.cat([cls_row, cells.permute(0, 2, 3, 1).reshape(1, 15, 32)], dim=1)
    with torch.no_grad():
        tokens, grid = model.tokens_to_token(x)
        assert grid == (3, 5)
        h = torch.cat([model.cls_token.expand(2, -1, -1), tokens], dim=1) + expected_table
        for block in model.blocks:
            h = block(h)
        expected = model.head(model.norm(h)[:, 0])
        torch.testing.assert_close(model(x), expected, atol=1e-6, rtol=0)
    torch.testing.assert_close(model.pos_embed_for((3, 5)), expected_table, atol=1e-6, rtol=0)
    # Cached per grid: the second call returns the same tensor.
    assert model.pos_embed_for((3, 5)) is model.pos_embed_for((3, 5))


def test_fixed_size_model_rejects_other_sizes_with_a_clear_error() -> None:
    model = T2TViT(img_size=32, dynamic_img_size=False, **TINY)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "input gives a 3x5 token grid but the model was built for img_size (32, 32) (2x2); "
            "pass dynamic_img_size=True to resample the position table"
        ),
    ):
        model(torch.randn(1, 3, 48, 80))


def test_forward_intermediates_fold_non_square_grids() -> None:
    model = T2TViT(img_size=32, tokens_type="transformer", **TINY).eval()
    with torch.no_grad():
        final, maps = model.forward_intermediates(torch.randn(1, 3, 48, 80))
    assert final.shape == (1, 16, 32)
    assert [m.shape for m in maps][-2:] == [(1, 32, 3, 5)] * 2
    assert t2t_vit.T2TModule is T2TModule


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_stem_intermediates_are_each_t2t_layers_output_folded_on_its_grid(tokens_type: str) -> None:
    stem = T2TModule(in_chans=3, embed_dim=16, token_dim=8, tokens_type=tokens_type).eval()
    x = torch.randn(2, 3, 100, 150)
    outputs: list[torch.Tensor] = []
    handles = [
        a.register_forward_hook(lambda _m, _i, o: outputs.append(o)) for a in stem.attentions
    ]
    with torch.no_grad():
        tokens, grid, maps = stem.forward_intermediates(x)
        plain_tokens, plain_grid = stem(x)
        first_only = stem.forward_maps(x, count=1)
    for handle in handles:
        handle.remove()
    assert grid == plain_grid == (7, 10)
    assert torch.equal(tokens, plain_tokens)
    assert [tuple(m.shape) for m in maps] == [(2, 8, 25, 37), (2, 8, 13, 19)]
    # The hooks saw the layers' tokens: row-major over the grid, as the official reshape.
    assert torch.equal(maps[0], outputs[0].transpose(1, 2).reshape(2, 8, 25, 37))
    assert torch.equal(maps[1], outputs[1].transpose(1, 2).reshape(2, 8, 13, 19))
    assert len(first_only) == 1
    assert torch.equal(first_only[0], maps[0])


def test_stem_maps_count_out_of_range_is_a_clear_error() -> None:
    stem = T2TModule(in_chans=3, embed_dim=16, token_dim=8)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "count=3 is out of range: this stem has 2 T2T layers (tokens_type 'performer'); "
            "pass 0..2 or None for all"
        ),
    ):
        stem.forward_maps(torch.randn(1, 3, 32, 32), count=3)


def test_patch_stem_has_no_intermediate_maps() -> None:
    stem = T2TModule(in_chans=3, embed_dim=16, token_dim=8, tokens_type="patch")
    tokens, grid, maps = stem.forward_intermediates(torch.randn(1, 3, 48, 80))
    assert (tuple(tokens.shape), grid, maps) == ((1, 15, 16), (3, 5), [])
    assert stem.forward_maps(torch.randn(1, 3, 48, 80)) == []


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_dim": 0}, "token_dim must be at least 1, got 0"),
        ({"embed_dim": 0}, "embed_dim must be at least 1, got 0"),
        ({"in_chans": 0}, "in_chans must be at least 1, got 0"),
        ({"in_chans": -3, "tokens_type": "patch"}, "in_chans must be at least 1, got -3"),
    ],
)
def test_stem_sizes_below_one_are_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        T2TModule(**kwargs)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"token_dim": 0}, "token_dim must be at least 1, got 0"),
        ({"embed_dim": 0}, "embed_dim must be at least 1, got 0"),
        ({"in_chans": 0}, "in_chans must be at least 1, got 0"),
        ({"num_heads": 0}, "num_heads must be at least 1, got 0"),
        ({"depth": -1}, "depth must be at least 0, got -1"),
        ({"num_classes": -1}, "num_classes must be at least 0 (0: no head), got -1"),
        ({"mlp_ratio": 0}, "mlp_ratio must be greater than 0, got 0"),
        ({"drop_path_rate": 1.5}, "drop_path_rate must be in [0, 1], got 1.5"),
        ({"drop_path_rate": -0.1}, "drop_path_rate must be in [0, 1], got -0.1"),
        ({"attn_drop_rate": 1.5}, "attn_drop_rate must be in [0, 1], got 1.5"),
        ({"drop_rate": 2}, "drop_rate must be in [0, 1], got 2"),
    ],
)
def test_model_arguments_out_of_range_are_refused_at_construction(
    kwargs: dict[str, Any], message: str
) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        t2t_vit.T2TViT(**{"img_size": 32, "depth": 1, **kwargs})
