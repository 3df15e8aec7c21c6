"""Attention maps: recorded probabilities, attention rollout and image overlays.

What is recorded depends on the stem. The encoder blocks always give
`(B, heads, 1 + N, 1 + N)` softmax probabilities (class token first). With
`tokens_type='transformer'` the two T2T layers give theirs too, `(B, 1, N_k, N_k)`
over the soft-split grids (3136 = 56x56 and 784 = 28x28 tokens at 224x224). The
Performer stem approximates softmax attention with random features and never forms
an attention matrix, and the patch stem has no attention, so for them only the
blocks are recorded. Rollout uses the blocks only, for every stem.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..layers.attention import record_attention
from ..models.t2t_vit import T2TViT
from .preprocess import install_line, load_image, require_numpy, require_pillow

if TYPE_CHECKING:
    import numpy as np
    from PIL import Image as PILImage

__all__ = [
    "AttentionMaps",
    "attention_rollout",
    "colormap_lut",
    "overlay_map",
    "record_attention_maps",
    "rollout",
]


@dataclass
class AttentionMaps:
    """The attention probabilities of one forward pass.

    Attributes:
        blocks: Block i's probabilities at `blocks[i]`, `(B, heads, 1 + h*w, 1 + h*w)`.
        grid: The token grid `(h, w)` of the blocks.
        logits: The model's output for the pass.
        t2t: T2T layer k+1's probabilities at `t2t[k]`, `(B, heads, h_k*w_k, h_k*w_k)`;
            empty unless the stem is `'transformer'`.
        t2t_grids: The grid `(h_k, w_k)` of each entry of `t2t`.
        tokens_type: The model's stem.
    """

    blocks: list[Tensor]
    grid: tuple[int, int]
    logits: Tensor
    t2t: list[Tensor] = field(default_factory=list)
    t2t_grids: list[tuple[int, int]] = field(default_factory=list)
    tokens_type: str = "performer"

    def rollout(self, size: tuple[int, int] | None = None) -> Tensor:
        """Attention rollout over the blocks, `(B, h, w)` (or `(B, *size)`), max 1."""
        return attention_rollout(self.blocks, self.grid, size=size)

    def t2t_map(self, layer: int, query: tuple[int, int] | None = None) -> Tensor:
        """One T2T layer's attention on its grid, `(B, h_k, w_k)`, head-averaged.

        `layer` counts from 1 (`attention1` at 56x56 for 224 inputs). With `query`
        `(row, col)`, that token's attention over the grid (sums to 1); without it,
        the attention each token receives, averaged over all queries.
        """
        if not self.t2t:
            raise ValueError(
                f"no T2T attention was recorded: the {self.tokens_type!r} stem forms no "
                f"softmax attention matrix (only tokens_type='transformer' does)"
            )
        if not 1 <= layer <= len(self.t2t):
            raise ValueError(f"layer must be in 1..{len(self.t2t)}, got {layer}")
        attn = self.t2t[layer - 1].float().mean(dim=1)
        h, w = self.t2t_grids[layer - 1]
        if query is None:
            row = attn.mean(dim=1)
        else:
            r, c = query
            if not (0 <= r < h and 0 <= c < w):
                raise ValueError(f"query {query} is outside the {h}x{w} grid of layer {layer}")
            row = attn[:, r * w + c]
        return rearrange(row, "b (h w) -> b h w", h=h, w=w)


def record_attention_maps(model: nn.Module, x: Tensor) -> AttentionMaps:
    """Run `model` once on a preprocessed batch `(B, C, H, W)` and keep its attention.

    The batch passes the model's own input check (`T2TViT.check_input`): what `model(x)`
    refuses is refused here with the same line. Runs in eval mode under
    `torch.inference_mode()` (training flag restored), with the explicit attention path only
    for this pass.
    """
    if not isinstance(model, T2TViT):
        raise TypeError(
            f"record_attention_maps takes a model (T2TViT) first, got {type(model).__name__}"
        )
    # The one input gate of the model's own entry points: the same batches refused with
    # the same line (no cast here that would let a uint8 batch through).
    model.check_input(x)
    stem = model.tokens_to_token
    was_training = model.training
    try:
        model.eval()
        with torch.inference_mode(), record_attention(model) as records:
            logits = model(x)
    finally:
        model.train(was_training)
    height, width = int(x.shape[-2]), int(x.shape[-1])
    block_maps = [records[f"blocks.{i}.attn"][0] for i in range(len(model.blocks))]
    t2t_maps: list[Tensor] = []
    t2t_grids: list[tuple[int, int]] = []
    if stem.tokens_type == "transformer":
        grids = stem.split_grids(height, width)
        for k in range(len(stem.layers) - 1):
            t2t_maps.append(records[f"tokens_to_token.attention{k + 1}.attn"][0])
            t2t_grids.append(grids[k])
    return AttentionMaps(
        blocks=block_maps,
        grid=stem.output_grid(height, width),
        logits=logits,
        t2t=t2t_maps,
        t2t_grids=t2t_grids,
        tokens_type=str(stem.tokens_type),
    )


def attention_rollout(
    attentions: Sequence[Tensor],
    grid: tuple[int, int],
    *,
    size: tuple[int, int] | None = None,
    normalize: bool = True,
) -> Tensor:
    """Attention rollout (Abnar & Zuidema, 2020) from the class token to the patches.

    Each block's `(B, heads, 1 + N, 1 + N)` probabilities are averaged over heads,
    the identity is added for the residual path and rows are renormalised; the
    products over the blocks (first block rightmost) give how much each token
    flows into the class token. Returns the class token's row over the `grid`
    tokens, `(B, h, w)`, divided by its maximum when `normalize` (values in
    (0, 1]), bilinearly resized to `size` `(H, W)` when given.
    """
    if not attentions:
        raise ValueError("attention_rollout needs the attention of at least one block")
    h, w = grid
    first = attentions[0]
    n = first.shape[-1]
    if first.ndim != 4 or first.shape[-2] != n or n != 1 + h * w:
        raise ValueError(
            f"expected (B, heads, 1 + {h}*{w}, 1 + {h}*{w}) attention for a {h}x{w} grid, "
            f"got shape {tuple(first.shape)}"
        )
    eye = torch.eye(n, dtype=torch.float32, device=first.device)
    joint = eye.expand(first.shape[0], n, n)
    for attn in attentions:
        a = attn.float().mean(dim=1) + eye
        a = a / a.sum(dim=-1, keepdim=True)
        joint = a @ joint
    mask = rearrange(joint[:, 0, 1:], "b (h w) -> b h w", h=h, w=w)
    if normalize:
        mask = mask / mask.amax(dim=(-2, -1), keepdim=True)
    if size is not None:
        mask = F.interpolate(mask[:, None], size=size, mode="bilinear", align_corners=False)[:, 0]
    return mask


def rollout(model: nn.Module, x: Tensor, *, size: tuple[int, int] | None = None) -> Tensor:
    """Attention rollout of `model` on a preprocessed batch `(B, C, H, W)`: `(B, h, w)`.

    `size=(H, W)` resizes the map (e.g. to the input size, `x.shape[-2:]`).
    """
    return record_attention_maps(model, x).rollout(size=size)


# Anchors of a perceptually ordered dark-blue -> teal -> yellow ramp, used when
# matplotlib is not installed.
_BUILTIN_ANCHORS = (
    (0.05, 0.03, 0.25),
    (0.23, 0.18, 0.55),
    (0.15, 0.45, 0.58),
    (0.15, 0.65, 0.50),
    (0.55, 0.80, 0.25),
    (0.99, 0.91, 0.15),
)


def colormap_lut(name: str = "inferno") -> np.ndarray[Any, Any]:
    """A `(256, 3)` uint8 colour table: matplotlib's `name` when matplotlib is
    installed, else a built-in dark-blue to yellow ramp for the default `'inferno'` (any
    other name then raises, naming the extra to install: never another map silently)."""
    numpy = require_numpy()
    try:
        import matplotlib
    except ImportError:
        if name != "inferno":
            raise ValueError(
                f"colormap {name!r} needs matplotlib, which is not installed ("
                f"{install_line('plot')}); without it only the built-in 'inferno' ramp is "
                "available"
            ) from None
        anchors = numpy.array(_BUILTIN_ANCHORS)
        positions = numpy.linspace(0.0, 1.0, len(anchors))
        t = numpy.linspace(0.0, 1.0, 256)
        table = numpy.stack([numpy.interp(t, positions, anchors[:, c]) for c in range(3)], axis=1)
    else:
        try:
            cmap = matplotlib.colormaps[name]
        except KeyError as err:
            raise ValueError(f"unknown matplotlib colormap {name!r}") from err
        table = numpy.asarray(cmap(numpy.linspace(0.0, 1.0, 256)))[:, :3]
    lut: np.ndarray[Any, Any] = numpy.round(table * 255.0).astype(numpy.uint8)
    return lut


def overlay_map(
    image: PILImage.Image | str | os.PathLike[str],
    mask: Tensor | np.ndarray[Any, Any],
    *,
    alpha: float = 0.5,
    colormap: str = "inferno",
) -> PILImage.Image:
    """Blend a `(h, w)` map in [0, 1] over an RGB image (a PIL image or an image file's
    path), as a new RGB image.

    The map is resized bilinearly to the image, coloured with `colormap_lut`
    and mixed in with weight `alpha`.
    """
    image_mod = require_pillow()
    numpy = require_numpy()
    if not 0.0 <= alpha <= 1.0:
        raise ValueError(f"alpha must be in [0, 1], got {alpha}")
    m = mask.detach().float().cpu().numpy() if isinstance(mask, Tensor) else numpy.asarray(mask)
    if m.ndim != 2:
        raise ValueError(f"the map must be 2-D (h, w), got shape {tuple(m.shape)}")
    bad = ~numpy.isfinite(m)
    if bad.any():
        first = [int(i) for i in numpy.argwhere(bad)[0]]
        raise ValueError(
            f"the map holds {int(bad.sum())} NaN or infinite value(s) (first at {first}); "
            "pass a finite (h, w) map in [0, 1]"
        )
    if isinstance(image, (str, os.PathLike)):
        image = load_image(image)
    base = image.convert("RGB")
    resized = image_mod.fromarray(m.astype(numpy.float32)).resize(
        base.size, image_mod.Resampling.BILINEAR
    )
    levels = numpy.clip(numpy.asarray(resized), 0.0, 1.0)
    colours = colormap_lut(colormap)[numpy.round(levels * 255.0).astype(numpy.intp)]
    mixed = (1.0 - alpha) * numpy.asarray(base, dtype=numpy.float32) + alpha * colours
    out: PILImage.Image = image_mod.fromarray(numpy.round(mixed).astype(numpy.uint8))
    return out
