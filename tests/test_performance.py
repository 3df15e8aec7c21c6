"""The fast paths compute exactly what the plain formulations compute."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from t2t_vit.t2t_module import _soft_split_image


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
