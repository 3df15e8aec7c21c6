"""Each attention layer runs the path measured faster for its token count, dtype and device
(`prefers_fused_attention`), unless the model is switched to one path."""

from __future__ import annotations

import pytest
import torch

import t2t_vit
from t2t_vit.layers import attention, precision

FLASH = "aten::_scaled_dot_product_flash_attention_for_cpu"

# (native bf16, AMX): the CPU kinds of issue 18.
AVX2 = (False, False)
ZEN5 = (True, False)  # AVX512_BF16, no AMX
SAPPHIRE_RAPIDS = (True, True)  # AMX-BF16


def _cpu(monkeypatch: pytest.MonkeyPatch, kind: tuple[bool, bool]) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: kind[0])
    monkeypatch.setattr(precision, "cpu_has_amx", lambda: kind[1])
    monkeypatch.setattr(precision, "_warned", [True])


@pytest.mark.parametrize(
    ("kind", "dtype", "tokens", "fused"),
    [
        (AVX2, torch.float32, 197, True),
        (AVX2, torch.bfloat16, 197, True),  # emulated bmm: fused 8-21x faster
        (ZEN5, torch.float32, 197, True),
        (ZEN5, torch.bfloat16, 197, False),  # bf16 bmm beat the fp32 flash kernel
        (ZEN5, torch.float16, 784, False),
        (ZEN5, torch.bfloat16, 3136, True),  # the first T2T layer stays fused: memory
        (SAPPHIRE_RAPIDS, torch.bfloat16, 197, True),  # the flash kernel uses AMX
    ],
)
def test_the_rule_follows_the_measurements(
    kind: tuple[bool, bool],
    dtype: torch.dtype,
    tokens: int,
    fused: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cpu(monkeypatch, kind)
    assert t2t_vit.prefers_fused_attention(tokens, dtype, torch.device("cpu")) is fused


def test_cuda_is_always_fused(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, ZEN5)
    cuda = torch.device("cuda")
    assert t2t_vit.prefers_fused_attention(197, torch.bfloat16, cuda) is True


def _flash_calls(model: torch.nn.Module, x: torch.Tensor) -> int:
    with torch.inference_mode(), torch.profiler.profile() as prof:
        model(x)
    return sum(e.name == FLASH for e in prof.events())


def _transformer_model() -> t2t_vit.T2TViT:
    # 64x64: the T2T layers attend over 256 and 64 tokens, the 2 blocks over 17.
    model = t2t_vit.T2TViT(
        img_size=64, tokens_type="transformer", embed_dim=32, depth=2, num_heads=2, token_dim=8
    )
    return model.eval()


def test_by_default_each_layer_takes_its_path(monkeypatch: pytest.MonkeyPatch) -> None:
    _cpu(monkeypatch, ZEN5)
    model = _transformer_model()
    x = torch.randn(2, 3, 64, 64)
    assert _flash_calls(model, x) == 4  # fp32: every layer fused
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert _flash_calls(model, x) == 0
        # A first T2T layer at least FUSED_MIN_TOKENS long stays fused, the rest do not.
        monkeypatch.setattr(attention, "FUSED_MIN_TOKENS", 256)
        assert _flash_calls(model, x) == 1
        t2t_vit.use_fused_attention(model, True)
        assert _flash_calls(model, x) == 4
        t2t_vit.use_fused_attention(model, None)
        assert _flash_calls(model, x) == 1


def test_the_default_path_computes_what_the_forced_paths_compute(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _cpu(monkeypatch, ZEN5)
    model = _transformer_model().to(torch.bfloat16)
    x = torch.randn(2, 3, 64, 64, dtype=torch.bfloat16)
    with torch.inference_mode():
        default = model(x)
        t2t_vit.use_fused_attention(model, False)
        explicit = model(x)
    assert torch.equal(default, explicit)  # on this CPU kind every layer here is explicit
