"""The bf16 inference path: `model.to(torch.bfloat16)` and `from_pretrained(dtype=...)` keep
only the Performer kernel in fp32, copy no weight per forward, stay close to the fp32
logits, and warn once on a CPU that only emulates bf16."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from conftest import OFFICIAL_PRESETS, load_json, load_tensors, recipe_state_dict
from torch.profiler import ProfilerActivity, profile

import t2t_vit
from t2t_vit.layers import precision

#: bf16 logits may differ from the fp32 ones by this fraction of the fp32 logits' range.
BF16_RANGE_FRACTION = 0.05

EMULATED = (
    "bf16 is emulated on this CPU (no avx512_bf16 or amx_bf16) and runs slower than fp32 "
    "here; run the model in fp32 on this machine (model.float(), no autocast)"
)


def _tiny(name: str) -> t2t_vit.T2TViT:
    model = t2t_vit.T2TViT(**load_json(f"{name}.json")["official_kwargs"]).eval()
    official = load_tensors(f"{name}.state_dict.safetensors")
    model.load_state_dict(t2t_vit.convert_state_dict(official, model=model), strict=True)
    return model


@pytest.fixture
def quiet_bf16(monkeypatch: pytest.MonkeyPatch) -> None:
    """These tests are about bf16's values: the emulation warning is tested on its own."""
    monkeypatch.setattr(precision, "_warned", [True])


def _range_fraction(bf16: torch.Tensor, fp32: torch.Tensor) -> float:
    return float((bf16.float() - fp32).abs().max() / (fp32.max() - fp32.min()))


def test_a_bf16_model_keeps_the_performer_features_in_exact_fp32() -> None:
    model = _tiny("tiny_performer")
    features = {n: b.clone() for n, b in model.named_buffers() if n.endswith(".w")}
    assert len(features) == 2
    model.to(torch.bfloat16)
    for name, w in model.named_buffers():
        if name in features:
            assert w.dtype == torch.float32
            assert torch.equal(w, features[name])
    others = {p.dtype for n, p in model.state_dict().items() if n not in features}
    assert others == {torch.bfloat16}
    model.float()
    assert all(torch.equal(model.get_buffer(n), w) for n, w in features.items())
    model.double()  # only half precisions keep the fp32 features
    assert {b.dtype for b in model.buffers()} == {torch.float64}


@pytest.mark.parametrize("name", ["tiny_transformer", "tiny_performer"])
def test_a_bf16_forward_converts_no_weight(name: str, quiet_bf16: None) -> None:
    model = _tiny(name).to(torch.bfloat16)
    x = load_tensors(f"{name}.io.safetensors")["input"].to(torch.bfloat16)
    weight_shapes = {tuple(t.shape) for t in model.state_dict().values()}
    with torch.inference_mode():
        model(x)  # caches filled before the profiled forward
        with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
            model(x)
    # (Python scalars in the arithmetic show up as 0-d casts; they are no tensors' copies.)
    shapes = [tuple(e.input_shapes[0]) for e in prof.events() if e.name == "aten::_to_copy"]
    casts = [s for s in shapes if s]
    assert not [s for s in casts if s in weight_shapes]
    # Only the Performer converts: its k, q and v to fp32 and its output back, per layer.
    assert len(casts) == (8 if name == "tiny_performer" else 0)


@pytest.mark.parametrize("name", ["tiny_transformer", "tiny_performer"])
def test_from_pretrained_in_bf16_matches_fp32_to_bf16_resolution(
    name: str, tmp_path: Path, quiet_bf16: None
) -> None:
    folder = t2t_vit.save_pretrained(_tiny(name), tmp_path / name)
    model = t2t_vit.from_pretrained(folder, dtype=torch.bfloat16)
    dtypes = {n: t.dtype for n, t in model.state_dict().items()}
    assert {d for n, d in dtypes.items() if not n.endswith(".w")} == {torch.bfloat16}
    assert {d for n, d in dtypes.items() if n.endswith(".w")} <= {torch.float32}
    io = load_tensors(f"{name}.io.safetensors")
    with torch.inference_mode():
        logits = model(io["input"].to(torch.bfloat16))
    assert logits.dtype == torch.bfloat16
    assert _range_fraction(logits, io["logits"]) < BF16_RANGE_FRACTION
    with pytest.raises(ValueError, match=r"^input dtype torch.float32 does not match the model's"):
        model(io["input"])


