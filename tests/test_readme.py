"""The README's figures come from measurement: its preset table equals what the code counts,
and its quick start runs (the zoo table is checked in test_weights.py)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from docs_blocks import TINY_ARGS, run_blocks, serve_tiny_pretrained, shape_comments, write_photo
from fakehub import FakeHub

import t2t_vit

README = Path(__file__).parents[1] / "README.md"
ROW = re.compile(
    r"^\| `([a-z0-9-]+)` \| (\w+) \| (\d+) \| ([\d.]+) M \| ([\d.]+) M \| ([\d.]+) G \|$"
)


def _rows() -> dict[str, tuple[str, ...]]:
    rows = {}
    for line in README.read_text().splitlines():
        match = ROW.match(line)
        if match:
            rows[match.group(1)] = match.groups()[1:]
    return rows


def test_readme_table_lists_every_preset() -> None:
    assert list(_rows()) == t2t_vit.list_models()


@pytest.mark.parametrize("name", t2t_vit.list_models())
def test_readme_preset_row_matches_measurement(name: str) -> None:
    kind, size, params, trainable, macs = _rows()[name]
    model = t2t_vit.create_model(name)
    assert kind == t2t_vit.PRESETS[name]["tokens_type"]
    assert int(size) == model.img_size[0]
    assert params == f"{t2t_vit.count_params(model) / 1e6:.2f}"
    assert trainable == f"{t2t_vit.count_params(model, trainable_only=True) / 1e6:.2f}"
    assert macs == f"{t2t_vit.count_macs(model, 224) / 1e9:.2f}"


def _quick_start() -> list[str]:
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    return [code.group(1)]


def test_readme_quick_start_runs_against_the_hub_download(
    hub: FakeHub, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photo(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    serve_tiny_pretrained(hub, "t2t-vit-t-14", tmp_path, monkeypatch)
    ns = run_blocks(_quick_start(), "README quick start", {})
    repo = t2t_vit.get_weights("t2t-vit-t-14").hub_repo_id
    assert ("GET", f"/{repo}/resolve/main/model.safetensors") in hub.requests
    [top5] = ns["predictions"]
    names = t2t_vit.load_labels("imagenet-1k")
    assert [p.label for p in top5] == [names[p.class_index] for p in top5]
    assert len(top5) == 5
    grid = TINY_ARGS["img_size"] // 16
    assert ns["tokens"].shape == (1, 1 + grid * grid, TINY_ARGS["embed_dim"])


def test_readme_quick_start_shape_comments_hold_for_t2t_vit_t_14(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    write_photo(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    real = t2t_vit.create_model("t2t-vit-t-14").eval()
    monkeypatch.setattr(t2t_vit, "from_pretrained", lambda name, **kwargs: real)
    ns = run_blocks(_quick_start(), "README quick start", {})
    claimed = shape_comments(_quick_start())
    assert claimed == {"tokens": (1, 197, 384)}
    assert tuple(ns["tokens"].shape) == claimed["tokens"]
