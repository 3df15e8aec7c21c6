"""ViTDet's simple feature pyramid (Li et al., ECCV 2022): a pyramid from one map."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .features import FeatureInfo

__all__ = ["SimpleFeaturePyramid"]

#: The scales ViTDet builds: x4 and x2 by transposed convolution, x1, x0.5 by pooling.
SCALE_FACTORS: tuple[float, ...] = (4.0, 2.0, 1.0, 0.5)


class _ChannelNorm(nn.LayerNorm):
    """LayerNorm over the channels of a `(B, C, H, W)` map."""

    def forward(self, x: Tensor) -> Tensor:
        x = rearrange(x, "b c h w -> b h w c")
        x = F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)
        return rearrange(x, "b h w c -> b c h w")


def _conv(in_ch: int, out_ch: int, kernel: int, norm: bool) -> nn.Sequential:
    # The norm's shift makes a convolution bias redundant.
    conv = nn.Conv2d(in_ch, out_ch, kernel, padding=kernel // 2, bias=not norm)
    return nn.Sequential(conv, _ChannelNorm(out_ch) if norm else nn.Identity())


class SimpleFeaturePyramid(nn.Module):
    """ViTDet's neck: maps at several strides from the single stride-16 map of a ViT.

    For each of `scale_factors` (any of 4, 2, 1, 0.5) the input `(B, in_channels, h, w)`
    is resampled: x4 by two 2x2 transposed convolutions (channel LayerNorm and GELU
    between, channels halved at each), x2 by one, x1 as it is, x0.5 by 2x2 max
    pooling; then a 1x1 and a 3x3 convolution bring it to `out_channels`, each followed
    by a channel LayerNorm (`norm=True`). `forward` returns the maps in the order of
    `scale_factors`, strides `in_reduction / s` (4, 8, 16, 32 by default), described by
    `feature_info`. The maps are `4h x 4w`, `2h x 2w`, `h x w`, `h//2 x w//2`.
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int = 256,
        scale_factors: Sequence[float] = SCALE_FACTORS,
        in_reduction: int = 16,
        norm: bool = True,
    ) -> None:
        """A neck for maps of `in_channels` channels at stride `in_reduction`.

        Args:
            in_channels: Channels of the input map (the backbone's width).
            out_channels: Channels of every output map.
            scale_factors: Resampling of each output, from 4, 2, 1 and 0.5, in order.
            in_reduction: Stride of the input map, for `feature_info`.
            norm: Channel LayerNorm after each convolution (and no convolution bias).
        """
        super().__init__()
        scales = tuple(float(s) for s in scale_factors)
        bad = [s for s in scales if s not in SCALE_FACTORS]
        if bad or not scales or len(set(scales)) != len(scales):
            raise ValueError(
                f"scale_factors must be distinct values from {SCALE_FACTORS}, e.g. "
                f"(4.0, 2.0, 1.0, 0.5); got {tuple(scale_factors)!r}"
            )
        if in_channels % 4 != 0 and 4.0 in scales:
            raise ValueError(
                f"in_channels={in_channels} must be divisible by 4 for scale 4.0 (the two "
                "transposed convolutions halve the channels); pick another width or drop 4.0"
            )
        self.scale_factors = scales
        self.in_channels = in_channels
        self.in_reduction = in_reduction
        self.stages = nn.ModuleList()
        info: list[dict[str, int | str]] = []
        for scale in scales:
            layers: list[nn.Module] = []
            width = in_channels
            if scale == 4.0:
                layers += [
                    nn.ConvTranspose2d(width, width // 2, 2, stride=2),
                    _ChannelNorm(width // 2),
                    nn.GELU(),
                    nn.ConvTranspose2d(width // 2, width // 4, 2, stride=2),
                ]
                width //= 4
            elif scale == 2.0:
                layers.append(nn.ConvTranspose2d(width, width // 2, 2, stride=2))
                width //= 2
            elif scale == 0.5:
                layers.append(nn.MaxPool2d(2, stride=2))
            layers += [
                _conv(width, out_channels, 1, norm),
                _conv(out_channels, out_channels, 3, norm),
            ]
            self.stages.append(nn.Sequential(*layers))
            info.append(
                {
                    "num_chs": out_channels,
                    "reduction": int(in_reduction / scale),
                    "module": f"stages.{len(info)}",
                }
            )
        self.feature_info = FeatureInfo(info)

    def forward(self, x: Tensor) -> list[Tensor]:
        """A map `(B, in_channels, h, w)` to one map `(B, out_channels, h_s, w_s)` per scale."""
        if not isinstance(x, Tensor):
            got = f"a {type(x).__name__}"
            if isinstance(x, (list, tuple)):
                got += f" of {len(x)}"
            raise TypeError(
                f"expected one map (a Tensor of shape (B, {self.in_channels}, h, w)), got {got}; "
                f"pass the backbone's stride-{self.in_reduction} map, e.g. neck(backbone(x)[-1])"
            )
        if x.ndim != 4 or x.shape[1] != self.in_channels:
            raise ValueError(
                f"expected one map of shape (B, {self.in_channels}, h, w), got "
                f"{tuple(x.shape)}; pass the backbone's stride-{self.in_reduction} map, "
                "e.g. neck(backbone(x)[-1])"
            )
        return [stage(x) for stage in self.stages]
