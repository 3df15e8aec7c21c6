"""The Tokens-to-Token stem: soft split, re-structurization, projection."""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Literal, TypeAlias

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .linear import linear
from .precision import warn_if_bf16_emulated
from .scripting import NotScriptable, refuse_jit_trace
from .token_performer import TokenPerformer
from .token_transformer import TokenTransformer

# FX symbolic tracing (torchvision's create_feature_extractor, timm's FeatureGraphNet)
# records these as calls: einops cannot take the Proxy that stands for a tensor.
torch.fx.wrap("rearrange")

__all__ = ["DEFAULT_T2T_LAYERS", "TOKENS_TYPES", "T2TModule", "TokensType"]

TokensType: TypeAlias = Literal["transformer", "performer", "patch"]
TOKENS_TYPES: tuple[str, ...] = ("transformer", "performer", "patch")

DEFAULT_T2T_LAYERS: tuple[tuple[int, int, int], ...] = ((7, 4, 2), (3, 2, 1), (3, 2, 1))
"""The paper's stem: (kernel, stride, padding) of each soft split."""


_LAYERS_FORM = (
    "a non-empty sequence of (kernel, stride, padding) integer triples with kernel >= 1, "
    "stride >= 1, padding >= 0, e.g. ((7, 4, 2), (3, 2, 1), (3, 2, 1))"
)


def _is_triple(layer: object) -> bool:
    if not isinstance(layer, Sequence) or isinstance(layer, str) or len(layer) != 3:
        return False
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in layer):
        return False
    kernel, stride, padding = layer
    return bool(kernel >= 1 and stride >= 1 and padding >= 0)


def _check_layers(layers: Sequence[Sequence[int]]) -> tuple[tuple[int, int, int], ...]:
    if not isinstance(layers, Sequence) or isinstance(layers, str) or len(layers) == 0:
        raise ValueError(f"layers must be {_LAYERS_FORM}; got {layers!r}")
    for i, layer in enumerate(layers):
        if not _is_triple(layer):
            hint = ""
            if len(layers) == 3 and all(isinstance(v, int) for v in layers):
                hint = f" (for one soft split write ({tuple(layers)!r},))"
            raise ValueError(f"layers must be {_LAYERS_FORM}; entry {i} is {layer!r}{hint}")
    return tuple((int(k), int(s), int(p)) for k, s, p in layers)


def _split_grid(h: int, w: int, layer: tuple[int, int, int]) -> tuple[int, int]:
    """The grid an unfold with (kernel, stride, padding) leaves of an h x w map."""
    kernel, stride, padding = layer
    return (h + 2 * padding - kernel) // stride + 1, (w + 2 * padding - kernel) // stride + 1


def _soft_split_image(x: Tensor, layer: tuple[int, int, int]) -> Tensor:
    """`nn.Unfold` as tokens: `(B, C, H, W)` -> `(B, h*w, C*k*k)`, in one copy.

    Values and their `(c, ki, kj)` order are `nn.Unfold`'s; the patches are gathered
    straight into token-major layout, where unfold-then-transpose writes them twice.
    Used on the image only: on the narrow, wide-channel maps of the later splits
    this gather reads with a large stride and is slower than `nn.Unfold`.
    """
    kernel, stride, padding = layer
    x = F.pad(x, (padding, padding, padding, padding))
    patches = x.unfold(2, kernel, stride).unfold(3, kernel, stride)  # (B, C, h, w, k, k)
    return patches.permute(0, 2, 3, 1, 4, 5).flatten(3).flatten(1, 2)


def _soft_split_map(x: Tensor, layer: tuple[int, int, int]) -> Tensor:
    """`nn.Unfold` of a T2T layer's map as tokens, `(B, C, h, w)` -> `(B, h'*w', C*k*k)`.

    The maps between the splits are token-major in memory (views of the `(B, h*w, C)`
    tokens), so the padding and the patches are taken in that layout: one padded copy
    and one gather whose rows run along `C`, in `nn.Unfold`'s `(c, ki, kj)` order. The
    gather leaves the tokens contiguous, so neither the LayerNorm of the next T2T layer
    nor the projection copies them again (`nn.Unfold` would make the map contiguous,
    unfold it and leave a transposed result: three copies).
    """
    kernel, stride, padding = layer
    x = F.pad(x.permute(0, 2, 3, 1), (0, 0, padding, padding, padding, padding))
    patches = x.unfold(1, kernel, stride).unfold(2, kernel, stride)  # (B, h, w, C, k, k)
    return patches.flatten(3).flatten(1, 2)


