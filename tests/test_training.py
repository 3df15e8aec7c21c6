"""Training readiness: lr-decay groups, schedule, stochastic depth, gradient
checkpointing and mixed precision."""

from __future__ import annotations

import math
import re
from typing import Any

import pytest
import torch
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint

import t2t_vit
from t2t_vit import T2TViT, TokenPerformer, param_groups_layer_decay

TINY: dict[str, Any] = dict(
    img_size=32, embed_dim=32, depth=2, num_heads=2, token_dim=8, num_classes=10
)

#: Mixed precision against fp32 on the tiny model's logits (bf16 keeps 8 mantissa bits).
AUTOCAST_ATOL = {torch.bfloat16: 0.05, torch.float16: 0.01}


def test_layer_decay_groups_have_the_exact_scales_and_decay() -> None:
    model = T2TViT(tokens_type="transformer", **TINY)
    groups = param_groups_layer_decay(model, weight_decay=0.05, layer_decay=0.75, lr=2e-3)
    summary = [(g["layer_id"], g["weight_decay"], g["lr_scale"], g["lr"]) for g in groups]
    # depth 2: ids 0 (stem, cls), 1, 2 (blocks), 3 (norm, head); scale 0.75 ** (3 - id).
    assert summary == [
        (0, 0.05, 0.421875, 2e-3 * 0.421875),
        (0, 0.0, 0.421875, 2e-3 * 0.421875),
        (1, 0.05, 0.5625, 2e-3 * 0.5625),
        (1, 0.0, 0.5625, 2e-3 * 0.5625),
        (2, 0.05, 0.75, 2e-3 * 0.75),
        (2, 0.0, 0.75, 2e-3 * 0.75),
        (3, 0.05, 1.0, 2e-3),
        (3, 0.0, 1.0, 2e-3),
    ]
    names = {(g["layer_id"], g["weight_decay"]): g["param_names"] for g in groups}
    assert names[(3, 0.05)] == ["head.weight"]
    assert names[(3, 0.0)] == ["norm.weight", "norm.bias", "head.bias"]
    assert names[(1, 0.05)] == [
        "blocks.0.attn.qkv.weight",
        "blocks.0.attn.proj.weight",
        "blocks.0.mlp.fc1.weight",
        "blocks.0.mlp.fc2.weight",
    ]
    # cls_token is 3-D: it is undecayed because the model's no_weight_decay() names it.
    assert "cls_token" in names[(0, 0.0)]
    assert "tokens_to_token.project.weight" in names[(0, 0.05)]
    assert "tokens_to_token.attention1.norm1.weight" in names[(0, 0.0)]
    # Every trainable parameter is in exactly one group, tensors matching the names.
    flat = [n for g in groups for n in g["param_names"]]
    params = dict(model.named_parameters())
    assert sorted(flat) == sorted(params)
    for g in groups:
        assert all(p is params[n] for p, n in zip(g["params"], g["param_names"], strict=True))


def test_layer_decay_groups_drive_adamw_and_lambda_lr() -> None:
    model = T2TViT(tokens_type="transformer", **TINY)
    model.cls_token.requires_grad_(False)
    groups = param_groups_layer_decay(
        model, layer_decay=0.5, no_weight_decay=["tokens_to_token.project.weight"], lr=1.0
    )
    names = [n for g in groups for n in g["param_names"]]
    assert "cls_token" not in names
    project = next(g for g in groups if "tokens_to_token.project.weight" in g["param_names"])
    assert project["weight_decay"] == 0.0
    assert project["lr_scale"] == 0.125
    optimizer = torch.optim.AdamW(groups)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: t2t_vit.cosine_with_warmup(step, total_steps=10, warmup_steps=2)
    )
    assert [g["lr"] for g in optimizer.param_groups][::2] == [0.0625, 0.125, 0.25, 0.5]
    for _ in range(6):
        optimizer.step()
        scheduler.step()
    factor = 0.5 * (1 + math.cos(math.pi * 4 / 8))
    assert [g["lr"] for g in optimizer.param_groups][::2] == pytest.approx(
        [0.125 * factor, 0.25 * factor, 0.5 * factor, 1.0 * factor]
    )