@pytest.mark.slow
@pytest.mark.parametrize("fixture", ["t2t_vit_t_14_recipe", "t2t_vit_14_recipe"])
def test_full_size_bf16_logits_stay_within_5_percent_of_the_fp32_range(
    fixture: str, quiet_bf16: None
) -> None:
    cfg = load_json(f"{fixture}.json")
    model = t2t_vit.create_model(cfg["preset"], **cfg["official_kwargs"]).eval()
    shapes = OFFICIAL_PRESETS[cfg["preset"]]["state_dict_shapes"]
    model.load_state_dict(t2t_vit.convert_state_dict(recipe_state_dict(shapes, cfg["seed"])))
    io = load_tensors(f"{fixture}.io.safetensors")
    x = io["input"][:1]
    with torch.inference_mode():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            autocast = model(x)
        model.to(torch.bfloat16)
        bf16 = model(x.to(torch.bfloat16))
    golden = io["logits"][:1]
    assert _range_fraction(autocast, golden) < BF16_RANGE_FRACTION
    assert _range_fraction(bf16, golden) < BF16_RANGE_FRACTION


@pytest.fixture
def fresh_warning(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(precision, "_warned", [])


def _warnings_of(run: object) -> list[str]:
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        assert callable(run)
        run()
    return [str(w.message) for w in seen if issubclass(w.category, RuntimeWarning)]


@pytest.mark.parametrize("stem", ["performer", "patch"])
def test_bf16_on_a_cpu_without_native_bf16_warns_once(
    stem: str, monkeypatch: pytest.MonkeyPatch, fresh_warning: None
) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    model = t2t_vit.T2TViT(img_size=32, embed_dim=32, depth=1, num_heads=2, tokens_type=stem)
    model.eval().to(torch.bfloat16)
    x = torch.rand(1, 3, 32, 32, dtype=torch.bfloat16)
    assert _warnings_of(lambda: model(x)) == [EMULATED]
    assert _warnings_of(lambda: model(x)) == []


def test_bf16_autocast_on_a_cpu_without_native_bf16_warns(
    monkeypatch: pytest.MonkeyPatch, fresh_warning: None
) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: False)
    model = _tiny("tiny_transformer")
    x = torch.rand(1, 3, 64, 64)
    assert _warnings_of(lambda: model(x)) == []  # fp32 is not bf16

    def under_autocast() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            model(x)

    assert _warnings_of(under_autocast) == [EMULATED]


def test_bf16_on_a_cpu_with_native_bf16_does_not_warn(
    monkeypatch: pytest.MonkeyPatch, fresh_warning: None
) -> None:
    monkeypatch.setattr(precision, "cpu_has_native_bf16", lambda: True)
    model = _tiny("tiny_performer").to(torch.bfloat16)
    x = torch.rand(1, 3, 64, 64, dtype=torch.bfloat16)
    assert _warnings_of(lambda: model(x)) == []


@pytest.mark.parametrize(
    ("flags", "native"),
    [
        ("fpu sse2 avx2 fma", False),
        ("avx2 avx512f avx512bw", False),
        ("avx2 avx512f avx512_bf16", True),
        ("avx2 avx512f amx_bf16 amx_tile", True),
    ],
)
def test_native_bf16_is_read_from_the_cpu_flags(
    flags: str, native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset(flags.split()))
    precision.cpu_has_native_bf16.cache_clear()
    try:
        assert precision.cpu_has_native_bf16() is native
    finally:
        precision.cpu_has_native_bf16.cache_clear()


def test_the_flags_of_this_machine_are_read() -> None:
    flags = precision.cpu_flags()
    if Path("/proc/cpuinfo").exists() and "flags" in Path("/proc/cpuinfo").read_text():
        assert flags is not None
        assert precision.cpu_has_native_bf16() is bool(flags & precision.NATIVE_BF16_FLAGS)
