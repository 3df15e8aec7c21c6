"""The ViT encoder block and its parts: MLP and stochastic depth."""

from __future__ import annotations

from torch import Tensor, nn

from .attention import Attention
from .linear import linear
from .scripting import NotScriptable

__all__ = ["Block", "DropPath", "Mlp", "drop_path"]


def drop_path(x: Tensor, drop_prob: float = 0.0, training: bool = False) -> Tensor:
    """Zero whole samples of a residual branch with probability `drop_prob` (stochastic depth)."""
    if drop_prob == 0.0 or not training:
        return x
    keep = 1.0 - drop_prob
    mask = x.new_empty((x.shape[0],) + (1,) * (x.ndim - 1)).bernoulli_(keep)
    return x * mask / keep


class DropPath(nn.Module):
    """Stochastic depth as a module (Huang et al., 2016)."""

    def __init__(self, drop_prob: float = 0.0) -> None:
        """Drop a whole sample's branch with probability `drop_prob`.

        Args:
            drop_prob: Probability of zeroing a sample's branch, in training only.
        """
        super().__init__()
        self.drop_prob = drop_prob

    def forward(self, x: Tensor) -> Tensor:
        return drop_path(x, self.drop_prob, self.training)

    def extra_repr(self) -> str:
        return f"drop_prob={self.drop_prob}"


class Mlp(NotScriptable, nn.Module):
    """Two linear layers with GELU between, `(B, N, in) -> (B, N, out)`."""

    def __init__(
        self,
        in_features: int,
        hidden_features: int | None = None,
        out_features: int | None = None,
        drop: float = 0.0,
    ) -> None:
        """Build the MLP; the weights are randomly initialised.

        Args:
            in_features: Width of the input tokens.
            hidden_features: Hidden width; `None` keeps `in_features`.
            out_features: Width of the output tokens; `None` keeps `in_features`.
            drop: Dropout after the activation and after the second layer.
        """
        super().__init__()
        hidden_features = hidden_features or in_features
        out_features = out_features or in_features
        self.fc1 = nn.Linear(in_features, hidden_features)
        self.act = nn.GELU()
        self.fc2 = nn.Linear(hidden_features, out_features)
        self.drop = nn.Dropout(drop)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.drop(linear(self.fc2, self.drop(self.act(linear(self.fc1, x)))))
        return out


class Block(NotScriptable, nn.Module):
    """Pre-norm transformer encoder block, `(B, N, dim) -> (B, N, dim)`."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        mlp_ratio: float = 4.0,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        drop: float = 0.0,
        attn_drop: float = 0.0,
        drop_path: float = 0.0,
    ) -> None:
        """Build the block; the weights are randomly initialised.

        Args:
            dim: Token width.
            num_heads: Attention heads; must divide `dim`.
            mlp_ratio: Hidden width of the MLP, as a multiple of `dim`.
            qkv_bias: Give the query, key and value projections a bias.
            qk_scale: Attention scale; `None` is `(dim // num_heads) ** -0.5`.
            drop: Dropout after the attention projection and in the MLP.
            attn_drop: Dropout on the attention probabilities.
            drop_path: Stochastic depth: the probability of skipping each residual
                branch for a sample in training.
        """
        super().__init__()
        self.norm1 = nn.LayerNorm(dim)
        self.attn = Attention(
            dim,
            num_heads=num_heads,
            qkv_bias=qkv_bias,
            qk_scale=qk_scale,
            attn_drop=attn_drop,
            proj_drop=drop,
        )
        self.drop_path = DropPath(drop_path) if drop_path > 0.0 else nn.Identity()
        self.norm2 = nn.LayerNorm(dim)
        self.mlp = Mlp(dim, int(dim * mlp_ratio), drop=drop)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.drop_path(self.attn(self.norm1(x)))
        out: Tensor = x + self.drop_path(self.mlp(self.norm2(x)))
        return out
