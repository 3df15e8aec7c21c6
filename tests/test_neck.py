"""ViTDet's simple feature pyramid: shapes, strides, a hand-written reference, errors."""

from __future__ import annotations

import re
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from t2t_vit import SimpleFeaturePyramid


def _ln(x: torch.Tensor, norm: nn.Module) -> torch.Tensor:
    """LayerNorm over channels, written with permutes."""
    assert isinstance(norm, nn.LayerNorm)
    y = F.layer_norm(x.permute(0, 2, 3, 1), (x.shape[1],), norm.weight, norm.bias, norm.eps)
    return y.permute(0, 3, 1, 2)


def _convs(x: torch.Tensor, stage: nn.Sequential) -> torch.Tensor:
    """The 1x1 and 3x3 convolutions, each followed by a channel LayerNorm."""
    for conv_norm in list(stage)[-2:]:
        conv, norm = conv_norm[0], conv_norm[1]
        x = _ln(F.conv2d(x, conv.weight, conv.bias, padding=conv.padding), norm)
    return x


def test_default_pyramid_has_strides_4_to_32_with_the_vitdet_layers() -> None:
    torch.manual_seed(0)
    neck = SimpleFeaturePyramid(64, 24).eval()
    x = torch.randn(2, 64, 7, 9)
    with torch.no_grad():
        maps = neck(x)
        s = neck.stages
        up4 = F.conv_transpose2d(x, s[0][0].weight, s[0][0].bias, stride=2)
        up4 = F.gelu(_ln(up4, s[0][1]))
        up4 = F.conv_transpose2d(up4, s[0][3].weight, s[0][3].bias, stride=2)
        expected = [
            _convs(up4, s[0]),
            _convs(F.conv_transpose2d(x, s[1][0].weight, s[1][0].bias, stride=2), s[1]),
            _convs(x, s[2]),
            _convs(F.max_pool2d(x, 2, 2), s[3]),
        ]
    assert [tuple(m.shape) for m in maps] == [
        (2, 24, 28, 36),
        (2, 24, 14, 18),
        (2, 24, 7, 9),
        (2, 24, 3, 4),
    ]
    for ours, theirs in zip(maps, expected, strict=True):
        torch.testing.assert_close(ours, theirs, atol=1e-5, rtol=0)
    # Channels halve at each transposed convolution, as in ViTDet.
    assert (s[0][0].out_channels, s[0][3].out_channels, s[1][0].out_channels) == (32, 16, 32)
    assert neck.feature_info.reduction() == [4, 8, 16, 32]
    assert neck.feature_info.channels() == [24] * 4
    assert neck.feature_info.module_name() == ["stages.0", "stages.1", "stages.2", "stages.3"]


def test_without_norm_the_convolutions_keep_their_bias_and_nothing_normalises() -> None:
    neck = SimpleFeaturePyramid(32, 8, scale_factors=(1.0,), norm=False).eval()
    x = torch.randn(1, 32, 5, 6)
    conv1, conv3 = neck.stages[0][0][0], neck.stages[0][1][0]
    with torch.no_grad():
        expected = F.conv2d(
            F.conv2d(x, conv1.weight, conv1.bias), conv3.weight, conv3.bias, padding=1
        )
        (out,) = neck(x)
    assert conv1.bias is not None
    torch.testing.assert_close(out, expected, atol=1e-6, rtol=0)


def test_maps_follow_the_order_of_scale_factors() -> None:
    neck = SimpleFeaturePyramid(32, 8, scale_factors=(0.5, 2.0), in_reduction=8)
    maps = neck(torch.randn(1, 32, 6, 10))
    assert [tuple(m.shape) for m in maps] == [(1, 8, 3, 5), (1, 8, 12, 20)]
    assert neck.feature_info.reduction() == [16, 4]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (
            dict(scale_factors=(8.0, 1.0)),
            "scale_factors must be distinct values from (4.0, 2.0, 1.0, 0.5), e.g. "
            "(4.0, 2.0, 1.0, 0.5); got (8.0, 1.0)",
        ),
        (
            dict(scale_factors=(2.0, 2.0)),
            "scale_factors must be distinct values from (4.0, 2.0, 1.0, 0.5), e.g. "
            "(4.0, 2.0, 1.0, 0.5); got (2.0, 2.0)",
        ),
        (
            dict(in_channels=30),
            "in_channels=30 must be divisible by 4 for scale 4.0 (the two transposed "
            "convolutions halve the channels); pick another width or drop 4.0",
        ),
    ],
)
def test_bad_neck_arguments_are_clear_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        SimpleFeaturePyramid(**{"in_channels": 32, **kwargs})


def test_a_map_of_the_wrong_width_says_which_map_to_pass() -> None:
    neck = SimpleFeaturePyramid(32, 8)
    with pytest.raises(
        ValueError,
        match=re.escape(
            "expected one map of shape (B, 32, h, w), got (1, 8, 14, 20); pass the backbone's "
            "stride-16 map, e.g. neck(backbone(x)[-1])"
        ),
    ):
        neck(torch.randn(1, 8, 14, 20))


def test_a_list_of_maps_says_which_one_map_to_pass() -> None:
    neck = SimpleFeaturePyramid(32, 8)
    maps = [torch.randn(1, 32, 14, 14), torch.randn(1, 32, 14, 14)]
    with pytest.raises(
        TypeError,
        match="^"
        + re.escape(
            "expected one map (a Tensor of shape (B, 32, h, w)), got a list of 2; pass the "
            "backbone's stride-16 map, e.g. neck(backbone(x)[-1])"
        )
        + "$",
    ):
        neck(maps)  # type: ignore[arg-type]
