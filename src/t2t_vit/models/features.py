"""T2T-ViT as a multi-scale backbone: `features_only` maps and their `feature_info`.

The levels of a T2T-ViT are the outputs of the stem's T2T layers (`token_dim`
channels at the stride of their soft split: 4 and 8 for the paper's stem), then the
outputs of the encoder blocks (`embed_dim` channels at the stem's total stride, 16).
`T2TFeatures` returns the selected levels as NCHW maps on their real grids.
"""

from __future__ import annotations

import copy
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import torch
from einops import rearrange
from torch import Tensor, nn

from ..layers.t2t_module import T2TModule
from .t2t_vit import T2TViT, _TokenEmbedding, model_levels, resolve_level_indices

LEVELS: tuple[str, ...] = ("all", "pyramid")
# The pyramid's stride-32 level: the last block, max-pooled.
_POOLED = -1
"""Accepted values of `T2TFeatures(levels=...)`."""

__all__ = ["FeatureInfo", "T2TFeatures", "create_feature_model", "feature_levels"]

# FX symbolic tracing records it as a call: einops cannot take a Proxy.
torch.fx.wrap("rearrange")


Index = int | Sequence[int] | None


def _as_tuple(out_indices: int | Sequence[int]) -> tuple[int, ...]:
    # timm's reading: an int n is the last n levels, as negative indices.
    if isinstance(out_indices, int):
        return tuple(range(-out_indices, 0))
    return tuple(out_indices)


class FeatureInfo:
    """Every level of a backbone and the ones it returns, with timm's `FeatureInfo` calls.

    `info` holds one dict per level (`num_chs`, `reduction`, `module`, `index`), and
    `out_indices` the levels the backbone returns. As in timm, `channels()`,
    `reduction()`, `module_name()`, `get(key)` and `get_dicts()` without an index give
    the returned levels; with an int or a list they give those levels of `info`
    (ignoring `out_indices`); `len()`, indexing and iteration are over all levels.
    """

    def __init__(
        self, info: Sequence[Mapping[str, Any]], out_indices: int | Sequence[int] | None = None
    ) -> None:
        """The description of a backbone's levels.

        Args:
            info: One mapping per level, with keys `num_chs`, `reduction` and `module`
                (`index` is added where missing).
            out_indices: The returned levels (an int `n`: the last `n`); default all.
        """
        self.info: list[dict[str, Any]] = []
        for i, entry in enumerate(info):
            level = dict(entry)
            level.setdefault("index", i)
            self.info.append(level)
        self.out_indices: tuple[int, ...] = (
            tuple(range(len(self.info))) if out_indices is None else _as_tuple(out_indices)
        )

    def from_other(self, out_indices: int | Sequence[int]) -> FeatureInfo:
        """The same levels with other `out_indices`."""
        return FeatureInfo(copy.deepcopy(self.info), out_indices)

    def get(self, key: str, idx: Index = None) -> Any:
        """The value of `key` for each returned level, for level `idx`, or for each
        level of the list `idx`."""
        if idx is None:
            return [self.info[i][key] for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [self.info[i][key] for i in idx]
        return self.info[idx][key]  # type: ignore[index]

    def get_dicts(self, keys: Sequence[str] | None = None, idx: Index = None) -> Any:
        """The dicts (restricted to `keys`) of the returned levels, of level `idx`, or of
        each level of the list `idx`."""

        def pick(i: int) -> dict[str, Any]:
            entry = self.info[i]
            return entry if keys is None else {k: entry[k] for k in keys}

        if idx is None:
            return [pick(i) for i in self.out_indices]
        if isinstance(idx, (tuple, list)):
            return [pick(i) for i in idx]
        return pick(idx)  # type: ignore[arg-type]

    def channels(self, idx: Index = None) -> Any:
        """Channels of the returned levels (or of level(s) `idx`)."""
        return self.get("num_chs", idx)

    def reduction(self, idx: Index = None) -> Any:
        """Stride relative to the input of the returned levels (or of level(s) `idx`)."""
        return self.get("reduction", idx)

    def module_name(self, idx: Index = None) -> Any:
        """Name of the module whose output each returned level is (or level(s) `idx`)."""
        return self.get("module", idx)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info!r}, out_indices={self.out_indices!r})"


def feature_levels(model: T2TViT) -> list[dict[str, Any]]:
    """Every level a `T2TViT` can return, in order: `{"num_chs", "reduction", "module",
    "index"}`.

    First the stem's T2T layers (`tokens_to_token.attention1`, ...), then the blocks
    (`blocks.0`, ...): the one index space of `out_indices`, `forward_intermediates`
    and `prune_intermediate_layers`.
    """
    return model_levels(model)