def test_cosine_with_warmup_values() -> None:
    values = [t2t_vit.cosine_with_warmup(s, total_steps=6, warmup_steps=2) for s in range(7)]
    assert values == pytest.approx([0.5, 1.0, 1.0, 0.8535534, 0.5, 0.1464466, 0.0])
    with pytest.raises(ValueError, match=r"got total_steps=4, warmup_steps=5"):
        t2t_vit.cosine_with_warmup(0, total_steps=4, warmup_steps=5)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(layer_decay=0.0), "layer_decay must be in (0, 1], got 0.0"),
        (dict(weight_decay=-1.0), "weight_decay must be >= 0, got -1.0"),
        (dict(no_weight_decay=["pos"]), "no_weight_decay names ['pos'] are not parameters"),
    ],
)
def test_layer_decay_rejects_bad_arguments(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        param_groups_layer_decay(T2TViT(**TINY), **kwargs)
    with pytest.raises(ValueError, match=r"needs a model with a `blocks` nn.ModuleList .* Linear"):
        param_groups_layer_decay(torch.nn.Linear(2, 2))


def test_layer_id_by_name() -> None:
    ids = [
        t2t_vit.layer_id(n, depth=12)
        for n in (
            "tokens_to_token.project.bias",
            "cls_token",
            "blocks.0.norm1.weight",
            "blocks.11.mlp.fc2.bias",
            "norm.weight",
            "head.weight",
        )
    ]
    assert ids == [0, 0, 1, 12, 13, 13]


def test_drop_path_rate_grows_linearly_and_drops_whole_samples() -> None:
    model = T2TViT(drop_path_rate=0.2, **{**TINY, "depth": 3})
    rates = [getattr(b.drop_path, "drop_prob", 0.0) for b in model.blocks]
    assert rates == pytest.approx([0.0, 0.1, 0.2])
    x = torch.ones(1000, 4)
    out = t2t_vit.layers.block.drop_path(x, 0.25, training=True)
    kept = out[:, 0] != 0
    assert torch.equal(out[kept], torch.full((int(kept.sum()), 4), 1 / 0.75))
    assert 0.7 < kept.float().mean().item() < 0.8
    assert torch.equal(t2t_vit.layers.block.drop_path(x, 0.25, training=False), x)


def _grads(model: T2TViT, x: torch.Tensor, y: torch.Tensor, seed: int) -> dict[str, torch.Tensor]:
    model.zero_grad()
    torch.manual_seed(seed)
    F.cross_entropy(model(x), y).backward()
    return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_gradient_checkpointing_gives_the_same_gradients(
    tokens_type: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The Performer layers keep their official dropout (0.1); non-reentrant
    # checkpointing replays the RNG, so the recomputed masks match.
    model = T2TViT(tokens_type=tokens_type, **TINY).train()
    x, y = torch.randn(3, 3, 32, 32), torch.tensor([1, 5, 7])
    reference = _grads(model, x, y, seed=1)
    wrapped: list[str] = []

    def spy(function: Any, *args: Any, **kwargs: Any) -> Any:
        wrapped.append(type(function).__name__)
        return checkpoint(function, *args, **kwargs)

    monkeypatch.setattr(t2t_vit.models.t2t_vit, "checkpoint", spy)
    monkeypatch.setattr(t2t_vit.layers.t2t_module, "checkpoint", spy)
    _grads(model, x, y, seed=1)
    assert wrapped == []
    model.set_grad_checkpointing(True)
    assert model.tokens_to_token.grad_checkpointing
    checkpointed = _grads(model, x, y, seed=1)
    layer = "TokenTransformer" if tokens_type == "transformer" else "TokenPerformer"
    assert wrapped == [layer, layer, "Block", "Block"]
    assert checkpointed.keys() == reference.keys()
    assert len(reference) > 20
    for name, grad in reference.items():
        torch.testing.assert_close(checkpointed[name], grad, atol=1e-7, rtol=0, msg=name)
    # In eval mode nothing is checkpointed.
    model.eval()
    with torch.no_grad():
        model(x)
    assert len(wrapped) == 4


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_autocast_outputs_are_finite_and_close_to_fp32(
    tokens_type: str, dtype: torch.dtype
) -> None:
    model = T2TViT(tokens_type=tokens_type, **TINY).eval()
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cpu", dtype=dtype):
            out = model(x)
    assert out.dtype == dtype
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, atol=AUTOCAST_ATOL[dtype], rtol=0)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_performer_kernel_runs_in_fp32_inside_the_model_on_overflowing_inputs(
    dtype: torch.dtype, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = T2TViT(tokens_type="performer", **TINY).eval()
    layer = model.tokens_to_token.attention1
    assert isinstance(layer, TokenPerformer)
    with torch.no_grad():
        layer.kqv.weight.mul_(400.0)  # keys with |k|^2 far beyond fp16's 65504
    seen: list[torch.dtype] = []
    original = TokenPerformer.prm_exp

    def spy(self: TokenPerformer, x: torch.Tensor) -> torch.Tensor:
        out = original(self, x)
        seen.extend([x.dtype, out.dtype])
        return out

    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        k = layer.kqv(layer.norm1(F.unfold(x, 7, padding=2, stride=4).transpose(1, 2)))[..., :8]
        # The kernel's first term in half precision overflows: the check is not vacuous.
        assert not torch.isfinite((k.half() * k.half()).sum(-1)).all()
        reference = model(x)
        monkeypatch.setattr(TokenPerformer, "prm_exp", spy)
        with torch.autocast("cpu", dtype=dtype):
            out = model(x)
    assert seen == [torch.float32] * 8
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, atol=AUTOCAST_ATOL[dtype], rtol=0)


def test_no_weight_decay_names_the_class_token() -> None:
    model = T2TViT(**TINY)
    assert model.no_weight_decay() == {"cls_token"}
    # The position table is a fixed buffer, not a parameter.
    assert "pos_embed" not in dict(model.named_parameters())
