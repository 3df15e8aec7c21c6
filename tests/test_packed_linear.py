"""Linear layers run through oneDNN's prepacked GEMM in CPU inference where that was measured
faster (`prefers_packed_linear`), exact to rounding, and never where autograd, hooks, tracing or
a changed weight need the plain `F.linear`."""

from __future__ import annotations

import copy
import io
from collections.abc import Callable

import pytest
import torch
from torch import nn

import t2t_vit
from t2t_vit.layers import linear as packed_linear
from t2t_vit.layers import precision

PACKED_OP = "mkldnn::_linear_pointwise"
LINEAR_OP = "aten::linear"  # what F.linear records; the Performer kernel uses `@`

pytestmark = pytest.mark.skipif(
    not packed_linear._HAS_OPS, reason="this torch build has no oneDNN (mkldnn) linear ops"
)


def _tiny() -> t2t_vit.T2TViT:
    torch.manual_seed(0)
    return t2t_vit.T2TViT(
        img_size=32, tokens_type="performer", embed_dim=32, depth=2, num_heads=2, num_classes=5
    ).eval()


def _ops(fn: Callable[[], object]) -> list[str]:
    with torch.profiler.profile() as prof:
        fn()
    return [e.name for e in prof.events()]


def _linears(model: nn.Module) -> int:
    return sum(isinstance(m, nn.Linear) for m in model.modules())


def test_forced_on_every_linear_runs_packed_and_matches_to_rounding() -> None:
    model, x = _tiny(), torch.randn(2, 3, 32, 32)
    plain = copy.deepcopy(model)
    t2t_vit.use_packed_linear(plain, False)
    t2t_vit.use_packed_linear(model, True)
    with torch.inference_mode():
        ops = _ops(lambda: model(x))
        assert ops.count(PACKED_OP) == _linears(model)
        assert LINEAR_OP not in ops
        assert PACKED_OP not in _ops(lambda: plain(x))
        torch.testing.assert_close(model(x), plain(x), rtol=1e-5, atol=1e-5)


def test_autograd_gets_the_plain_linear_bit_for_bit() -> None:
    model, x = _tiny(), torch.randn(2, 3, 32, 32)
    plain = copy.deepcopy(model)
    t2t_vit.use_packed_linear(model, True)
    t2t_vit.use_packed_linear(plain, False)
    ops = _ops(lambda: model(x).sum().backward())
    assert PACKED_OP not in ops
    with torch.no_grad():
        assert PACKED_OP in _ops(lambda: model(x))
    assert torch.equal(model(x), plain(x))
    assert model.head.weight.grad is not None


@pytest.mark.parametrize("change", ["in_place", "load_state_dict", "to_double_and_back"])
def test_a_changed_weight_is_packed_again(change: str) -> None:
    layer, x = nn.Linear(16, 8), torch.randn(70, 16)
    t2t_vit.use_packed_linear(layer, True)
    with torch.no_grad():
        before = packed_linear.linear(layer, x)
        torch.testing.assert_close(before, torch.nn.functional.linear(x, layer.weight, layer.bias))
        if change == "in_place":  # an optimiser step
            layer.weight.mul_(-2.0)
        elif change == "load_state_dict":
            layer.load_state_dict({"weight": torch.randn(8, 16), "bias": torch.randn(8)})
        else:
            layer.double().float()
            layer.weight.add_(1.0)
        after = packed_linear.linear(layer, x)
        assert PACKED_OP in _ops(lambda: packed_linear.linear(layer, x))
        expected = torch.nn.functional.linear(x, layer.weight, layer.bias)
    torch.testing.assert_close(after, expected, rtol=1e-5, atol=1e-5)
    assert not torch.allclose(after, before)


def test_autocast_keeps_its_casts() -> None:
    layer, x = nn.Linear(16, 8), torch.randn(70, 16)
    t2t_vit.use_packed_linear(layer, True)
    with torch.inference_mode(), torch.autocast("cpu", dtype=torch.bfloat16):
        ops = _ops(lambda: packed_linear.linear(layer, x))
        out = packed_linear.linear(layer, x)
    assert PACKED_OP not in ops
    assert out.dtype == torch.bfloat16


def test_hooked_and_patched_layers_keep_their_call() -> None:
    model, x = _tiny(), torch.randn(2, 3, 32, 32)
    t2t_vit.use_packed_linear(model, True)
    seen: list[torch.Tensor] = []
    fc1 = model.blocks[0].mlp.fc1
    handle = fc1.register_forward_hook(lambda _m, _i, out: seen.append(out.clone()))
    with torch.inference_mode():
        ops = _ops(lambda: model(x))
    handle.remove()
    assert len(seen) == 1
    assert seen[0].shape == (2, 5, 4 * 32)  # 2 x 2 tokens and the class token; mlp_ratio 4
    assert ops.count(PACKED_OP) == _linears(model) - 1
    calls: list[int] = []
    head = model.head
    original = head.forward

    def patched(inp: torch.Tensor) -> torch.Tensor:
        calls.append(1)
        return original(inp)

    head.forward = patched  # what accelerate's hooks do
    with torch.inference_mode():
        model(x)
    assert calls == [1]


