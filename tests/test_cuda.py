"""The CUDA path (fused SDPA kernels, bf16 autocast); runs only where a GPU is present."""

from __future__ import annotations

import pytest
import torch
from conftest import load_json, load_tensors

import t2t_vit

pytestmark = [
    pytest.mark.gpu,
    pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU"),
]


@pytest.mark.parametrize("name", ["tiny_transformer", "tiny_performer"])
def test_cuda_fp32_matches_official_outputs(name: str) -> None:
    model = t2t_vit.T2TViT(**load_json(f"{name}.json")["official_kwargs"])
    model.load_state_dict(load_tensors(f"{name}.state_dict.safetensors"))
    model = model.cuda().eval()
    io = load_tensors(f"{name}.io.safetensors")
    with torch.no_grad():  # fp32 matmuls: TF32 is off by default for matmul
        logits = model(io["input"].cuda()).cpu()
    torch.testing.assert_close(logits, io["logits"], atol=1e-4, rtol=0)


@pytest.mark.parametrize("tokens_type", ["transformer", "performer"])
def test_cuda_bf16_autocast_is_finite_and_close(tokens_type: str) -> None:
    model = t2t_vit.create_model(
        "t2t-vit-t-14" if tokens_type == "transformer" else "t2t-vit-14", num_classes=10
    )
    model = model.cuda().eval()
    x = torch.randn(4, 3, 224, 224, device="cuda")
    with torch.no_grad():
        reference = model(x)
        with torch.autocast("cuda", dtype=torch.bfloat16):
            out = model(x)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.float(), reference, atol=0.05, rtol=0)
