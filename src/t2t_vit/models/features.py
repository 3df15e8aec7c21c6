"""T2T-ViT as a multi-scale backbone: `features_only` maps and their `feature_info`.

The levels of a T2T-ViT are the outputs of the stem's T2T layers (`token_dim`
channels at the stride of their soft split: 4 and 8 for the paper's stem), then the
outputs of the encoder blocks (`embed_dim` channels at the stem's total stride, 16).
`T2TFeatures` returns the selected levels as NCHW maps on their real grids.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any, overload

import torch
from einops import rearrange
from torch import Tensor, nn

from .t2t_vit import T2TViT, _TokenEmbedding

__all__ = ["FeatureInfo", "T2TFeatures", "create_feature_model", "feature_levels"]

# FX symbolic tracing records it as a call: einops cannot take a Proxy.
torch.fx.wrap("rearrange")


class FeatureInfo:
    """Channels, reduction (stride) and module name of each returned map, as timm's.

    `channels()`, `reduction()` and `module_name()` give one entry per map, in the
    order of the maps; with an index they give that map's. Each entry is also a dict
    `{"num_chs", "reduction", "module"}` (`info[i]`, `get_dicts()`).
    """

    def __init__(self, info: Sequence[Mapping[str, Any]]) -> None:
        """The description of a list of maps.

        Args:
            info: One mapping per map, with keys `num_chs`, `reduction` and `module`.
        """
        self.info: list[dict[str, Any]] = [dict(entry) for entry in info]

    @overload
    def get(self, key: str, idx: None = None) -> list[Any]: ...
    @overload
    def get(self, key: str, idx: int) -> Any: ...
    def get(self, key: str, idx: int | None = None) -> Any:
        """The value of `key` for every map, or for map `idx`."""
        if idx is None:
            return [entry[key] for entry in self.info]
        return self.info[idx][key]

    def get_dicts(
        self, keys: Sequence[str] | None = None, idx: int | None = None
    ) -> list[dict[str, Any]] | dict[str, Any]:
        """The entries (restricted to `keys`) of every map, or of map `idx`."""

        def pick(entry: dict[str, Any]) -> dict[str, Any]:
            return dict(entry) if keys is None else {k: entry[k] for k in keys}

        if idx is None:
            return [pick(entry) for entry in self.info]
        return pick(self.info[idx])

    @overload
    def channels(self, idx: None = None) -> list[int]: ...
    @overload
    def channels(self, idx: int) -> int: ...
    def channels(self, idx: int | None = None) -> list[int] | int:
        """Channels of every map (or of map `idx`)."""
        return self.get("num_chs", idx)

    @overload
    def reduction(self, idx: None = None) -> list[int]: ...
    @overload
    def reduction(self, idx: int) -> int: ...
    def reduction(self, idx: int | None = None) -> list[int] | int:
        """Stride of every map (or of map `idx`) relative to the input."""
        return self.get("reduction", idx)

    @overload
    def module_name(self, idx: None = None) -> list[str]: ...
    @overload
    def module_name(self, idx: int) -> str: ...
    def module_name(self, idx: int | None = None) -> list[str] | str:
        """Name of the module whose output every map is (or map `idx` is)."""
        return self.get("module", idx)

    def __getitem__(self, idx: int) -> dict[str, Any]:
        return self.info[idx]

    def __len__(self) -> int:
        return len(self.info)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return iter(self.info)

    def __repr__(self) -> str:
        return f"FeatureInfo({self.info!r})"


def feature_levels(model: T2TViT) -> list[dict[str, Any]]:
    """Every level a `T2TViT` can return, in order: `{"num_chs", "reduction", "module"}`.

    First the stem's T2T layers (`tokens_to_token.attention1`, ...), then the blocks
    (`blocks.0`, ...); `out_indices` index this list.
    """
    stem = model.tokens_to_token
    levels = []
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
    for i in range(len(model.blocks)):
        levels.append({"num_chs": model.embed_dim, "reduction": total, "module": f"blocks.{i}"})
    return levels


def _describe(levels: Sequence[Mapping[str, Any]]) -> str:
    """`0 tokens_to_token.attention1 (stride 4, 64 channels), ..., 2-15 blocks.0-13 (...)`."""
    parts = [
        f"{i} {lv['module']} (stride {lv['reduction']}, {lv['num_chs']} channels)"
        for i, lv in enumerate(levels)
        if not str(lv["module"]).startswith("blocks.")
    ]
    first = len(parts)
    if first < len(levels):
        last = len(levels) - 1
        lv = levels[last]
        names = "blocks.0" if first == last else f"blocks.0-{last - first}"
        at = str(first) if first == last else f"{first}-{last}"
        parts.append(f"{at} {names} (stride {lv['reduction']}, {lv['num_chs']} channels)")
    return ", ".join(parts)


def _resolve_out_indices(
    out_indices: int | Sequence[int] | None, levels: Sequence[Mapping[str, Any]]
) -> list[int]:
    n = len(levels)
    stem = sum(1 for lv in levels if not str(lv["module"]).startswith("blocks."))
    if out_indices is None:
        return [*range(stem), n - 1]
    if isinstance(out_indices, bool) or not isinstance(out_indices, (int, Sequence)):
        raise ValueError(
            f"out_indices must be level indices such as (0, 1, -1), the number of last "
            f"levels as an int, or None; got {out_indices!r}"
        )
    if isinstance(out_indices, int):
        if not 0 < out_indices <= n:
            raise ValueError(
                f"out_indices={out_indices} asks for the last {out_indices} levels but there "
                f"are {n}: pass 1..{n}. Levels: {_describe(levels)}"
            )
        return list(range(n - out_indices, n))
    if len(out_indices) == 0:
        raise ValueError(
            f"out_indices is empty; pick at least one level. Levels: {_describe(levels)}"
        )
    taken: dict[int, int] = {}
    for entry in out_indices:
        if isinstance(entry, bool) or not isinstance(entry, int):
            raise ValueError(f"out_indices entries must be ints, got {entry!r} in {out_indices!r}")
        if not -n <= entry < n:
            raise ValueError(
                f"out_indices entry {entry} is out of range: valid are 0..{n - 1} or "
                f"-{n}..-1. Levels: {_describe(levels)}"
            )
        index = entry % n
        if index in taken:
            raise ValueError(
                f"out_indices {list(out_indices)!r} names level {index} "
                f"({levels[index]['module']}) twice ({taken[index]} and {entry}); "
                "name each level once"
            )
        taken[index] = entry
    return sorted(taken)


class T2TFeatures(_TokenEmbedding, nn.Module):
    """A `T2TViT` as a backbone: `forward(x)` gives a list of NCHW maps, one per level.

    Built from a model, whose modules it shares (the model itself is left as it is).
    Levels are listed by `feature_levels`: each T2T layer of the stem, then each block.
    `out_indices` picks levels (negative counts from the end; an int `n` is the last
    `n`); the default is the stem levels plus the last block (strides 4, 8, 16 for the
    paper's stem). Maps come shallow to deep, described by `feature_info`. Block maps
    are the blocks' outputs as `forward_intermediates` gives them, with the final norm
    only if `norm=True`.

    Parameter names are the model's, so the classifier's state dict loads strictly:
    its head, its final norm (unless `norm=True`) and the blocks after the deepest
    selected one are not part of this module and are skipped on load.
    """

    def __init__(
        self,
        model: T2TViT,
        out_indices: int | Sequence[int] | None = None,
        norm: bool = False,
    ) -> None:
        """A backbone sharing `model`'s modules.

        Args:
            model: The classifier whose stem and blocks give the maps (left unchanged).
            out_indices: Levels to return (see `feature_levels`): indices, negative from
                the end, or an int `n` for the last `n`; default the stem levels and the
                last block.
            norm: Apply the model's final LayerNorm to the block maps.
        """
        super().__init__()
        if not isinstance(model, T2TViT):
            raise TypeError(f"T2TFeatures needs a T2TViT, got {type(model).__name__}")
        levels = feature_levels(model)
        self.out_indices = tuple(_resolve_out_indices(out_indices, levels))
        self.feature_info = FeatureInfo([levels[i] for i in self.out_indices])
        num_stem = len(levels) - len(model.blocks)
        self._stem_take = [i for i in self.out_indices if i < num_stem]
        self._block_take = [i - num_stem for i in self.out_indices if i >= num_stem]
        self.use_norm = norm and bool(self._block_take)

        self.config = dict(model.config)
        self.pretrained_cfg = model.pretrained_cfg
        self.embed_dim = model.embed_dim
        self.img_size = model.img_size
        self.grid = model.grid
        self.dynamic_img_size = model.dynamic_img_size
        self.grad_checkpointing = model.grad_checkpointing
        self._pos_cache = {}

        self.tokens_to_token = model.tokens_to_token
        if self._block_take:
            self.cls_token = model.cls_token
            self.register_buffer("pos_embed", model.pos_embed)
            self.pos_drop = model.pos_drop
            # Blocks after the deepest selected one never run: leaving them out keeps
            # them from showing up as unused parameters (DDP) or in the optimizer.
            self.blocks = nn.ModuleList(model.blocks[: max(self._block_take) + 1])
        else:
            self.blocks = nn.ModuleList()
        if self.use_norm:
            self.norm = model.norm

        own = set(self.state_dict())
        self._classifier_only = frozenset(k for k in model.state_dict() if k not in own)
        self.register_load_state_dict_pre_hook(_skip_classifier_only)  # type: ignore[no-untyped-call]
        # The model's mode for every submodule: a new module starts in training mode,
        # the shared ones keep the model's (eval after from_pretrained).
        self.train(model.training)

    def no_weight_decay(self) -> set[str]:
        """Parameter names that take no weight decay."""
        return {"cls_token"} if self._block_take else set()

    def set_grad_checkpointing(self, enable: bool = True) -> None:
        """Recompute the blocks and T2T layers in the backward pass to save memory."""
        self.grad_checkpointing = enable
        self.tokens_to_token.grad_checkpointing = enable

    def forward(self, x: Tensor) -> list[Tensor]:
        """Image `(B, C, H, W)` to the selected maps, each `(B, C_i, h_i, w_i)`."""
        if not self._block_take:
            maps = self.tokens_to_token.forward_maps(x, count=max(self._stem_take) + 1)
            return [maps[i] for i in self._stem_take]
        tokens, (h, w), stem_maps = self.tokens_to_token.forward_intermediates(x)
        out = [stem_maps[i] for i in self._stem_take]
        x = self._add_positions(tokens, (h, w))
        for i, block in enumerate(self.blocks):
            x = self._run_block(block, x)
            if i in self._block_take:
                y = self.norm(x) if self.use_norm else x
                # Contiguous NCHW, as timm's maps (see T2TModule.forward_maps).
                out.append(rearrange(y[:, 1:], "b (h w) c -> b c h w", h=h, w=w).contiguous())
        return out


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
    return T2TFeatures(model, out_indices=out_indices, norm=norm)
