"""The Tokens-to-Token transformer layer (re-structurization with full attention)."""

from __future__ import annotations

import torch
from einops import rearrange
from torch import Tensor, nn

from .attention import Attention
from .block import DropPath, Mlp
from .scripting import NotScriptable

__all__ = ["TokenAttention", "TokenTransformer"]

# FX symbolic tracing records it as a call: einops cannot take a Proxy.
torch.fx.wrap("rearrange")


class TokenAttention(Attention):
    """T2T attention, `(B, N, dim) -> (B, N, out_dim)`, with `v` as its skip connection.

    The input is wider than the output, so the residual cannot be the input; the
    official code adds the (head-merged) values instead.
    """

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv_heads(x)
        return rearrange(v, "b h n d -> b n (h d)") + self.attend_heads(q, k, v)


class TokenTransformer(NotScriptable, nn.Module):
    """One T2T layer with softmax attention, `(B, N, dim) -> (B, N, in_dim)`.

    `dim` is the width of the soft-split tokens (channels x kernel area) and
    `in_dim` the token width the layer produces, as the official arguments name
    them.
    """

    def __init__(
        self,
        dim: int,
        in_dim: int,
        num_heads: int = 1,
        mlp_ratio: float = 1.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        """Build the layer; the weights are randomly initialised.

        Args:
            dim: Width of the input tokens (channels x kernel area of the soft split).
            in_dim: Width of the output tokens.
            num_heads: Attention heads; must divide `in_dim`.
            mlp_ratio: Hidden width of the MLP, as a multiple of `in_dim`.
            qkv_bias: Give the query, key and value projections a bias.
            qk_scale: Attention scale; `None` is `(dim // num_heads) ** -0.5`, the
                *input* width per head, as the official code scales.
            drop: Dropout after the attention projection and in the MLP.
            attn_drop: Dropout on the attention probabilities.
            drop_path: Stochastic depth of the MLP branch.
        """
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = TokenAttention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop=attn_drop,
            proj_drop=drop,
            out_dim=in_dim,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(in_dim)
        self.mlp = Mlp(in_dim, int(in_dim * mlp_ratio), in_dim, drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = self.attn(self.norm1(x))
        out: Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out