class T2TFeatures(_TokenEmbedding, nn.Module):
    """A `T2TViT` as a backbone: `forward(x)` gives a list of NCHW maps, one per level.

    Built from a model, whose modules it shares (the model itself is left as it is).
    Levels are listed by `feature_levels`: each T2T layer of the stem, then each block.
    `out_indices` picks levels (negative counts from the end; an int `n` is the last
    `n`); the default is the stem levels plus the last block (strides 4, 8, 16 for the
    paper's stem). Maps come shallow to deep, described by `feature_info`. Block maps
    are the blocks' outputs as `forward_intermediates` gives them, with the final norm
    only if `norm=True`. `levels="pyramid"` lists one level per stride instead, as
    hierarchical backbones count their stages (what smp's `tu-` encoders index with
    `range(depth)`): the stem's T2T layers, the last block, and the last block
    max-pooled to stride 32 (`downsample`). `output_stride=16` caps every level at stride
    16, as timm's `output_stride` does: the pyramid's last level is then the last block
    unpooled (`downsample` is an identity).

    Only what the selected levels need is part of the module (as timm's feature wrappers
    prune): with stem levels only, the T2T layers after the deepest selected one and the
    stem's projection are left out too, so every parameter gets a gradient (DDP without
    `find_unused_parameters`).

    Parameter names are the model's, so the classifier's state dict loads strictly:
    its head, its final norm (unless `norm=True`) and the blocks after the deepest
    selected one are not part of this module and are skipped on load.
    """

    def __init__(
        self,
        model: T2TViT,
        out_indices: int | Sequence[int] | None = None,
        norm: bool = False,
        levels: str = "all",
        output_stride: int | None = None,
    ) -> None:
        """A backbone sharing `model`'s modules.

        Args:
            model: The classifier whose stem and blocks give the maps (left unchanged).
            out_indices: Levels to return (see `feature_levels`): indices, negative from
                the end, or an int `n` for the last `n`; default the stem levels and the
                last block.
            norm: Apply the model's final LayerNorm to the block maps.
            levels: `"all"` (each T2T layer, then each block) or `"pyramid"` (each T2T
                layer, the last block, the last block pooled to stride 32): the levels
                `out_indices` index; a pyramid returns all its levels by default.
            output_stride: The largest stride of any level: the blocks' stride (16 for
                the paper's stem), twice it, or None (no cap).
        """
        super().__init__()
        if not isinstance(model, T2TViT):
            raise TypeError(f"T2TFeatures needs a T2TViT, got {type(model).__name__}")
        if levels not in LEVELS:
            raise ValueError(f"levels must be one of {', '.join(LEVELS)}; got {levels!r}")
        every = feature_levels(model)
        cap = _check_output_stride(output_stride, every[-1]["reduction"])
        self._num_stem = num_stem = len(every) - len(model.blocks)
        last = len(model.blocks) - 1
        default: list[int] | None = [*range(num_stem), len(every) - 1]
        if levels == "pyramid":
            deepest = every[-1]
            coarsest = min(2 * deepest["reduction"], cap)
            pooled = {**deepest, "reduction": coarsest, "module": "downsample"}
            every = [*every[:num_stem], deepest, pooled]
            every = [{**level, "index": i} for i, level in enumerate(every)]
            self._level_block = [last, _POOLED]
            default = None
        else:
            self._level_block = list(range(len(model.blocks)))
        self.levels = levels
        self.output_stride = output_stride
        self.out_indices = tuple(resolve_level_indices(out_indices, every, default=default))
        self.feature_info = FeatureInfo(every, self.out_indices)
        self._stem_take, self._block_take = self._split(self.out_indices)
        self.use_norm = norm and bool(self._block_take)

        self.config = dict(model.config)
        self.pretrained_cfg = model.pretrained_cfg
        self.embed_dim = model.embed_dim
        self.img_size = model.img_size
        self.grid = model.grid
        self.dynamic_img_size = model.dynamic_img_size
        self.grad_checkpointing = model.grad_checkpointing
        self._pos_cache = {}

        if self._block_take:
            self.tokens_to_token = model.tokens_to_token
            self.cls_token = model.cls_token
            self.register_buffer("pos_embed", model.pos_embed)
            self.pos_drop = model.pos_drop
            # Blocks after the deepest selected one never run: leaving them out keeps
            # them from showing up as unused parameters (DDP) or in the optimizer.
            self.blocks = nn.ModuleList(model.blocks[: self._deepest(self._block_take) + 1])
        else:
            self.tokens_to_token = _stem_upto(model.tokens_to_token, max(self._stem_take) + 1)
            self.blocks = nn.ModuleList()
        if self.use_norm:
            self.norm = model.norm
        if _POOLED in self._block_take:
            # Stride 32 from the last block, without parameters, as ViTDet's pyramid
            # makes its coarsest level; ceil keeps the border of an odd grid. Capped at
            # the blocks' stride, it stays there, as a dilated stage does in timm.
            self.downsample: nn.Module = (
                nn.MaxPool2d(kernel_size=2, stride=2, ceil_mode=True)
                if self.feature_info.info[-1]["reduction"] > self.feature_info.info[-2]["reduction"]
                else nn.Identity()
            )

        own = set(self.state_dict())
        self._classifier_only = frozenset(k for k in model.state_dict() if k not in own)
        #: Levels a client selects by module name for the next calls (see `forward`).
        self.return_layers: dict[str, str] | None = None
        self.register_load_state_dict_pre_hook(_skip_classifier_only)  # type: ignore[no-untyped-call]
        # The model's mode for every submodule: a new module starts in training mode,
        # the shared ones keep the model's (eval after from_pretrained).
        self.train(model.training)

    def _deepest(self, block_take: Sequence[int]) -> int:
        """The deepest block to run for `block_take` (the pooled level needs the last)."""
        return max(self._level_block[-2] if b == _POOLED else b for b in block_take)

    def _split(self, take: Sequence[int]) -> tuple[list[int], list[int]]:
        """Level indices to (stem layer indices, block indices)."""
        stem = [i for i in take if i < self._num_stem]
        blocks = [self._level_block[i - self._num_stem] for i in take if i >= self._num_stem]
        return stem, blocks

    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay."""
        return {"cls_token"} if self._block_take else set()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks and T2T layers in the backward pass to save memory."""
        self.grad_checkpointing = enable
        self.tokens_to_token.grad_checkpointing = enable

    def forward(self, x: Tensor) -> list[Tensor]:
        """Image `(B, C, H, W)` to the selected maps, each `(B, C_i, h_i, w_i)`.

        `return_layers` (module name -> output name, timm's feature-wrapper attribute that
        transformers' `TimmBackbone` sets for `output_hidden_states=True`) selects other
        levels for the call, by their `feature_info` module names, in level order."""
        if self.return_layers:
            take = self._levels_named(self.return_layers)
            return self.forward_intermediates(x, indices=take, norm=self.use_norm)
        return self._maps(x, self._stem_take, self._block_take, self.use_norm)

    def _levels_named(self, modules: Mapping[str, Any]) -> list[int]:
        index = {str(level["module"]): i for i, level in enumerate(self.feature_info.info)}
        unknown = [m for m in modules if m not in index]
        if unknown:
            raise ValueError(
                f"return_layers names {unknown!r}, which are no levels of this feature model; "
                f"its levels: {', '.join(index)}"
            )
        return sorted(index[m] for m in modules)

    def forward_intermediates(
        self,
        x: Tensor,
        indices: int | Sequence[int] | None = None,
        norm: bool = False,
        output_fmt: str = "NCHW",
        intermediates_only: bool = True,
    ) -> list[Tensor]:
        """The maps of levels `indices` (the index space of `out_indices` and
        `feature_info`; default the selected levels), as timm's `forward_intermediates`
        with `intermediates_only=True`.

        Only levels up to the deepest selected one are available (the blocks after it
        are not part of this module); `norm` needs the module built with `norm=True`.
        """
        if not intermediates_only:
            raise ValueError(
                "T2TFeatures.forward_intermediates gives the intermediates only; the final "
                "features come from the classifier (T2TViT.forward_intermediates)"
            )
        if output_fmt not in ("NCHW", "NLC"):
            raise ValueError(f"output_fmt must be 'NCHW' or 'NLC', got {output_fmt!r}")
        levels = self.feature_info.info
        take = (
            list(self.out_indices)
            if indices is None
            else resolve_level_indices(indices, levels, name="indices")
        )
        stem_take, block_take = self._split(take)
        # A level this module was not built with: a block after its deepest level, or the
        # pooled level when the selected ones stop at the last block (no `downsample`).
        if block_take and (
            self._deepest(block_take) >= len(self.blocks)
            or (_POOLED in block_take and not hasattr(self, "downsample"))
        ):
            deepest = max(self.out_indices)
            raise ValueError(
                f"indices {take} reach level {max(take)} ({levels[max(take)]['module']}) but "
                f"this feature model stops at level {deepest} ({levels[deepest]['module']}); "
                "select deeper levels with out_indices when you build it"
            )
        if norm and not hasattr(self, "norm"):
            raise ValueError("norm=True needs the feature model built with norm=True")
        maps = self._maps(x, stem_take, block_take, norm)
        if output_fmt == "NLC":
            maps = [rearrange(m, "b c h w -> b (h w) c") for m in maps]
        return maps

    def _maps(
        self, x: Tensor, stem_take: list[int], block_take: list[int], norm: bool
    ) -> list[Tensor]:
        self.check_input(x)
        if not block_take:
            maps = self.tokens_to_token.forward_maps(x, count=max(stem_take) + 1)
            return [maps[i] for i in stem_take]
        tokens, (h, w), stem_maps = self.tokens_to_token.forward_intermediates(x)
        out = [stem_maps[i] for i in stem_take]
        x = self._add_positions(tokens, (h, w))
        deepest = self._deepest(block_take)
        for i, block in enumerate(self.blocks[: deepest + 1]):
            x = self._run_block(block, x)
            if i in block_take or (i == deepest and _POOLED in block_take):
                y = self.norm(x) if norm else x
                # Contiguous NCHW, as timm's maps (see T2TModule.forward_intermediates).
                folded = rearrange(y[:, 1:], "b (h w) c -> b c h w", h=h, w=w).contiguous()
                if i in block_take:
                    out.append(folded)
                if i == deepest and _POOLED in block_take:
                    out.append(self.downsample(folded))
        return out


