"""Counting parameters and multiply-accumulates."""

from __future__ import annotations

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

__all__ = ["count_macs", "count_params"]


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Element count of the state dict (frozen buffers such as the position table
    and Performer features included), or of the trainable parameters only."""
    if trainable_only:
        return sum(p.numel() for p in model.parameters() if p.requires_grad)
    return sum(t.numel() for t in model.state_dict().values())


def count_macs(model: nn.Module, img_size: int | tuple[int, int] = 224, in_chans: int = 3) -> int:
    """Multiply-accumulates of one forward pass on a single image.

    Counted by `torch.utils.flop_counter` (matrix products and convolutions; one
    MAC is two FLOPs), with the explicit attention path so that the attention
    products are counted on every backend.
    """
    from .layers.attention import Attention

    h, w = (img_size, img_size) if isinstance(img_size, int) else img_size
    param = next(model.parameters())
    x = torch.zeros(1, in_chans, h, w, dtype=param.dtype, device=param.device)
    attentions = [m for m in model.modules() if isinstance(m, Attention)]
    saved = [m.fused_attn for m in attentions]
    was_training = model.training
    try:
        for m in attentions:
            m.fused_attn = False
        model.eval()
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model(x)
    finally:
        for m, fused in zip(attentions, saved, strict=True):
            m.fused_attn = fused
        model.train(was_training)
    return int(counter.get_total_flops()) // 2
