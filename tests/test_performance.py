"""The fast paths compute exactly what the plain formulations compute."""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch
from torch import nn

import t2t_vit
from t2t_vit.layers.t2t_module import _soft_split_image, _soft_split_map


@pytest.mark.parametrize(
    ("size", "layer"), [((32, 32), (7, 4, 2)), ((37, 50), (7, 4, 2)), ((9, 11), (3, 2, 1))]
)
def test_image_soft_split_gathers_the_unfold_patches_token_major(
    size: tuple[int, int], layer: tuple[int, int, int]
) -> None:
    x = torch.randn(2, 3, *size)
    kernel, stride, padding = layer
    expected = nn.Unfold(kernel, padding=padding, stride=stride)(x).transpose(1, 2)
    out = _soft_split_image(x, layer)
    assert out.is_contiguous()
    assert torch.equal(out, expected)


def test_image_soft_split_passes_gradients_like_unfold() -> None:
    x = torch.randn(1, 3, 16, 16, requires_grad=True)
    grad = torch.randn(1, 16, 147)
    (_soft_split_image(x, (7, 4, 2)) * grad).sum().backward()
    assert x.grad is not None
    ours = x.grad.clone()
    x.grad = None
    (nn.Unfold(7, padding=2, stride=4)(x).transpose(1, 2) * grad).sum().backward()
    torch.testing.assert_close(ours, x.grad, atol=1e-6, rtol=0)


def _op_names(fn: Callable[[], object]) -> set[str]:
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        fn()
    return {e.name for e in prof.events()}


def _tiny_model(tokens_type: str) -> t2t_vit.T2TViT:
    return t2t_vit.T2TViT(
        img_size=32,
        tokens_type=tokens_type,
        embed_dim=32,
        depth=2,
        num_heads=2,
        token_dim=8,
        num_classes=10,
    )


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_forward_and_backward_make_no_host_syncs(tokens_type: str) -> None:
    # `.item()`, `.tolist()`, `bool(tensor)` and NumPy round trips all go through
    # `aten::_local_scalar_dense` (or a copy to NumPy); the hot path has none.
    model = _tiny_model(tokens_type).train()
    x = torch.randn(2, 3, 32, 48)  # a non-native size: the position table is resampled
    model(x)

    def step() -> None:
        model(x).sum().backward()

    names = _op_names(step)
    assert "aten::_local_scalar_dense" not in names
    assert "aten::item" not in names
    # Every attention (T2T layer and blocks) runs the fused kernel, forward and backward.
    assert "aten::_scaled_dot_product_flash_attention_for_cpu" in names
    assert "aten::_scaled_dot_product_flash_attention_for_cpu_backward" in names
    assert "aten::softmax" not in names


def test_position_table_is_resampled_once_per_input_size() -> None:
    model = _tiny_model("performer").eval()
    with torch.no_grad():
        first = _op_names(lambda: model(torch.randn(1, 3, 48, 48)))
        again = _op_names(lambda: model(torch.randn(1, 3, 48, 48)))
        native = _op_names(lambda: model(torch.randn(1, 3, 32, 32)))
    assert "aten::upsample_bicubic2d" in first
    assert "aten::upsample_bicubic2d" not in again
    assert "aten::upsample_bicubic2d" not in native


def test_qkv_heads_are_views_of_the_projection() -> None:
    # q, k and v reach SDPA as strided views of one projection output: no copies.
    attn = t2t_vit.Attention(32, num_heads=4)
    q, k, v = attn.qkv_heads(torch.randn(2, 5, 32))
    base = q.untyped_storage().data_ptr()
    assert k.untyped_storage().data_ptr() == base
    assert v.untyped_storage().data_ptr() == base
    assert q.shape == (2, 4, 5, 8)


@pytest.mark.parametrize(
    ("grid", "layer"), [((56, 56), (3, 2, 1)), ((9, 11), (3, 2, 1)), ((12, 10), (5, 3, 2))]
)
def test_map_soft_split_gathers_the_unfold_patches_token_major(
    grid: tuple[int, int], layer: tuple[int, int, int]
) -> None:
    # The maps between T2T layers are views of token-major (B, h*w, C) tokens.
    tokens = torch.randn(2, grid[0] * grid[1], 8)
    x = tokens.transpose(1, 2).reshape(2, 8, *grid)
    kernel, stride, padding = layer
    expected = nn.Unfold(kernel, padding=padding, stride=stride)(x).transpose(1, 2)
    out = _soft_split_map(x, layer)
    assert out.is_contiguous()
    assert torch.equal(out, expected)
    assert torch.equal(_soft_split_map(x.contiguous(), layer), expected)