def _check_output_stride(output_stride: int | None, block_stride: int) -> int:
    """The cap on the levels' strides for `output_stride` (no cap for None), checked."""
    if output_stride is None:
        return 2 * block_stride
    accepted = (block_stride, 2 * block_stride)
    if isinstance(output_stride, bool) or output_stride not in accepted:
        raise ValueError(
            f"output_stride={output_stride!r} is not available: this T2T-ViT's blocks are at "
            f"stride {block_stride} and it has no dilation to keep finer maps; pass "
            f"{block_stride} (smp: encoder_output_stride={block_stride}), "
            f"{2 * block_stride} or None"
        )
    return int(output_stride)


def _stem_upto(stem: T2TModule, count: int) -> T2TModule:
    """`stem` with its first `count` T2T layers only (sharing them), for a feature model
    whose levels all lie in the stem: the later layers and the projection would run for
    nothing, or get no gradient (DDP without `find_unused_parameters`)."""
    pruned = copy.copy(stem)  # a new module whose attributes are stem's
    keep = {f"attention{i + 1}" for i in range(count)}
    pruned.__dict__["_modules"] = {
        name: module
        for name, module in stem.named_children()
        if name in keep or not name.startswith(("attention", "project"))
    }
    return pruned


def _skip_classifier_only(
    module: nn.Module,
    state_dict: dict[str, Any],
    prefix: str,
    local_metadata: dict[str, Any],
    strict: bool,
    missing_keys: list[str],
    unexpected_keys: list[str],
    error_msgs: list[str],
) -> None:
    # Drops only the keys the source classifier had and this module left out; any
    # other unexpected key still fails a strict load.
    for key in getattr(module, "_classifier_only", ()):
        state_dict.pop(prefix + key, None)


def create_feature_model(
    model_or_name: T2TViT | str,
    out_indices: int | Sequence[int] | None = None,
    *,
    norm: bool = False,
    levels: str = "all",
    output_stride: int | None = None,
    **overrides: Any,
) -> T2TFeatures:
    """A `T2TFeatures` backbone from a model or a preset name (randomly initialised,
    `overrides` replacing the preset's `T2TViT` arguments); see `T2TFeatures`."""
    if isinstance(model_or_name, str):
        from .presets import PRESETS, canonical_name

        model = T2TViT(**{**PRESETS[canonical_name(model_or_name)], **overrides})
    elif overrides:
        raise ValueError(
            f"overrides {sorted(overrides)} apply to a preset name only; build the T2TViT "
            "with them and pass the model"
        )
    else:
        model = model_or_name
    return T2TFeatures(
        model, out_indices=out_indices, norm=norm, levels=levels, output_stride=output_stride
    )
