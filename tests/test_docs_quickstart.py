"""docs/quickstart.md runs as written: its Python blocks execute in order against a tiny
model that the fake Hub serves under the name `from_pretrained("t2t-vit-t-14")` downloads,
its shape comments hold for the real T2T-ViT_t-14, and its install lines name real extras."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import torch
from docs_blocks import (
    ROOT,
    TINY_ARGS,
    code_blocks,
    run_blocks,
    serve_tiny_pretrained,
    shape_comments,
    write_photo,
)
from fakehub import FakeHub

import t2t_vit

PAGE = "docs/quickstart.md"


@pytest.fixture
def reader_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The reader's working directory, holding the `photo.jpg` the page reads."""
    write_photo(tmp_path / "photo.jpg")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_quickstart_blocks_run_against_the_hub_download(
    hub: FakeHub,
    reader_dir: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    published = serve_tiny_pretrained(hub, "t2t-vit-t-14", reader_dir, monkeypatch)
    blocks = code_blocks(PAGE)
    assert len(blocks) == 3
    ns = run_blocks(blocks, PAGE, {})

    # The model came through the Hub download path, from the registry's repository.
    repo = t2t_vit.get_weights("t2t-vit-t-14").hub_repo_id
    assert repo == "t2t-vit/t2t-vit-t-14.mmpretrain"
    assert hub.gets("model.safetensors") == 1
    assert ("GET", f"/{repo}/resolve/main/model.safetensors") in hub.requests
    model = ns["model"]
    assert not model.training
    for key, value in published.state_dict().items():
        torch.testing.assert_close(model.state_dict()[key], value, atol=0, rtol=0)

    # First prediction: one image, five ranked ImageNet classes, printed one per line.
    predictions = ns["predictions"]
    assert len(predictions) == 1
    assert len(predictions[0]) == 5
    names = t2t_vit.load_labels("imagenet-1k")
    probabilities = [p.probability for p in predictions[0]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert all(0.0 < p <= 1.0 for p in probabilities)
    assert all(p.label == names[p.class_index] for p in predictions[0])
    expected = torch.softmax(model(t2t_vit.preprocess("photo.jpg", model)), dim=-1)[0]
    top = expected.topk(5)
    assert [p.class_index for p in predictions[0]] == top.indices.tolist()
    torch.testing.assert_close(torch.tensor(probabilities), top.values, atol=1e-6, rtol=0)
    lines = capsys.readouterr().out.splitlines()
    assert lines == [f"{p.probability:6.1%}  {p.label} ({p.class_index})" for p in predictions[0]]

    # First features: the tiny model's 64x64 input makes a 4x4 token grid of width 32.
    grid, width = TINY_ARGS["img_size"] // 16, TINY_ARGS["embed_dim"]
    assert ns["x"].shape == (1, 3, 64, 64)
    assert ns["tokens"].shape == (1, 1 + grid * grid, width)
    assert ns["embedding"].shape == (1, width)
    torch.testing.assert_close(ns["embedding"], ns["tokens"][:, 0], atol=0, rtol=0)
    torch.testing.assert_close(ns["final"], ns["tokens"], atol=1e-6, rtol=0)
    assert [m.shape for m in ns["maps"]] == [(1, width, grid, grid)] * TINY_ARGS["depth"]
    assert ns["last_map"] is ns["maps"][-1]

    # Without pretrained weights.
    assert ns["names"] == t2t_vit.list_models()
    assert ns["weights"] == ["t2t-vit-t-14.official", "t2t-vit-t-14.mmpretrain"]
    assert ns["scratch"].head.out_features == 10


def test_quickstart_prose_states_what_the_blocks_return() -> None:
    text = (ROOT / PAGE).read_text()
    # The comment abbreviates the preset list; its ends are the real ends.
    models = t2t_vit.list_models()
    assert f"# ['{models[0]}', '{models[1]}', ..., '{models[-1]}']" in text
    assert f"here `{t2t_vit.list_pretrained('t2t-vit-t-14')}`" in text
    assert f"(here `{t2t_vit.get_weights('t2t-vit-t-14').name}`)" in text


def test_quickstart_shape_comments_hold_for_t2t_vit_t_14(
    reader_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The real architecture with random weights: shapes do not depend on the weights.
    real = t2t_vit.create_model("t2t-vit-t-14").eval()

    def from_pretrained(name: str, **kwargs: Any) -> t2t_vit.T2TViT:
        assert name == "t2t-vit-t-14"
        return real

    monkeypatch.setattr(t2t_vit, "from_pretrained", from_pretrained)
    blocks = code_blocks(PAGE)
    ns = run_blocks(blocks, PAGE, {})
    claimed = shape_comments(blocks)
    assert sorted(claimed) == ["embedding", "last_map", "tokens", "x"]
    assert {var: tuple(ns[var].shape) for var in claimed} == claimed


def _extras() -> dict[str, str]:
    # tomllib is Python 3.11+; the project supports 3.10, and this section is flat.
    text = (ROOT / "pyproject.toml").read_text()
    section = text.split("[project.optional-dependencies]\n", 1)[1].split("\n[", 1)[0]
    return dict(re.findall(r"^(\w+) = (\[.*?\])", section, re.M | re.S))


#: The first install lines of every page that has them: what works today, from a clone.
INSTALL_PAGES = ["README.md", "docs/index.md", PAGE]
FROM_A_CLONE = ["pip install .", 'pip install ".[image]"']
AFTER_THE_RELEASE = '`pip install t2t-vit` and\n`pip install "t2t-vit[image]"`'


@pytest.mark.parametrize("page", INSTALL_PAGES)
def test_first_install_lines_work_from_a_clone_and_the_index_lines_wait_for_the_release(
    page: str,
) -> None:
    lines = code_blocks(page, "bash")[0].splitlines()
    commands = [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]
    assert commands == FROM_A_CLONE
    assert lines[0] == "# in a clone of this repository (t2t-vit is not on PyPI yet)"
    text = (ROOT / page).read_text()
    assert f"Once t2t-vit is released on PyPI, the same installs will be {AFTER_THE_RELEASE}" in (
        text
    )
    # `pip install .` installs this folder's project: the one these pages document.
    assert (ROOT / "pyproject.toml").is_file()


def test_quickstart_install_lines_name_this_package_and_its_extras() -> None:
    assert 'name = "t2t-vit"\n' in (ROOT / "pyproject.toml").read_text()
    extras = _extras()
    assert extras["image"] == '["Pillow>=9.1", "numpy>=1.22"]'
    named = re.findall(r"`t2t-vit\[(\w+)\]`", (ROOT / PAGE).read_text())
    assert named == ["plot", "progress"]
    assert all(extra in extras for extra in named)
