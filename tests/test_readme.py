"""The README's figures come from measurement: its preset table equals what the code counts."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

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


def test_readme_quick_start_runs() -> None:
    code = re.search(r"## Quick start\n\n```python\n(.*?)```", README.read_text(), re.S)
    assert code is not None
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README quick start", "exec"), namespace)
    assert namespace["logits"].shape == (1, 1000)  # type: ignore[attr-defined]
    assert namespace["tokens"].shape == (1, 197, 384)  # type: ignore[attr-defined]
