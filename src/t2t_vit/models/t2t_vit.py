"""The T2T-ViT model: a T2T stem, a class token, position table and ViT blocks."""

from __future__ import annotations

import contextlib
import difflib
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TypeAlias, overload

import torch
from einops import rearrange
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from ..layers.block import Block
from ..layers.linear import linear
from ..layers.pos_embed import get_sinusoid_encoding, resample_pos_embed
from ..layers.scripting import NotScriptable, refuse_jit_trace
from ..layers.t2t_module import (
    DEFAULT_T2T_LAYERS,
    T2TModule,
    TokensType,
    _check_layers,
    is_static,
)
from .class_names import for_new_head

# FX symbolic tracing records these as calls (einops and the resampling's size checks
# cannot take a Proxy).
torch.fx.wrap("rearrange")
torch.fx.wrap("resample_pos_embed")

__all__ = [
    "GLOBAL_POOLS",
    "MODEL_ARGS",
    "T2TViT",
    "check_global_pool",
    "check_model_args",
    "describe_levels",
    "resolve_level_indices",
]

#: The poolings `forward_head` takes, as timm's ViT names them: the class token, the mean of
#: the patch tokens, or none (the whole normalised sequence).
GLOBAL_POOLS: tuple[str, ...] = ("token", "avg", "")

# What forward_intermediates collects: one map per block, or (map, class token) pairs.
_Intermediates: TypeAlias = "list[Tensor] | list[tuple[Tensor, Tensor]]"


def _pair(size: int | Sequence[int]) -> tuple[int, int]:
    if isinstance(size, int):
        return size, size
    pair = tuple(int(s) for s in size)
    if len(pair) != 2:
        raise ValueError(f"img_size must be an int or (height, width), got {size!r}")
    return pair[0], pair[1]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


_INT = ("an integer", _is_int)
_NUMBER = ("a number", _is_number)
_BOOL = ("true or false", lambda v: isinstance(v, bool))
#: Each `T2TViT` argument: what it must be, in words, and the check.
_ARG_TYPES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "img_size": (
        "an integer or a [height, width] pair of integers",
        lambda v: _is_int(v) or (isinstance(v, (list, tuple)) and all(_is_int(s) for s in v)),
    ),
    "tokens_type": ("a string", lambda v: isinstance(v, str)),
    "in_chans": _INT,
    "num_classes": _INT,
    "embed_dim": _INT,
    "depth": _INT,
    "num_heads": _INT,
    "mlp_ratio": _NUMBER,
    "qkv_bias": _BOOL,
    "qk_scale": ("a number or null", lambda v: v is None or _is_number(v)),
    "drop_rate": _NUMBER,
    "attn_drop_rate": _NUMBER,
    "drop_path_rate": _NUMBER,
    "token_dim": _INT,
    # The T2T module checks the layer specs and names the bad entry.
    "t2t_layers": ("a list of [kernel, stride, padding] triples", lambda v: True),
    "dynamic_img_size": _BOOL,
    "global_pool": ("a string", lambda v: isinstance(v, str)),
}


def _at_least(low: int) -> tuple[str, Callable[[Any], bool]]:
    return f"must be at least {low}", lambda v: v >= low


_RATE = ("must be in [0, 1]", lambda v: 0 <= v <= 1)
#: The range of each numeric argument whose type is right, in words, and the check.
_ARG_RANGES: dict[str, tuple[str, Callable[[Any], bool]]] = {
    "in_chans": _at_least(1),
    "num_classes": ("must be at least 0 (0: no head)", lambda v: v >= 0),
    "embed_dim": _at_least(1),
    "depth": _at_least(0),
    "num_heads": _at_least(1),
    "mlp_ratio": ("must be greater than 0", lambda v: v > 0),
    "drop_rate": _RATE,
    "attn_drop_rate": _RATE,
    "drop_path_rate": _RATE,
    "token_dim": _at_least(1),
}


MODEL_ARGS: tuple[str, ...] = tuple(_ARG_TYPES)
"""The names of `T2TViT`'s arguments."""