def _contiguous(x: Tensor) -> Tensor:
    """A map given to the caller: contiguous NCHW, as timm's maps. A permuted view as a
    graph output breaks inductor's dynamic shapes (ValueRangeError) on torch 2.13."""
    return x.contiguous()


def is_static(*sizes: object) -> bool:
    """True for plain ints; False for the symbolic sizes of `torch.compile(dynamic=...)`,
    `torch.export` or FX, on which a Python `if` would fix (specialise) the size."""
    return all(isinstance(size, int) for size in sizes)


def _reference_weight(module: nn.Module) -> Tensor | None:
    """A floating-point weight whose dtype and device the input must match.

    The projection's own weight when it is a tensor; otherwise (a dynamically quantized
    `Linear`, whose `weight` is a method giving int8) the first floating parameter or
    buffer of the stem, e.g. a LayerNorm's, which still runs in the input's dtype.
    """
    weight = getattr(getattr(module, "project", None), "weight", None)
    if isinstance(weight, Tensor) and weight.is_floating_point():
        return weight
    for tensor in (*module.parameters(), *module.buffers()):
        if tensor.is_floating_point():
            return tensor
    return None


# Input dtypes that autocast casts for the weights; float64 it leaves alone.
_AUTOCAST_INPUTS = (torch.float32, torch.float16, torch.bfloat16)


def _autocast_enabled(device_type: str) -> bool:
    try:
        return bool(torch.is_autocast_enabled(device_type))
    except TypeError:  # torch < 2.4 takes no device type
        if device_type == "cpu":
            return bool(torch.is_autocast_cpu_enabled())
        return bool(torch.is_autocast_enabled())


def _check_dtype(x: Tensor, weight: Tensor) -> None:
    """Raise for an input dtype the weights cannot take, with what to do instead."""
    want = weight.dtype
    if not x.is_floating_point():
        if x.dtype == torch.uint8:
            raise ValueError(
                f"input is a torch.uint8 batch but the model takes normalised {want} images; "
                f"t2t_vit.preprocess(images, model) scales and normalises them"
            )
        raise ValueError(
            f"input dtype {x.dtype} is not floating point; the model takes normalised {want} "
            f"images: use t2t_vit.preprocess(images, model), or x.to({want}) for values "
            f"already normalised"
        )
    cast = "x.float()" if want == torch.float32 else f"x.to({want})"
    if _autocast_enabled(x.device.type):
        if x.dtype in _AUTOCAST_INPUTS:
            return
        raise ValueError(f"autocast does not cast a {x.dtype} input for the model; pass {cast}")
    raise ValueError(
        f"input dtype {x.dtype} does not match the model's {want}; pass {cast}, convert the "
        f"model with model.to({x.dtype}), or run under torch.autocast"
    )


