"""Wrappers are looked through everywhere (issue 23, R3): `torch.compile`, DataParallel and
DistributedDataParallel around a model, and the `_orig_mod.` / `module.` prefixes they leave
in a state dict.

`MODEL_FUNCTIONS` and `STATE_DICT_FUNCTIONS` list every function that takes a model or a
state dict to save, convert or train; a new one gets a row here.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.distributed as dist
from inference_models import tiny_model
from safetensors.torch import load_file
from torch import nn

import t2t_vit
from t2t_vit.cli import main
from t2t_vit.models.wrappers import strip_wrapper_prefixes, unwrap_model
from t2t_vit.weights import hub as hub_module


@pytest.fixture
def process_group(tmp_path: Path) -> Iterator[None]:
    """A one-process gloo group, for DistributedDataParallel on the CPU."""
    dist.init_process_group("gloo", init_method=(tmp_path / "store").as_uri(), rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()


WRAPPERS: dict[str, Callable[[nn.Module], nn.Module]] = {
    "torch.compile": torch.compile,  # type: ignore[dict-item]
    "DataParallel": nn.DataParallel,
    "DistributedDataParallel": nn.parallel.DistributedDataParallel,
    "DataParallel(torch.compile)": lambda m: nn.DataParallel(torch.compile(m)),  # type: ignore[arg-type]
    "torch.compile(DistributedDataParallel)": lambda m: torch.compile(  # type: ignore[return-value]
        nn.parallel.DistributedDataParallel(m)
    ),
}


# -- the functions that take a model: each returns what it made of it, to compare ---------


def saved(model: nn.Module, tmp: Path) -> Any:
    folder = t2t_vit.save_pretrained(model, tmp / "saved")
    return (folder / "config.json").read_text(), load_file(str(folder / "model.safetensors"))


def pushed(model: nn.Module, tmp: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    got: dict[str, Any] = {}

    def upload_folder(folder: Path, repo_id: str, **kwargs: Any) -> str:
        got["config"] = (Path(folder) / "config.json").read_text()
        got["weights"] = load_file(str(Path(folder) / "model.safetensors"))
        got["card"] = (Path(folder) / "README.md").read_text()
        return "commit"

    monkeypatch.setattr(hub_module, "check_upload_access", lambda token: None)
    monkeypatch.setattr(hub_module, "upload_folder", upload_folder)
    assert t2t_vit.push_to_hub(model, "acme/tiny") == "commit"
    return got


def layer_decay(model: nn.Module, tmp: Path) -> Any:
    groups = t2t_vit.param_groups_layer_decay(model, lr=1e-3)
    return [(g["layer_id"], g["weight_decay"], g["param_names"], g["params"]) for g in groups]


MODEL_FUNCTIONS: dict[str, Callable[..., Any]] = {
    "save_pretrained": saved,
    "push_to_hub": pushed,
    "param_groups_layer_decay": layer_decay,
    "unwrap_model": lambda model, tmp: unwrap_model(model),
}


def _equal(a: Any, b: Any) -> bool:
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.shape == b.shape and bool(torch.equal(a, b))
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_equal(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) or a is b


@pytest.mark.parametrize("wrapper", list(WRAPPERS))
@pytest.mark.parametrize("function", list(MODEL_FUNCTIONS))
def test_every_function_that_takes_a_model_looks_through_each_wrapper(
    function: str,
    wrapper: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    process_group: None,
) -> None:
    model = tiny_model()
    run = MODEL_FUNCTIONS[function]
    extra = (monkeypatch,) if function == "push_to_hub" else ()
    plain = run(model, tmp_path / "plain", *extra)
    wrapped = run(WRAPPERS[wrapper](model), tmp_path / "wrapped", *extra)
    assert _equal(wrapped, plain)


# -- state dicts with the wrappers' prefixes ------------------------------------------------

PREFIXES = ["_orig_mod.", "module.", "module._orig_mod.", "_orig_mod.module."]


def _prefixed(state: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    return {prefix + k: v for k, v in state.items()}


def converted_file(state: dict[str, torch.Tensor], tmp: Path) -> Any:
    ckpt = tmp / "t2t_vit_7_compiled.pth"
    ckpt.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"state_dict": state}, ckpt)
    result = t2t_vit.convert_checkpoint(ckpt, tmp / "out", model="t2t-vit-7")
    return load_file(str(result.out_dir / "model.safetensors")), result.model_args


STATE_DICT_FUNCTIONS: dict[str, Callable[[dict[str, torch.Tensor], Path], Any]] = {
    "convert_state_dict": lambda state, tmp: t2t_vit.convert_state_dict(state),
    "infer_model_args": lambda state, tmp: t2t_vit.infer_model_args(state),
    "convert_checkpoint": converted_file,
    "strip_wrapper_prefixes": lambda state, tmp: strip_wrapper_prefixes(state),
}


@pytest.mark.parametrize("prefix", PREFIXES)
@pytest.mark.parametrize("function", list(STATE_DICT_FUNCTIONS))
def test_every_function_that_takes_a_state_dict_reads_through_wrapper_prefixes(
    function: str, prefix: str, tmp_path: Path, t7_state: dict[str, torch.Tensor]
) -> None:
    run = STATE_DICT_FUNCTIONS[function]
    plain = run(t7_state, tmp_path / "plain")
    assert _equal(run(_prefixed(t7_state, prefix), tmp_path / "wrapped"), plain)


# -- items 13, 17, 18, 31 ---------------------------------------------------------------------


def test_item13_save_pretrained_of_a_compiled_model_loads_back_as_the_model(
    tmp_path: Path,
) -> None:
    model = tiny_model()
    folder = t2t_vit.save_pretrained(torch.compile(model), tmp_path / "compiled")
    x = torch.rand(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(t2t_vit.from_pretrained(folder)(x), model(x))


def test_item17_convert_of_a_compiled_state_dict_with_model_given(
    tmp_path: Path, t7_state: dict[str, torch.Tensor], capsys: pytest.CaptureFixture[str]
) -> None:
    ckpt = tmp_path / "compiled.pth"
    torch.save(_prefixed(t7_state, "_orig_mod."), ckpt)
    status = main(["convert", str(ckpt), str(tmp_path / "out"), "--model", "t2t-vit-7"])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert "read official weights from the whole file; model: t2t-vit-7" in out
    weights = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert _equal(weights, t7_state)


def test_item18_layer_decay_takes_one_name_as_a_string() -> None:
    model = tiny_model()
    name = "blocks.0.mlp.fc1.weight"
    groups = t2t_vit.param_groups_layer_decay(model, no_weight_decay=name)
    (group,) = [g for g in groups if name in g["param_names"]]
    assert group["weight_decay"] == 0.0
    assert groups == t2t_vit.param_groups_layer_decay(model, no_weight_decay=[name])
    with pytest.raises(ValueError, match=r"^no_weight_decay names \['blocks\.0\.nope'\] are not"):
        t2t_vit.param_groups_layer_decay(model, no_weight_decay="blocks.0.nope")


def test_item31_convert_reads_in_chans_and_takes_the_ema_weights_saying_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    grey = t2t_vit.create_model("t2t-vit-7", in_chans=1, num_classes=10)
    ema = {k: v.clone() for k, v in grey.state_dict().items()}
    raw = {k: v + 1.0 for k, v in ema.items()}
    ckpt = tmp_path / "grey.pth"
    torch.save({"model": raw, "model_ema": ema, "epoch": 3}, ckpt)
    status = main(["convert", str(ckpt), str(tmp_path / "out")])
    out, err = capsys.readouterr()
    assert (status, err) == (0, "")
    assert out.splitlines()[0] == (
        "note: took the EMA weights under 'model_ema', as for the official files; the "
        "checkpoint also holds raw weights under 'model'"
    )
    assert "read official weights from model_ema; model: t2t-vit-7" in out
    config = json.loads((tmp_path / "out" / "config.json").read_text())
    assert config["model_args"]["in_chans"] == 1
    assert config["pretrained_cfg"]["input_size"][0] == 1
    assert _equal(load_file(str(tmp_path / "out" / "model.safetensors")), ema)
    # The same with a preset named: its sizes still come from the checkpoint.
    status = main(["convert", str(ckpt), str(tmp_path / "named"), "--model", "t2t-vit-7"])
    capsys.readouterr()
    assert status == 0
    named = json.loads((tmp_path / "named" / "config.json").read_text())
    assert named["model_args"]["in_chans"] == 1