def check_model_args(args: Mapping[str, Any]) -> None:
    """Raise `TypeError` naming the first unknown `T2TViT` argument (with the closest known
    one) or the first argument of the wrong type (with the type it takes), and `ValueError`
    for a number out of its range (`embed_dim=0`, `drop_path_rate=1.5`)."""
    for key, value in args.items():
        if key not in _ARG_TYPES:
            close = difflib.get_close_matches(key, _ARG_TYPES, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise TypeError(
                f"unknown T2TViT argument {key!r}{hint}; accepted: {', '.join(_ARG_TYPES)}"
            )
        expected, ok = _ARG_TYPES[key]
        if not ok(value):
            raise TypeError(
                f"T2TViT argument {key}={value!r} must be {expected}, not {type(value).__name__}"
            )
        if key == "global_pool":
            check_global_pool(value)  # one message for the constructor and reset_classifier
        if key in _ARG_RANGES:
            bound, fits = _ARG_RANGES[key]
            if not fits(value):
                raise ValueError(f"{key} {bound}, got {value!r}")


def check_global_pool(global_pool: object) -> str:
    """`global_pool` itself, or `ValueError` naming it and the poolings accepted."""
    if not isinstance(global_pool, str) or global_pool not in GLOBAL_POOLS:
        accepted = ", ".join(repr(p) for p in GLOBAL_POOLS)
        raise ValueError(
            f"global_pool={global_pool!r} is not supported by T2T-ViT; accepted: {accepted} "
            "(the class token, the mean of the patch tokens, or no pooling)"
        )
    return global_pool


def _describe(levels: Sequence[Mapping[str, Any]]) -> str:
    """`0 tokens_to_token.attention1 (stride 4, 64 channels), ..., 2-15 blocks.0-13 (...)`:
    each level by its index and module, a run of consecutive blocks in one entry."""
    parts = []
    i = 0
    while i < len(levels):
        lv = levels[i]
        j = i
        if str(lv["module"]).startswith("blocks."):
            while j + 1 < len(levels) and str(levels[j + 1]["module"]).startswith("blocks."):
                j += 1
        at, names = str(i), str(lv["module"])
        if j > i:
            last = str(levels[j]["module"]).removeprefix("blocks.")
            at, names = f"{i}-{j}", f"{names}-{last}"
        end = levels[j]
        parts.append(f"{at} {names} (stride {end['reduction']}, {end['num_chs']} channels)")
        i = j + 1
    return ", ".join(parts)


describe_levels = _describe


def resolve_level_indices(
    indices: int | Sequence[int] | None,
    levels: Sequence[Mapping[str, Any]],
    name: str = "out_indices",
    default: Sequence[int] | None = None,
) -> list[int]:
    """Level indices (sorted, non-negative) for `indices` in the one index space of
    `levels`: a sequence of indices (negative from the end), an int `n` for the last `n`
    levels, or `None` for `default` (all levels when `default` is `None`).

    Raises `ValueError` naming the bad entry and the levels."""
    n = len(levels)
    if indices is None:
        return list(range(n)) if default is None else sorted(default)
    if isinstance(indices, bool) or not isinstance(indices, (int, Sequence)):
        raise ValueError(
            f"{name} must be level indices such as (0, 1, -1), the number of last "
            f"levels as an int, or None; got {indices!r}"
        )
    if isinstance(indices, int):
        if not 0 < indices <= n:
            raise ValueError(
                f"{name}={indices} asks for the last {indices} levels but there "
                f"are {n}: pass 1..{n}. Levels: {_describe(levels)}"
            )
        return list(range(n - indices, n))
    if len(indices) == 0:
        raise ValueError(f"{name} is empty; pick at least one level. Levels: {_describe(levels)}")
    taken: dict[int, int] = {}
    for entry in indices:
        if isinstance(entry, bool) or not isinstance(entry, int):
            raise ValueError(f"{name} entries must be ints, got {entry!r} in {indices!r}")
        if not -n <= entry < n:
            raise ValueError(
                f"{name} entry {entry} is out of range: valid are 0..{n - 1} or "
                f"-{n}..-1. Levels: {_describe(levels)}"
            )
        index = entry % n
        if index in taken:
            raise ValueError(
                f"{name} {list(indices)!r} names level {index} "
                f"({levels[index]['module']}) twice ({taken[index]} and {entry}); "
                "name each level once"
            )
        taken[index] = entry
    return sorted(taken)


def model_levels(model: Any) -> list[dict[str, Any]]:
    """Every level of a model with a T2T stem and blocks, in order (the one index space of
    `out_indices`, `forward_intermediates` and `prune_intermediate_layers`):
    `{"num_chs", "reduction", "module", "index"}`."""
    stem = model.tokens_to_token
    levels: list[dict[str, Any]] = []
    stride = 1
    for i, (_, split_stride, _) in enumerate(stem.layers[:-1]):
        stride *= split_stride
        if stem.tokens_type != "patch":
            levels.append(
                {
                    "num_chs": stem.token_dim,
                    "reduction": stride,
                    "module": f"tokens_to_token.attention{i + 1}",
                }
            )
    total = stride * stem.layers[-1][1]
    for i in range(int(model.config["depth"])):
        levels.append({"num_chs": model.embed_dim, "reduction": total, "module": f"blocks.{i}"})
    for i, level in enumerate(levels):
        level["index"] = i
    return levels


class _TokenEmbedding(NotScriptable):
    """Image to the encoder's input sequence, and the blocks' checkpointed call.

    Shared by `T2TViT` and `T2TFeatures`, which hold the same submodules under the
    same names; the attributes below are theirs.
    """

    tokens_to_token: T2TModule
    cls_token: nn.Parameter
    pos_embed: Tensor
    pos_drop: nn.Module
    grid: tuple[int, int]
    img_size: tuple[int, int]
    dynamic_img_size: bool
    grad_checkpointing: bool
    training: bool
    _pos_cache: dict[tuple[Any, ...], Tensor]

    def pos_embed_for(self, grid: tuple[int, int]) -> Tensor:
        """The position table for a token grid, `(1, 1 + h*w, C)`.

        The native grid gets the stored table; other grids get it resampled
        bicubically (class token row kept), cached per grid.
        """
        h, w = grid
        if not is_static(h, w):
            # Symbolic sizes (torch.compile with dynamic shapes, torch.export, FX): a
            # Python comparison with the native grid would fix the size; resampling to
            # the native grid itself is exact (bicubic weights (0, 1, 0, 0)).
            if not self.dynamic_img_size and not isinstance(h, torch.fx.Proxy):
                torch._check((h == self.grid[0]) & (w == self.grid[1]))  # type: ignore[no-untyped-call]
            return resample_pos_embed(self.pos_embed, (h, w), self.grid)
        if (h, w) == self.grid:
            return self.pos_embed
        if not self.dynamic_img_size:
            raise ValueError(self._not_native(grid))
        if torch.compiler.is_compiling():
            return resample_pos_embed(self.pos_embed, grid, self.grid)
        pe = self.pos_embed
        key = (grid, pe.data_ptr(), pe._version, pe.dtype, pe.device)
        table = self._pos_cache.get(key)
        if table is None:
            if len(self._pos_cache) >= 8:
                self._pos_cache.clear()
            table = resample_pos_embed(pe, grid, self.grid)
            self._pos_cache[key] = table
        return table

    def _not_native(self, grid: tuple[int, int]) -> str:
        return (
            f"input gives a {grid[0]}x{grid[1]} token grid but the model was built for "
            f"img_size {self.img_size} ({self.grid[0]}x{self.grid[1]}); pass "
            "dynamic_img_size=True to resample the position table"
        )

    pretrained_cfg: dict[str, Any] | None

    @property
    def default_cfg(self) -> dict[str, Any] | None:
        """timm's older name of `pretrained_cfg` (the same dict)."""
        return self.pretrained_cfg

    @default_cfg.setter
    def default_cfg(self, cfg: dict[str, Any] | None) -> None:
        self.pretrained_cfg = cfg

    def check_input(self, x: Tensor) -> None:
        """The one input gate of every entry point that takes a batch (`forward`,
        `forward_features`, `forward_intermediates`, the feature model,
        `record_attention_maps`, `rollout`): raise in one line unless `x` is a
        `(B, in_chans, H, W)` tensor the stem takes (`T2TModule.check_input`) and, when
        the model is built with `dynamic_img_size=False`, of the size it is built for."""
        refuse_jit_trace(self)
        self.tokens_to_token.check_input(x)
        if isinstance(x, torch.fx.Proxy) or self.dynamic_img_size:
            return
        height, width = x.shape[2], x.shape[3]
        # Symbolic sizes are checked by `pos_embed_for` with a `torch._check`.
        if is_static(height, width):
            grid = self.tokens_to_token.output_grid(height, width)
            if grid != self.grid:
                raise ValueError(self._not_native(grid))

    def _embed(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        tokens, grid = self.tokens_to_token(x)
        return self._add_positions(tokens, grid), grid

    def _add_positions(self, tokens: Tensor, grid: tuple[int, int]) -> Tensor:
        """Stem tokens `(B, N, C)` to `(B, 1 + N, C)`: class token first, positions added."""
        cls = self.cls_token.expand(tokens.shape[0], -1, -1)
        x = torch.cat((cls, tokens), dim=1) + self.pos_embed_for(grid)
        out: Tensor = self.pos_drop(x)
        return out

    def _run_block(self, block: nn.Module, x: Tensor) -> Tensor:
        if self.grad_checkpointing and self.training:
            out: Tensor = checkpoint(block, x, use_reentrant=False)
            return out
        result: Tensor = block(x)
        return result


class T2TViT(_TokenEmbedding, nn.Module):
    """Tokens-to-Token Vision Transformer (Yuan et al., ICCV 2021).

    The constructor takes the official arguments by their official names, so
    `T2TViT(**official_kwargs)` builds the official network with the same
    state-dict keys. `t2t_layers` sets the stem's soft splits and
    `dynamic_img_size` lets inputs of other sizes than `img_size` through, with
    the position table resampled to their token grid.

    Calls follow timm: `forward(x) -> (B, num_classes)`,
    `forward_features(x) -> (B, 1 + N, C)` (class token first, normalised),
    `forward_head(features, pre_logits=False)`.
    """

    pos_embed: Tensor

    def __init__(
        self,
        img_size: int | Sequence[int] = 224,
        tokens_type: TokensType | str = "performer",
        in_chans: int = 3,
        num_classes: int = 1000,
        embed_dim: int = 768,
        depth: int = 12,
        num_heads: int = 12,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop_rate: float = 0.0,
        attn_drop_rate: float = 0.0,
        drop_path_rate: float = 0.0,
        token_dim: int = 64,
        t2t_layers: Sequence[Sequence[int]] = DEFAULT_T2T_LAYERS,
        dynamic_img_size: bool = True,
        global_pool: str = "token",
        *,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> None:
        """Build the network; the weights are randomly initialised.

        Args:
            img_size: Input size the model is built for, an int or `(height, width)`. It
                sets the token grid of the stored position table (14x14 at 224).
            tokens_type: The stem's T2T layers: `'performer'` (T2T-ViT-*), `'transformer'`
                (T2T-ViT_t-*), or `'patch'` (one strided convolution, ViT's patch
                embedding, for comparisons).
            in_chans: Channels of the input image.
            num_classes: Classes of the linear head; 0 leaves no head, and `forward`
                returns the normalised class token `(B, embed_dim)`.
            embed_dim: Token width in the encoder blocks.
            depth: Number of encoder blocks.
            num_heads: Attention heads per block; must divide `embed_dim`.
            mlp_ratio: Hidden width of each block's MLP, as a multiple of `embed_dim`.
            qkv_bias: Give the blocks' query, key and value projections a bias.
            qk_scale: Attention scale of the blocks; `None` is `(embed_dim // num_heads)
                ** -0.5`.
            drop_rate: Dropout after the position embedding, in the MLPs and after the
                attention projections.
            attn_drop_rate: Dropout on the attention probabilities.
            drop_path_rate: Stochastic depth of the last block, rising linearly from 0 at
                the first block.
            token_dim: Token width inside the T2T stem, between its soft splits.
            t2t_layers: `(kernel, stride, padding)` of each soft split; the default is the
                paper's `((7, 4, 2), (3, 2, 1), (3, 2, 1))`.
            dynamic_img_size: Accept inputs of other sizes than `img_size`, with the
                position table resampled to their token grid; with `False` they raise.
            global_pool: What `forward_head` classifies, as timm's ViT: `'token'` the class
                token (the paper's), `'avg'` the mean of the patch tokens, `''` every token.
            device: Where the parameters and buffers are created (`'meta'` allocates
                nothing), as timm's models take it.
            dtype: Floating dtype of the parameters and buffers (as `model.to(dtype)`).
        """
        super().__init__()
        check_model_args({k: v for k, v in locals().items() if k in _ARG_TYPES})
        if dtype is not None and not dtype.is_floating_point:
            raise TypeError(f"dtype={dtype} is not a floating dtype; pass e.g. torch.float32")
        with torch.device(device) if device is not None else contextlib.nullcontext():
            self._build(
                img_size, tokens_type, in_chans, num_classes, embed_dim, depth, num_heads,
                mlp_ratio, qkv_bias, qk_scale, drop_rate, attn_drop_rate, drop_path_rate,
                token_dim, t2t_layers, dynamic_img_size, global_pool,
            )  # fmt: skip
        if dtype is not None:
            self.to(dtype)

    def _build(
        self,
        img_size: int | Sequence[int],
        tokens_type: TokensType | str,
        in_chans: int,
        num_classes: int,
        embed_dim: int,
        depth: int,
        num_heads: int,
        mlp_ratio: float,
        qkv_bias: bool,
        qk_scale: float | None,
        drop_rate: float,
        attn_drop_rate: float,
        drop_path_rate: float,
        token_dim: int,
        t2t_layers: Sequence[Sequence[int]],
        dynamic_img_size: bool,
        global_pool: str,
    ) -> None:
        if embed_dim % num_heads != 0:
            raise ValueError(f"embed_dim={embed_dim} is not divisible by num_heads={num_heads}")
        self.img_size = _pair(img_size)
        self.config: dict[str, Any] = {
            # One spelling per size: an int for a square (timm writes `[64, 64]` for 64).
            "img_size": list(self.img_size)
            if self.img_size[0] != self.img_size[1]
            else self.img_size[0],
            "tokens_type": tokens_type,
            "in_chans": in_chans,
            "num_classes": num_classes,
            "embed_dim": embed_dim,
            "depth": depth,
            "num_heads": num_heads,
            "mlp_ratio": mlp_ratio,
            "qkv_bias": qkv_bias,
            "qk_scale": qk_scale,
            "drop_rate": drop_rate,
            "attn_drop_rate": attn_drop_rate,
            "drop_path_rate": drop_path_rate,
            "token_dim": token_dim,
            "t2t_layers": [list(layer) for layer in _check_layers(t2t_layers)],
            "dynamic_img_size": dynamic_img_size,
            "global_pool": global_pool,
        }
        # timm's record of the arguments (`create_model` adds its own to it): its save_for_hf
        # writes them as the folder's `model_args`, so timm and this library rebuild the network.
        self._model_args: dict[str, Any] = dict(self.config)
        self.num_classes = num_classes
        self.global_pool = global_pool
        self.num_features = self.head_hidden_size = self.embed_dim = embed_dim
        self.in_chans = in_chans
        self.dynamic_img_size = dynamic_img_size
        self.grad_checkpointing = False

        self.tokens_to_token = T2TModule(
            in_chans=in_chans,
            embed_dim=embed_dim,
            token_dim=token_dim,
            tokens_type=tokens_type,
            layers=t2t_layers,
        )
        self.grid = self.tokens_to_token.output_grid(*self.img_size)
        if min(self.grid) < 1:
            side = self.tokens_to_token.min_input_size()
            raise ValueError(
                f"img_size {self.img_size} is too small for the T2T stem (layers "
                f"{self.tokens_to_token.layers}); each side must be at least {side}, the "
                f"smallest it takes is {side}x{side}"
            )
        num_patches = self.grid[0] * self.grid[1]
        self.cls_token = nn.Parameter(torch.zeros(1, 1, embed_dim))
        self.register_buffer("pos_embed", get_sinusoid_encoding(num_patches + 1, embed_dim))
        self.pos_drop = nn.Dropout(p=drop_rate)
        # On the CPU even under `torch.device("meta")`: the rates are Python floats.
        dpr = torch.linspace(0, drop_path_rate, depth, device="cpu").tolist()
        self.blocks = nn.ModuleList(
            Block(
                dim=embed_dim,
                num_heads=num_heads,
                mlp_ratio=mlp_ratio,
                qkv_bias=qkv_bias,
                qk_scale=qk_scale,
                drop=drop_rate,
                attn_drop=attn_drop_rate,
                drop_path=dpr[i],
            )
            for i in range(depth)
        )
        self.norm: nn.Module = nn.LayerNorm(embed_dim)
        self.head: nn.Module = (
            nn.Linear(embed_dim, num_classes) if num_classes > 0 else nn.Identity()
        )
        self._pos_cache: dict[tuple[Any, ...], Tensor] = {}
        #: Preprocessing and labels of the loaded weights (`from_pretrained` sets it).
        self.pretrained_cfg: dict[str, Any] | None = None

        nn.init.trunc_normal_(self.cls_token, std=0.02)
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            nn.init.trunc_normal_(m.weight, std=0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.LayerNorm):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)

    # -- timm-style model interface -------------------------------------------------

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay."""
        return {"cls_token"}

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def group_matcher(self, coarse: bool = False) -> dict[str, Any]:
        """timm's parameter groups (layer decay, `timm.optim`): the stem, class token and
        position table first, then one group per block, the final norm last."""
        return {
            "stem": r"^cls_token|^pos_embed|^tokens_to_token",
            "blocks": [(r"^blocks\.(\d+)", None), (r"^norm", (99999,))],
        }

    @torch.jit.ignore  # type: ignore[untyped-decorator]
    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks and T2T layers in the backward pass to save memory."""
        self.grad_checkpointing = enable
        self.tokens_to_token.grad_checkpointing = enable

    def get_classifier(self) -> nn.Module:
        """The classification head."""
        return self.head

    def reset_classifier(self, num_classes: int, global_pool: str | None = None) -> None:
        """Replace the head with a fresh one for `num_classes` (0 removes it), on the model's
        device and dtype and in its mode; `global_pool` (`'token'`, `'avg'`, `''`) also
        changes the pooling, `None` keeps it."""
        check_model_args({"num_classes": num_classes})
        if global_pool is not None:
            self.global_pool = self.config["global_pool"] = check_global_pool(global_pool)
        self.num_classes = self.config["num_classes"] = num_classes
        like = self.cls_token
        head: nn.Module = nn.Identity()
        if num_classes > 0:
            head = nn.Linear(self.embed_dim, num_classes, device=like.device, dtype=like.dtype)
            self._init_weights(head)
        self.head = head.train(self.training)
        if isinstance(self.pretrained_cfg, dict):
            # The old labels and metrics describe the old head: the new classes are named
            # by index (set pretrained_cfg["labels"] to name them).
            self.pretrained_cfg = for_new_head(self.pretrained_cfg, num_classes)

    # -- forward ----------------------------------------------------------------------

    def forward_features(self, x: Tensor) -> Tensor:
        """Image `(B, C, H, W)` to the normalised tokens `(B, 1 + N, embed_dim)`."""
        self.check_input(x)
        x, _ = self._embed(x)
        for block in self.blocks:
            x = self._run_block(block, x)
        out: Tensor = self.norm(x)
        return out

    def forward_head(self, x: Tensor, pre_logits: bool = False) -> Tensor:
        """Tokens `(B, 1 + N, C)` to logits `(B, num_classes)`, or with `pre_logits` to what
        the head takes: the class token, the patch tokens' mean (`global_pool='avg'`), or
        every token (`global_pool=''`, then the logits are per token)."""
        if self.global_pool == "token":
            x = x[:, 0]
        elif self.global_pool == "avg":
            x = x[:, 1:].mean(dim=1)
        return x if pre_logits else linear(self.head, x)

    def forward(self, x: Tensor) -> Tensor:
        """Image `(B, C, H, W)` to logits `(B, num_classes)`."""
        return self.forward_head(self.forward_features(x))

    @overload
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: Literal[False] = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: Literal[False] = False,
    ) -> tuple[Tensor, list[Tensor]]: ...

    @overload
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: Literal[False] = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        *,
        intermediates_only: Literal[True],
    ) -> list[Tensor]: ...

    @overload
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        *,
        return_prefix_tokens: Literal[True],
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: Literal[False] = False,
    ) -> tuple[Tensor, list[tuple[Tensor, Tensor]]]: ...

    @overload
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        *,
        return_prefix_tokens: Literal[True],
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: Literal[True],
    ) -> list[tuple[Tensor, Tensor]]: ...

    @overload
    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: bool = False,
    ) -> _Intermediates | tuple[Tensor, _Intermediates]: ...

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        return_prefix_tokens: bool = False,
        norm: bool = False,
        stop_early: bool = False,
        output_fmt: Literal["NCHW", "NLC"] = "NCHW",
        intermediates_only: bool = False,
    ) -> _Intermediates | tuple[Tensor, _Intermediates]:
        """Features of chosen levels, as timm's `forward_intermediates`.

        `indices` index the model's levels (`feature_info`: each T2T layer of the stem,
        then each block; the one index space of `out_indices` and
        `prune_intermediate_layers`): a list (negative counts from the end), an int `n`
        for the last `n` levels, or `None` for all. Each intermediate is `(B, C, h, w)`
        on the level's real grid (`output_fmt='NCHW'`) or `(B, h*w, C)` (`'NLC'`); with
        `return_prefix_tokens` it is a pair `(map, class_token (B, 1, C))`, the class
        token of a stem level being empty `(B, 0, C)`. Returns
        `(final_features (B, 1 + N, C), intermediates)`, or the intermediates alone with
        `intermediates_only` (the overloads give each combination its type). `norm`
        applies the final norm to each block's intermediate; `stop_early` skips the
        blocks after the deepest chosen level.
        """
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        self.check_input(x)
        levels = self.feature_info
        take = resolve_level_indices(indices, levels, name="indices")
        num_stem = len(levels) - len(self.blocks)
        stem_take = [i for i in take if i < num_stem]
        block_take = [i - num_stem for i in take if i >= num_stem]
        tokens, (h, w), stem_maps = self.tokens_to_token.forward_intermediates(x)
        maps: list[Tensor] = []
        prefixes: list[Tensor] = []
        for i in stem_take:
            stem_map = stem_maps[i]
            if output_fmt == "NLC":
                stem_map = rearrange(stem_map, "b c h w -> b (h w) c")
            maps.append(stem_map)
            prefixes.append(stem_map.new_zeros(stem_map.shape[0], 0, self.embed_dim))
        x = self._add_positions(tokens, (h, w))
        depth = len(self.blocks)
        last = max(block_take, default=-1) if stop_early else depth - 1
        for i, block in enumerate(self.blocks[: last + 1]):
            x = self._run_block(block, x)
            if i in block_take:
                y = self.norm(x) if norm else x
                prefix, spatial = y[:, :1], y[:, 1:]
                if output_fmt == "NCHW":
                    # Contiguous NCHW, as timm's maps: a permuted view as a compiled graph's
                    # output breaks inductor's dynamic shapes on torch 2.13.
                    spatial = rearrange(spatial, "b (h w) c -> b c h w", h=h, w=w).contiguous()
                maps.append(spatial)
                prefixes.append(prefix)
        intermediates: _Intermediates = (
            list(zip(maps, prefixes, strict=True)) if return_prefix_tokens else maps
        )
        if intermediates_only:
            return intermediates
        final: Tensor = self.norm(x)
        return final, intermediates

    @property
    def feature_info(self) -> list[dict[str, Any]]:
        """Every level, as timm's ViT lists them: `{"num_chs", "reduction", "module",
        "index"}` for each T2T layer of the stem, then each block. The one index space of
        `forward_intermediates`, `prune_intermediate_layers` and `out_indices`."""
        return model_levels(self)

    def prune_intermediate_layers(
        self,
        indices: int | Sequence[int] = 1,
        prune_norm: bool = False,
        prune_head: bool = True,
    ) -> list[int]:
        """Drop what the chosen levels do not need, as timm's ViT: the blocks after the
        deepest one, the final norm (`prune_norm`) and the head (`prune_head`).

        Returns the level indices taken (non-negative), for `forward_intermediates`.
        """
        levels = self.feature_info
        take = resolve_level_indices(indices, levels, name="indices")
        num_stem = len(levels) - len(self.blocks)
        keep = max(take) - num_stem + 1
        self.blocks = self.blocks[: max(keep, 0)]
        self.config["depth"] = len(self.blocks)
        if prune_norm:
            self.norm = nn.Identity()
        if prune_head:
            self.reset_classifier(0)
        return take
