"""The layers on their own, against the formulas of the official code."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

import t2t_vit
from t2t_vit import T2TModule, TokenPerformer, TokenTransformer


def test_token_transformer_scales_by_input_width_and_skips_with_v() -> None:
    layer = TokenTransformer(dim=147, in_dim=64, num_heads=1).eval()
    x = torch.randn(2, 50, 147)
    assert layer.attn.scale == 147**-0.5
    # Written out: softmax((q * 147^-1/2) k^T) v, projected, plus v; then the MLP.
    h = layer.norm1(x)
    q, k, v = layer.attn.qkv(h).split(64, dim=-1)
    a = ((q * 147**-0.5) @ k.transpose(-2, -1)).softmax(-1) @ v
    y = v + layer.attn.proj(a)
    expected = y + layer.mlp(layer.norm2(y))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)


def test_token_performer_matches_the_official_formulation() -> None:
    layer = TokenPerformer(dim=147, in_dim=64).eval()
    x = torch.randn(2, 50, 147)
    # The official formulation: kqv split in k, q, v order, repeat-based kernel.
    h = layer.norm1(x)
    k, q, v = torch.split(layer.kqv(h), 64, dim=-1)

    def prm(t: torch.Tensor) -> torch.Tensor:
        xd = (t * t).sum(-1, keepdim=True).repeat(1, 1, layer.m) / 2
        return torch.exp(torch.einsum("bti,mi->btm", t.float(), layer.w) - xd) / math.sqrt(layer.m)

    kp, qp = prm(k), prm(q)
    d = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(2)
    kptv = torch.einsum("bin,bim->bnm", v.float(), kp)
    y = torch.einsum("bti,bni->btn", qp, kptv) / (d.repeat(1, 1, 64) + 1e-8)
    y = v + layer.proj(y)
    expected = y + layer.mlp(layer.norm2(y))
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected, atol=1e-5, rtol=0)


def test_performer_random_features_are_a_persistent_frozen_buffer() -> None:
    layer = TokenPerformer(dim=147, in_dim=64)
    assert "w" in layer.state_dict()
    assert layer.state_dict()["w"].shape == (32, 64)
    assert all(p is not layer.w for p in layer.parameters())
    # Orthogonal rows scaled by sqrt(m).
    gram = layer.w @ layer.w.t() / layer.m
    torch.testing.assert_close(gram, torch.eye(32), atol=1e-5, rtol=0)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_performer_kernel_stays_fp32_under_autocast(dtype: torch.dtype) -> None:
    layer = TokenPerformer(dim=147, in_dim=64).eval()
    # Large activations: exp(w^T x - |x|^2/2) underflows/overflows in half precision.
    x = torch.randn(2, 50, 147) * 30
    with torch.no_grad():
        reference = layer(x)
        with torch.autocast("cpu", dtype=dtype):
            out = layer(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, atol=0.1, rtol=0.05)


def test_sinusoid_table_equals_the_official_numpy_formula() -> None:
    n, d = 197, 384
    angles = np.array([[p / np.power(10000, 2 * (j // 2) / d) for j in range(d)] for p in range(n)])
    angles[:, 0::2] = np.sin(angles[:, 0::2])
    angles[:, 1::2] = np.cos(angles[:, 1::2])
    expected = torch.tensor(angles, dtype=torch.float32).unsqueeze(0)
    assert torch.equal(t2t_vit.get_sinusoid_encoding(n, d), expected)


def test_resample_pos_embed_keeps_class_token_and_native_grid() -> None:
    table = torch.randn(1, 1 + 14 * 14, 8)
    assert t2t_vit.resample_pos_embed(table, (14, 14)) is table
    out = t2t_vit.resample_pos_embed(table, (14, 20))
    assert out.shape == (1, 1 + 14 * 20, 8)
    assert torch.equal(out[:, 0], table[:, 0])
    grid = table[:, 1:].reshape(1, 14, 14, 8).permute(0, 3, 1, 2)
    expected = F.interpolate(grid, size=(14, 20), mode="bicubic", align_corners=False)
    torch.testing.assert_close(out[:, 1:], expected.flatten(2).transpose(1, 2))


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_t2t_module_paper_stem_gives_14x14_at_224(tokens_type: str) -> None:
    stem = T2TModule(in_chans=3, embed_dim=32, token_dim=16, tokens_type=tokens_type)
    tokens, grid = stem(torch.randn(1, 3, 224, 224))
    assert grid == (14, 14) == stem.output_grid(224, 224)
    assert tokens.shape == (1, 196, 32)


@pytest.mark.parametrize(
    ("shape", "message"),
    [
        ((3, 64, 64), r"shape \(B, 3, H, W\), got a 3-D tensor of shape \(3, 64, 64\)"),
        ((1, 1, 64, 64), r"expected 3 input channels, got 1 \(input shape \(1, 1, 64, 64\)\)"),
        ((1, 3, 2, 2), r"input of 2x2 is too small for this T2T stem .* smallest it takes is 3x3"),
    ],
)
def test_bad_input_is_a_clear_value_error(shape: tuple[int, ...], message: str) -> None:
    model = t2t_vit.create_model("t2t-vit-7", img_size=32)
    with pytest.raises(ValueError, match=message):
        model(torch.randn(*shape))


def test_unknown_tokens_type_is_rejected() -> None:
    with pytest.raises(
        ValueError, match=r"unknown tokens_type 'conv'; accepted: transformer, perf"
    ):
        T2TModule(tokens_type="conv")


def test_convert_state_dict_lists_mismatched_keys_and_shapes() -> None:
    model = t2t_vit.create_model("t2t-vit-7", num_classes=10, img_size=32)
    sd = dict(model.state_dict())
    sd["head.weight"] = torch.zeros(5, 256)
    del sd["norm.bias"]
    sd["extra.weight"] = torch.zeros(1)
    with pytest.raises(ValueError, match="checkpoint does not fit the model") as err:
        t2t_vit.convert_state_dict(sd, model=model)
    text = str(err.value)
    assert "1 missing keys (norm.bias)" in text
    assert "1 unexpected keys (extra.weight)" in text
    assert "1 shape mismatches (head.weight: checkpoint (5, 256) vs model (10, 256))" in text


def test_convert_state_dict_rejects_unknown_source() -> None:
    with pytest.raises(ValueError, match="unknown checkpoint source 'caffe'"):
        t2t_vit.convert_state_dict({"a": torch.zeros(1)}, source="caffe")


def test_split_grids_follow_the_unfold_arithmetic_per_split() -> None:
    stem = T2TModule(in_chans=3, embed_dim=32, token_dim=16, tokens_type="transformer")
    assert stem.split_grids(224, 320) == [(56, 80), (28, 40), (14, 20)]
    patch = T2TModule(in_chans=3, embed_dim=32, tokens_type="patch")
    assert patch.split_grids(224, 320) == [(14, 20)]