def test_global_hooks_see_every_module_call() -> None:
    model, x = _tiny(), torch.randn(2, 3, 32, 32)
    t2t_vit.use_packed_linear(model, True)
    seen: list[nn.Module] = []
    handle = nn.modules.module.register_module_forward_hook(lambda m, _i, _o: seen.append(m))
    try:
        with torch.inference_mode():
            ops = _ops(lambda: model(x))
    finally:
        handle.remove()
    performer_mlps = [m.mlp for m in model.modules() if isinstance(m, t2t_vit.TokenPerformer)]
    assert len(performer_mlps) == 2
    assert all(any(s is mlp for s in seen) for mlp in performer_mlps)
    assert sum(isinstance(s, nn.Linear) for s in seen) == _linears(model)
    assert PACKED_OP not in ops


def test_quantized_layers_are_left_to_their_own_kernel() -> None:
    model, x = _tiny(), torch.randn(2, 3, 32, 32)
    t2t_vit.use_packed_linear(model, True)
    q = torch.ao.quantization.quantize_dynamic(model, {nn.Linear}, dtype=torch.qint8)
    with torch.inference_mode():
        ops = _ops(lambda: q(x))
        assert PACKED_OP not in ops
        torch.testing.assert_close(q(x), model(x), rtol=0.0, atol=0.2)


def test_a_packed_model_copies_pickles_and_keeps_its_state_dict() -> None:
    model, x = _tiny(), torch.randn(2, 3, 32, 32)
    t2t_vit.use_packed_linear(model, True)
    with torch.inference_mode():
        expected = model(x)
    keys = set(model.state_dict())
    twin = copy.deepcopy(model)
    buffer = io.BytesIO()
    torch.save(model, buffer)
    buffer.seek(0)
    loaded = torch.load(buffer, weights_only=False)
    assert set(twin.state_dict()) == keys == set(_tiny().state_dict())
    with torch.inference_mode():
        assert torch.equal(twin(x), expected)
        assert torch.equal(loaded(x), expected)
        assert PACKED_OP in _ops(lambda: loaded(x))


def test_functional_call_weights_and_tracing_take_the_plain_path() -> None:
    layer, x = nn.Linear(16, 8), torch.randn(70, 16)
    t2t_vit.use_packed_linear(layer, True)
    w, b = torch.randn(8, 16), torch.randn(8)

    class Wrapper(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.layer = layer

        def forward(self, inp: torch.Tensor) -> torch.Tensor:
            return packed_linear.linear(self.layer, inp)

    wrapper = Wrapper()
    with torch.no_grad():
        out = torch.func.functional_call(wrapper, {"layer.weight": w, "layer.bias": b}, (x,))
        assert torch.equal(out, torch.nn.functional.linear(x, w, b))
        traced = torch.jit.trace(wrapper, (x,))
        assert PACKED_OP not in str(traced.graph)
        exported = torch.export.export(wrapper, (x,))
    assert "mkldnn" not in str(exported.graph)
    torch.testing.assert_close(exported.module()(x), layer(x))


@pytest.mark.parametrize(
    ("flags", "rows", "dtype", "device", "packed"),
    [
        ({"avx2"}, 1576, torch.float32, "cpu", True),  # measured: AMD EPYC, AVX2 only
        ({"avx2"}, 64, torch.float32, "cpu", True),
        ({"avx2"}, 8, torch.float32, "cpu", False),  # the head at b8: MKL is faster
        ({"avx2"}, 1576, torch.bfloat16, "cpu", False),
        ({"avx2", "avx512f"}, 1576, torch.float32, "cpu", False),  # not measured
        ({"avx2", "avx512f", "amx_bf16"}, 1576, torch.float32, "cpu", False),
        ({"avx2"}, 1576, torch.float32, "cuda", False),
        (None, 1576, torch.float32, "cpu", False),  # flags unknown
    ],
)
def test_the_automatic_choice_follows_the_measurements(
    flags: set[str] | None,
    rows: int,
    dtype: torch.dtype,
    device: str,
    packed: bool,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: None if flags is None else frozenset(flags))
    assert t2t_vit.prefers_packed_linear(rows, dtype, torch.device(device)) is packed


def test_none_returns_to_the_automatic_choice(monkeypatch: pytest.MonkeyPatch) -> None:
    model, x = _tiny(), torch.randn(16, 3, 32, 32)
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512f"}))
    t2t_vit.use_packed_linear(model, True)
    t2t_vit.use_packed_linear(model, None)
    with torch.inference_mode():
        assert PACKED_OP not in _ops(lambda: model(x))
        monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2"}))
        ops = _ops(lambda: model(x))
    # Every layer has 64 rows or more (16 images x 5 tokens in the blocks) but the head.
    assert ops.count(PACKED_OP) == _linears(model) - 1


def test_compiling_a_packed_model_traces_the_plain_linear_without_graph_breaks() -> None:
    model, x = _tiny(), torch.randn(16, 3, 32, 32)
    t2t_vit.use_packed_linear(model, True)
    compiled = torch.compile(model, fullgraph=True, backend="aot_eager", dynamic=False)
    with torch.no_grad():
        eager = model(x)
        ops = _ops(lambda: compiled(x))
        torch.testing.assert_close(compiled(x), eager, rtol=1e-5, atol=1e-5)
    assert PACKED_OP not in ops
