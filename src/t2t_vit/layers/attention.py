"""Multi-head self-attention with a fused path and an explicit, recordable path."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from . import precision
from .linear import linear
from .scripting import NotScriptable

__all__ = [
    "FUSED_MIN_TOKENS",
    "Attention",
    "attend",
    "prefers_fused_attention",
    "record_attention",
    "use_fused_attention",
]

#: From this many tokens on, attention always runs fused: the explicit path would
#: store a `N x N` matrix per head (the first T2T layer: 3,136 tokens, 37.5 MiB per image
#: in fp32), and the fused path stays within a few tiles of it.
FUSED_MIN_TOKENS = 2048


def prefers_fused_attention(n_tokens: int, dtype: torch.dtype, device: torch.device) -> bool:
    """The attention path measured faster for `n_tokens` tokens of `dtype` on `device`.

    Fused everywhere except one case: half precision (bf16, fp16) on a CPU with native
    bf16 dot products but no AMX tiles (AVX512_BF16, e.g. AMD Zen 4/5), below
    `FUSED_MIN_TOKENS`. There the explicit path's `bmm`s use the bf16 instructions while
    PyTorch's CPU flash kernel computes in fp32 (t2t-vit-t-14 b8: explicit 1.2x fused).
    With AMX the flash kernel uses the tiles (fused 1.5-1.8x explicit); without native
    bf16 the emulated `bmm`s are far slower (fused 8-21x explicit on an AVX2 EPYC);
    fp32 and CUDA measured fused-faster everywhere. `docs/performance.md` has the figures.
    """
    if device.type != "cpu" or dtype not in (torch.bfloat16, torch.float16):
        return True
    if n_tokens >= FUSED_MIN_TOKENS:
        return True
    return not (precision.cpu_has_native_bf16() and not precision.cpu_has_amx())


# FX symbolic tracing records it as a call: einops cannot take a Proxy.
torch.fx.wrap("rearrange")


def attend(
    q: Tensor,
    k: Tensor,
    v: Tensor,
    *,
    scale: float,
    dropout_p: float = 0.0,
    fused: bool = True,
    store: list[Tensor] | None = None,
) -> Tensor:
    """Scaled dot-product attention over `(B, heads, N, d)` tensors.

    The fused path calls `F.scaled_dot_product_attention` with the scale passed
    explicitly. The explicit path forms `softmax(q k^T * scale)` and appends it to
    `store` when one is given, so the weights can be inspected.
    """
    if fused and store is None:
        return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout_p, scale=scale)
    attn = ((q * scale) @ k.transpose(-2, -1)).softmax(dim=-1)
    if store is not None:
        store.append(attn.detach())
    if dropout_p > 0.0:
        attn = F.dropout(attn, p=dropout_p)
    return attn @ v


class Attention(NotScriptable, nn.Module):
    """Multi-head self-attention, `(B, N, dim) -> (B, N, out_dim)`.

    With `out_dim == dim` this is the encoder block's attention. With another
    `out_dim` it is the T2T layer's attention, whose heads project to `out_dim`
    and whose queries are scaled by `(dim // num_heads) ** -0.5`, as in the
    official code. `fused_attn` chooses the path: `True` fused, `False` explicit,
    `None` (the default) the one `prefers_fused_attention` measured faster for the
    layer's token count, dtype and device. All use the same weights.
    """

    def __init__(
        self,
        dim: int,
        num_heads: int = 8,
        qkv_bias: bool = False,
        qk_scale: float | None = None,
        attn_drop: float = 0.0,
        proj_drop: float = 0.0,
        out_dim: int | None = None,
    ) -> None:
        """Build the layer; the weights are randomly initialised.

        Args:
            dim: Width of the input tokens.
            num_heads: Attention heads; must divide `out_dim`.
            qkv_bias: Give the query, key and value projections a bias.
            qk_scale: Attention scale; `None` is `(dim // num_heads) ** -0.5`.
            attn_drop: Dropout on the attention probabilities (in training only).
            proj_drop: Dropout after the output projection.
            out_dim: Width of the output tokens; `None` keeps `dim`.
        """
        super().__init__()
        out_dim = dim if out_dim is None else out_dim
        if out_dim % num_heads != 0:
            raise ValueError(f"attention width {out_dim} is not divisible by num_heads={num_heads}")
        self.num_heads = num_heads
        self.out_dim = out_dim
        # The official code scales by the *input* width per head, also in the T2T
        # layers where the heads are narrower than the input.
        self.scale = qk_scale or (dim // num_heads) ** -0.5
        self.qkv = nn.Linear(dim, out_dim * 3, bias=qkv_bias)
        self.attn_drop = attn_drop
        self.proj = nn.Linear(out_dim, out_dim)
        self.proj_drop = nn.Dropout(proj_drop)
        self.fused_attn: bool | None = None
        self.attn_store: list[Tensor] | None = None

    def qkv_heads(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Project `(B, N, dim)` to q, k, v of shape `(B, heads, N, out_dim // heads)`."""
        qkv = rearrange(
            linear(self.qkv, x), "b n (three h d) -> three b h n d", three=3, h=self.num_heads
        )
        return qkv[0], qkv[1], qkv[2]

    def attend_heads(self, q: Tensor, k: Tensor, v: Tensor) -> Tensor:
        """Attention over heads, merged back to `(B, N, out_dim)` and projected."""
        fused = self.fused_attn
        if fused is None:
            # FX tracing has no dtype or device to choose by: the fused path, fp32's choice.
            fused = isinstance(q, torch.fx.Proxy) or prefers_fused_attention(
                q.shape[-2], q.dtype, q.device
            )
        x = attend(
            q,
            k,
            v,
            scale=self.scale,
            dropout_p=self.attn_drop if self.training else 0.0,
            fused=fused,
            store=self.attn_store,
        )
        out: Tensor = self.proj_drop(linear(self.proj, rearrange(x, "b h n d -> b n (h d)")))
        return out

    def forward(self, x: Tensor) -> Tensor:
        q, k, v = self.qkv_heads(x)
        return self.attend_heads(q, k, v)


@contextmanager
def record_attention(model: nn.Module) -> Iterator[dict[str, list[Tensor]]]:
    """Record the attention probabilities of every `Attention` in `model`.

    Inside the block, each attention module runs its explicit path and appends
    its `(B, heads, N, N)` probabilities to the list under its module name in the
    yielded dict. The previous path is restored on exit.
    """
    records: dict[str, list[Tensor]] = {}
    modules = [(n, m) for n, m in model.named_modules() if isinstance(m, Attention)]
    try:
        for name, module in modules:
            records[name] = []
            module.attn_store = records[name]
        yield records
    finally:
        for _, module in modules:
            module.attn_store = None


def use_fused_attention(model: nn.Module, enabled: bool | None = True) -> None:
    """Switch every `Attention` in `model` to the fused (`True`) or explicit (`False`) path,
    or back to the default per-layer choice (`None`, see `prefers_fused_attention`)."""
    for module in model.modules():
        if isinstance(module, Attention):
            module.fused_attn = enabled
