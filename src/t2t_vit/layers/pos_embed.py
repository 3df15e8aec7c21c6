"""Position tables: the fixed sinusoid table and its resampling to other token grids."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor

__all__ = ["get_sinusoid_encoding", "resample_pos_embed"]


def get_sinusoid_encoding(n_position: int, d_hid: int) -> Tensor:
    """The sinusoid table of Vaswani et al. (2017), `(1, n_position, d_hid)`, float32.

    Computed in float64 and rounded once, as the official NumPy code does.
    """
    pos = torch.arange(n_position, dtype=torch.float64).unsqueeze(1)
    exponent = 2 * (torch.arange(d_hid, dtype=torch.float64) // 2) / d_hid
    table = pos / torch.pow(torch.tensor(10000.0, dtype=torch.float64), exponent)
    table[:, 0::2] = torch.sin(table[:, 0::2])
    table[:, 1::2] = torch.cos(table[:, 1::2])
    return table.to(torch.float32).unsqueeze(0)


def resample_pos_embed(
    pos_embed: Tensor,
    new_grid: tuple[int, int],
    old_grid: tuple[int, int] | None = None,
    num_prefix_tokens: int = 1,
) -> Tensor:
    """Resize a `(1, prefix + h*w, C)` position table to another token grid.

    The grid part is interpolated bicubically (`align_corners=False`); the prefix
    (class token) rows are kept as they are. `old_grid` defaults to a square grid.
    """
    prefix, grid = pos_embed[:, :num_prefix_tokens], pos_embed[:, num_prefix_tokens:]
    if old_grid is None:
        side = round(grid.shape[1] ** 0.5)
        if side * side != grid.shape[1]:
            raise ValueError(
                f"cannot infer the grid of a position table with {grid.shape[1]} tokens; "
                "pass old_grid=(h, w)"
            )
        old_grid = (side, side)
    # Only plain ints are compared: a symbolic size (torch.compile, torch.export) would be
    # fixed by the comparison, and interpolating to the same grid is exact anyway.
    if all(isinstance(s, int) for s in (*old_grid, *new_grid)) and tuple(old_grid) == tuple(
        new_grid
    ):
        return pos_embed
    if old_grid[0] * old_grid[1] != grid.shape[1]:
        raise ValueError(
            f"old_grid {tuple(old_grid)} has {old_grid[0] * old_grid[1]} cells but the table "
            f"has {grid.shape[1]} grid tokens"
        )
    dtype = grid.dtype
    grid = rearrange(grid, "1 (h w) c -> 1 c h w", h=old_grid[0], w=old_grid[1]).float()
    grid = F.interpolate(grid, size=new_grid, mode="bicubic", align_corners=False)
    grid = rearrange(grid, "1 c h w -> 1 (h w) c").to(dtype)
    return torch.cat([prefix, grid], dim=1)