class T2TModule(NotScriptable, nn.Module):
    """Tokens-to-Token stem, `(B, C, H, W) -> ((B, N, embed_dim), (h, w))`.

    Each soft split unfolds overlapping `kernel x kernel` patches into tokens;
    between splits a T2T layer (`TokenTransformer` or `TokenPerformer`)
    re-structures the tokens, which are folded back into a map on their real grid.
    The last split's tokens are projected to `embed_dim`. `layers` gives
    `(kernel, stride, padding)` per soft split; the default is the paper's
    stem (7/4/2, 3/2/1, 3/2/1: a 224x224 image becomes a 14x14 grid).
    `tokens_type='patch'` replaces the stem with one strided convolution whose
    stride is the product of the strides, ViT's patch embedding, for comparisons.
    """

    def __init__(
        self,
        in_chans: int = 3,
        embed_dim: int = 768,
        token_dim: int = 64,
        tokens_type: TokensType | str = "performer",
        layers: Sequence[Sequence[int]] = DEFAULT_T2T_LAYERS,
    ) -> None:
        """Build the stem; the weights are randomly initialised.

        Args:
            in_chans: Channels of the input image.
            embed_dim: Width of the tokens the stem outputs.
            token_dim: Token width between the soft splits (the T2T layers' output).
            tokens_type: The T2T layers: `'performer'`, `'transformer'`, or `'patch'`
                (one strided convolution instead of the stem).
            layers: `(kernel, stride, padding)` of each soft split, in order.
        """
        super().__init__()
        if tokens_type not in TOKENS_TYPES:
            raise ValueError(
                f"unknown tokens_type {tokens_type!r}; accepted: {', '.join(TOKENS_TYPES)}"
            )
        # Zero widths would build empty layers that fail only at the first forward.
        for name, value in (("in_chans", in_chans), ("embed_dim", embed_dim)) + (
            (("token_dim", token_dim),) if tokens_type != "patch" else ()
        ):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ValueError(f"{name} must be at least 1, got {value!r}")
        self.in_chans = in_chans
        self.embed_dim = embed_dim
        self.token_dim = token_dim
        self.tokens_type = tokens_type
        self.layers = _check_layers(layers)
        self.grad_checkpointing = False
        if tokens_type == "patch":
            patch = 1
            for _, stride, _ in self.layers:
                patch *= stride
            self.patch_size = patch
            self.project: nn.Module = nn.Conv2d(in_chans, embed_dim, patch, stride=patch)
            self._min_side = self.min_input_size()
            return
        for i, (kernel, stride, padding) in enumerate(self.layers):
            # Official names: soft_split0, soft_split1, ...
            self.add_module(f"soft_split{i}", nn.Unfold(kernel, padding=padding, stride=stride))
        width = in_chans
        for i, (kernel, _, _) in enumerate(self.layers[:-1]):
            dim = width * kernel * kernel
            layer: nn.Module
            if tokens_type == "transformer":
                layer = TokenTransformer(dim=dim, in_dim=token_dim, num_heads=1, mlp_ratio=1.0)
            else:
                layer = TokenPerformer(dim=dim, in_dim=token_dim, kernel_ratio=0.5)
            # Official names: attention1, attention2, ...
            self.add_module(f"attention{i + 1}", layer)
            width = token_dim
        last_kernel = self.layers[-1][0]
        self.project = nn.Linear(width * last_kernel * last_kernel, embed_dim)
        self._min_side = self.min_input_size()

    @property
    def soft_splits(self) -> list[nn.Module]:
        """The soft splits (unfolds) in order (empty for the patch stem)."""
        if self.tokens_type == "patch":
            return []
        return [getattr(self, f"soft_split{i}") for i in range(len(self.layers))]

    @property
    def attentions(self) -> list[nn.Module]:
        """The T2T layers in order (empty for the patch stem; the first ones only in a
        feature model's stem pruned after them)."""
        if self.tokens_type == "patch":
            return []
        layers: list[nn.Module] = []
        for i in range(len(self.layers) - 1):
            layer = self._modules.get(f"attention{i + 1}")
            if layer is None:
                break
            layers.append(layer)
        return layers

    def output_grid(self, height: int, width: int) -> tuple[int, int]:
        """The token grid `(h, w)` for an `height x width` input, without running."""
        return self.split_grids(height, width)[-1]

    def min_input_size(self) -> int:
        """The smallest side length that leaves at least one token on every split."""
        size = 1
        while not self._fits(size, size):
            size += 1
        return size

    def split_grids(self, height: int, width: int) -> list[tuple[int, int]]:
        """The grid `(h, w)` after each soft split (one entry for the patch stem)."""
        if self.tokens_type == "patch":
            return [(height // self.patch_size, width // self.patch_size)]
        grids = []
        h, w = height, width
        for layer in self.layers:
            h, w = _split_grid(h, w, layer)
            grids.append((h, w))
        return grids

    def _fits(self, height: int, width: int) -> bool:
        return all(h >= 1 and w >= 1 for h, w in self.split_grids(height, width))

    def check_input(self, x: Tensor) -> None:
        """Raise unless `x` is a `(B, in_chans, H, W)` tensor, large enough, of the
        weights' dtype (or one autocast takes) and on their device.

        On symbolic sizes (`torch.compile` with dynamic shapes, `torch.export`) the size
        check is a `torch._check`, so height and width stay symbolic (a Python `if` on them
        would fix them to the traced size); FX symbolic tracing has no values to check
        and skips it all.
        """
        refuse_jit_trace(self)
        if isinstance(x, torch.fx.Proxy):  # FX symbolic tracing: no values to check
            return
        if not isinstance(x, Tensor):
            shown = f" {os.fspath(x)!r}" if isinstance(x, (str, os.PathLike)) else ""
            raise TypeError(
                f"the model takes a (B, {self.in_chans}, H, W) tensor, got a "
                f"{type(x).__name__}{shown}; t2t_vit.preprocess(images, model) makes one from "
                "images"
            )
        if x.ndim != 4:
            hint = " (for one image pass x[None])" if x.ndim == 3 else ""
            raise ValueError(
                f"expected an image batch of shape (B, {self.in_chans}, H, W), "
                f"got a {x.ndim}-D tensor of shape {tuple(x.shape)}{hint}"
            )
        weight = _reference_weight(self)
        if weight is not None and x.dtype != weight.dtype:
            _check_dtype(x, weight)
        if weight is not None and x.device != weight.device:
            raise ValueError(
                f"input is on {x.device} but the model is on {weight.device}; pass "
                f"x.to({str(weight.device)!r}) or move the model with model.to({str(x.device)!r})"
            )
        if x.shape[1] != self.in_chans:
            raise ValueError(
                f"expected {self.in_chans} input channels, got {x.shape[1]} "
                f"(input shape {tuple(x.shape)})"
            )
        height, width = x.shape[2], x.shape[3]
        side = self._min_side
        # Each side's grid shrinks monotonically with it, so "every split leaves a token"
        # is exactly "each side >= the smallest square side".
        if is_static(height, width):
            if height < side or width < side:
                raise ValueError(self._too_small(height, width, x.shape))
        else:
            # Symbolic sizes: torch.export makes these the Dims' bounds, torch.compile a
            # guard; a Python `if` would fix the size instead.
            torch._check(height >= side)  # type: ignore[no-untyped-call]
            torch._check(width >= side)  # type: ignore[no-untyped-call]

    def _too_small(self, height: int, width: int, shape: torch.Size) -> str:
        side = self._min_side
        short = " and ".join(
            f"{name} {value}"
            for name, value in (("height", height), ("width", width))
            if value < side
        )
        return (
            f"input of {height}x{width} is too small for this T2T stem "
            f"(tokens_type {self.tokens_type!r}, layers {self.layers}): its {short} "
            f"leaves no token; each side must be at least {side}, the smallest it takes "
            f"is {side}x{side} (input shape {tuple(shape)})"
        )

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        tokens, grid, _ = self._tokens_and_maps(x)
        return tokens, grid

    def forward_intermediates(self, x: Tensor) -> tuple[Tensor, tuple[int, int], list[Tensor]]:
        """`forward`'s tokens and grid, plus the output of each T2T layer as a map.

        The maps are `(B, token_dim, h_i, w_i)` on the grid of the soft split before
        the layer (strides 4 and 8 for the paper's stem); the patch stem has none.
        """
        tokens, grid, maps = self._tokens_and_maps(x)
        return tokens, grid, [_contiguous(m) for m in maps]

    def _tokens_and_maps(self, x: Tensor) -> tuple[Tensor, tuple[int, int], list[Tensor]]:
        if self.tokens_type == "patch":
            self.check_input(x)
            warn_if_bf16_emulated(x)
            x = linear(self.project, x)
            h, w = x.shape[2], x.shape[3]
            return rearrange(x, "b c h w -> b (h w) c"), (h, w), []
        maps = self._maps(x)
        if maps:
            x = maps[-1]
        h, w = _split_grid(x.shape[2], x.shape[3], self.layers[-1])
        if maps:
            tokens = _soft_split_map(x, self.layers[-1])
        else:  # a one-split stem: the image itself
            tokens = _soft_split_image(x, self.layers[-1])
        return linear(self.project, tokens), (h, w), maps

    def forward_maps(self, x: Tensor, count: int | None = None) -> list[Tensor]:
        """The outputs of the first `count` T2T layers (default all), each folded into
        its map `(B, token_dim, h_i, w_i)`; the layers after them do not run."""
        return [_contiguous(m) for m in self._maps(x, count)]

    def _maps(self, x: Tensor, count: int | None = None) -> list[Tensor]:
        self.check_input(x)
        warn_if_bf16_emulated(x)
        layers = self.attentions
        if count is None:
            count = len(layers)
        elif not 0 <= count <= len(layers):
            raise ValueError(
                f"count={count} is out of range: this stem has {len(layers)} T2T layers "
                f"(tokens_type {self.tokens_type!r}); pass 0..{len(layers)} or None for all"
            )
        maps: list[Tensor] = []
        # Sizes stay as they come: ints in eager, symbolic under compile, export or FX.
        h, w = x.shape[2], x.shape[3]
        for i, (spec, layer) in enumerate(zip(self.layers[:count], layers[:count], strict=False)):
            h, w = _split_grid(h, w, spec)
            tokens = _soft_split_image(x, spec) if i == 0 else _soft_split_map(x, spec)
            if self.grad_checkpointing and self.training:
                tokens = checkpoint(layer, tokens, use_reentrant=False)
            else:
                tokens = layer(tokens)
            # A token-major view: the next soft split gathers from it without a copy.
            x = rearrange(tokens, "b (h w) c -> b c h w", h=h, w=w)
            maps.append(x)
        return maps
