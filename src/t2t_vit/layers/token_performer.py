"""The Tokens-to-Token Performer layer (re-structurization with linear attention)."""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from .linear import linear, sequential
from .scripting import NotScriptable

__all__ = ["TokenPerformer"]


def _autocast_off(device_type: str) -> contextlib.AbstractContextManager[Any]:
    """Autocast off for the device; nothing to turn off where autocast has no backend (the
    `meta` device of shape-only construction and tests, where `torch.autocast` raises)."""
    available = getattr(torch.amp, "is_autocast_available", None)
    if device_type == "meta" or (available is not None and not available(device_type)):
        return contextlib.nullcontext()
    return torch.autocast(device_type=device_type, enabled=False)


def _fp32_kernel_attention(layer: TokenPerformer, k: Tensor, q: Tensor, v: Tensor) -> Tensor:
    """The Performer's attention `(B, T, emb)` in fp32, also under autocast."""
    with _autocast_off(k.device.type):
        kp = layer.prm_exp(k.float())
        qp = layer.prm_exp(q.float())
        # Associativity keeps the cost linear in T: (qp kp^T) v == qp (kp^T v).
        denom = qp @ kp.sum(dim=1).unsqueeze(-1)  # (B, T, 1)
        kptv = v.float().transpose(1, 2) @ kp  # (B, emb, m)
        y: Tensor = (qp @ kptv.transpose(1, 2)) / (denom + layer.epsilon)  # (B, T, emb)
    return y


# FX symbolic tracing records the call whole: the autocast context needs a real device
# type, and a recorded graph would drop the context (and the fp32) at run time.
torch.fx.wrap("_fp32_kernel_attention")


class TokenPerformer(NotScriptable, nn.Module):
    """One T2T layer with Performer attention, `(B, N, dim) -> (B, N, in_dim)`.

    Softmax attention is approximated with positive orthogonal random features
    (Choromanski et al., 2021), so the cost grows linearly with the token count
    and no `N x N` matrix is formed. The random features `w` are a persistent
    buffer: checkpoints carry them, optimisers never see them. The kernel runs in
    fp32, also under autocast and in a half-precision model, where `exp` would overflow
    in half precision; `w` stays fp32 through `model.to(torch.bfloat16)`, so the kernel
    reads it without a per-forward cast.
    """

    w: Tensor

    def __init__(
        self,
        dim: int,
        in_dim: int,
        head_cnt: int = 1,
        kernel_ratio: float = 0.5,
        dp1: float = 0.1,
        dp2: float = 0.1,
    ) -> None:
        """Build the layer; the weights and random features are randomly initialised.

        Args:
            dim: Width of the input tokens (channels x kernel area of the soft split).
            in_dim: Width of the output tokens.
            head_cnt: Attention heads; only 1, as in the official code.
            kernel_ratio: Number of random features, as a fraction of `in_dim`.
            dp1: Dropout after the attention projection.
            dp2: Dropout at the end of the MLP.
        """
        super().__init__()
        if head_cnt != 1:
            raise ValueError(f"TokenPerformer supports head_cnt=1 only, got {head_cnt}")
        self.emb = in_dim * head_cnt
        self.kqv = nn.Linear(dim, 3 * self.emb)
        self.dp = nn.Dropout(dp1)
        self.proj = nn.Linear(self.emb, self.emb)
        self.head_cnt = head_cnt
        self.norm1 = nn.LayerNorm(dim)
        self.norm2 = nn.LayerNorm(self.emb)
        self.epsilon = 1e-8
        self.mlp = nn.Sequential(
            nn.Linear(self.emb, self.emb),
            nn.GELU(),
            nn.Linear(self.emb, self.emb),
            nn.Dropout(dp2),
        )
        self.m = int(self.emb * kernel_ratio)
        w = nn.init.orthogonal_(torch.empty(self.m, self.emb)) * math.sqrt(self.m)
        self.register_buffer("w", w, persistent=True)

    def _apply(self, fn: Callable[[Tensor], Tensor], recurse: bool = True) -> Any:
        w = self.w
        out = super()._apply(fn, recurse)  # type: ignore[no-untyped-call]
        moved = self.w
        if moved.dtype in (torch.bfloat16, torch.float16) and w.dtype == torch.float32:
            # Keep the fp32 values themselves, not the half-precision rounding of them.
            self.w = w.to(device=moved.device)
        return out

    def prm_exp(self, x: Tensor) -> Tensor:
        """Positive random features `exp(w^T x - |x|^2 / 2) / sqrt(m)`, `(B, T, e) -> (B, T, m)`."""
        # The norm reduces in one pass, without an `x * x` temporary; the `/ sqrt(m)`
        # folds into the exponent as `- log(m) / 2`.
        xd = torch.linalg.vector_norm(x, dim=-1, keepdim=True).square() * 0.5
        wtx = x @ self.w.float().t()
        return wtx.sub_(xd.add_(0.5 * math.log(self.m))).exp_()

    def single_attn(self, x: Tensor) -> Tensor:
        """Linear attention with the values as skip connection, `(B, T, dim) -> (B, T, emb)`."""
        k, q, v = torch.split(linear(self.kqv, x), self.emb, dim=-1)
        y = _fp32_kernel_attention(self, k, q, v)
        out: Tensor = v + self.dp(linear(self.proj, y.to(v.dtype)))
        return out

    def forward(self, x: Tensor) -> Tensor:
        x = self.single_attn(self.norm1(x))
        out: Tensor = x + sequential(self.mlp, self.norm2(x))
        return out
