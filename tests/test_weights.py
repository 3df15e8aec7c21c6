"""The weight registry: entries, name resolution, Hub org and the model zoo table."""

from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import pytest
from conftest import OFFICIAL_PRESETS

import t2t_vit
from t2t_vit.weights.registry import CIFAR_MEAN, CIFAR_STD, _default_for

ROOT = Path(__file__).parents[1]
ZOO_START, ZOO_END = "<!-- zoo-table:start -->\n", "<!-- zoo-table:end -->"


def test_registry_covers_every_released_checkpoint() -> None:
    assert t2t_vit.list_pretrained() == [
        "t2t-vit-7.official",
        "t2t-vit-10.official",
        "t2t-vit-12.official",
        "t2t-vit-14.official",
        "t2t-vit-19.official",
        "t2t-vit-24.official",
        "t2t-vit-14-384.official",
        "t2t-vit-24.token-labeling",
        "t2t-vit-t-14.official",
        "t2t-vit-t-19.official",
        "t2t-vit-t-24.official",
        "t2t-vit-14.cifar10",
        "t2t-vit-14.cifar100",
        "t2t-vit-19.cifar10",
        "t2t-vit-19.cifar100",
        "t2t-vit-t-14.mmpretrain",
        "t2t-vit-t-19.mmpretrain",
        "t2t-vit-t-24.mmpretrain",
    ]
    assert t2t_vit.list_pretrained("cifar") == [
        "t2t-vit-14.cifar10",
        "t2t-vit-14.cifar100",
        "t2t-vit-19.cifar10",
        "t2t-vit-19.cifar100",
    ]


@pytest.mark.parametrize("name", list(t2t_vit.WEIGHTS))
def test_entry_urls_and_top1_match_the_source_file_names(name: str) -> None:
    w = t2t_vit.WEIGHTS[name]
    if w.source == "official":
        assert w.url.startswith(
            "https://github.com/yitu-opensource/T2T-ViT/releases/download/main/"
        )
        assert w.license == "bsd-3-clause-clear"
        # The official files carry their top-1 in the name (`81.5_T2T_ViT_14.pth.tar`).
        assert re.search(rf"(^|_){w.top1:.1f}(_|\.pth)", w.file_name)
    else:
        assert w.url.startswith("https://download.openmmlab.com/mmclassification/v0/t2t-vit/")
        assert w.license == "apache-2.0"
        assert w.file_name.startswith(w.preset + "_8xb64_in1k_")


@pytest.mark.parametrize("name", list(t2t_vit.WEIGHTS))
def test_params_and_macs_equal_the_official_counts(name: str) -> None:
    w = t2t_vit.WEIGHTS[name]
    ref = OFFICIAL_PRESETS[w.preset.removesuffix("-384").replace("-", "_")]
    dim = t2t_vit.PRESETS[w.preset]["embed_dim"]
    head_params = (1000 - w.num_classes) * (dim + 1)
    grid_params = ((w.img_size // 16) ** 2 - 196) * dim
    assert w.params == ref["params"] - head_params + grid_params
    if w.img_size == 224:
        assert w.macs == ref["macs_224"] - (1000 - w.num_classes) * dim


@pytest.mark.slow
def test_384_macs_are_this_librarys_count() -> None:
    w = t2t_vit.WEIGHTS["t2t-vit-14-384.official"]
    model = t2t_vit.create_model(w.preset)
    assert t2t_vit.count_macs(model, 384) == w.macs


def test_top5_is_only_stored_where_the_source_reports_it() -> None:
    top5 = {n: w.top5 for n, w in t2t_vit.WEIGHTS.items() if w.top5 is not None}
    assert top5 == {
        "t2t-vit-14.official": 95.666,
        "t2t-vit-t-14.mmpretrain": 95.84,
        "t2t-vit-t-19.mmpretrain": 96.18,
        "t2t-vit-t-24.mmpretrain": 96.09,
    }


def test_cifar_weights_carry_their_own_preprocessing_and_labels() -> None:
    w = t2t_vit.get_weights("t2t-vit-19.cifar100")
    cfg = w.pretrained_cfg()
    assert (w.num_classes, w.model_args()["num_classes"]) == (100, 100)
    assert cfg["labels"] == "cifar-100"
    assert (tuple(cfg["mean"]), tuple(cfg["std"])) == (CIFAR_MEAN, CIFAR_STD)
    assert (cfg["input_size"], cfg["crop_pct"], cfg["interpolation"]) == (
        [3, 224, 224],
        1.0,
        "bilinear",
    )
    assert cfg["metrics"] == {"top1": 89.0, "top5": None, "dataset": "cifar-100"}


def test_imagenet_weights_use_the_official_eval_preprocessing() -> None:
    cfg = t2t_vit.get_weights("t2t-vit-14-384").pretrained_cfg()
    assert cfg["input_size"] == [3, 384, 384]
    assert (cfg["crop_pct"], cfg["interpolation"], cfg["labels"]) == (0.9, "bicubic", "imagenet-1k")
    assert cfg["mean"] == [0.485, 0.456, 0.406]
    assert cfg["source"]["file_name"] == "83.3_T2T_ViT_14.pth.tar"


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("t2t-vit-t-14", "t2t-vit-t-14.mmpretrain"),
        ("T2T_ViT_t_19", "t2t-vit-t-19.mmpretrain"),
        ("t2t-vit-14", "t2t-vit-14.official"),
        # Token labeling's 84.2 may need an auxiliary head this library does not build.
        ("t2t-vit-24", "t2t-vit-24.official"),
        ("t2t-vit-14-384", "t2t-vit-14-384.official"),
        ("t2t-vit-t-14.official", "t2t-vit-t-14.official"),
        ("T2T_ViT_14.cifar10", "t2t-vit-14.cifar10"),
    ],
)
def test_names_resolve_to_best_accuracy_or_tagged_weights(name: str, expected: str) -> None:
    assert t2t_vit.get_weights(name).name == expected


def test_default_weights_are_the_best_eligible_imagenet_top1_of_each_preset() -> None:
    for preset in {w.preset for w in t2t_vit.WEIGHTS.values()}:
        default = _default_for(preset)
        assert default is not None
        same = [w for w in t2t_vit.WEIGHTS.values() if w.preset == preset and w.may_be_default]
        assert default.top1 == max(w.top1 for w in same if w.labels == "imagenet-1k")
    assert [w.name for w in t2t_vit.WEIGHTS.values() if not w.may_be_default] == [
        "t2t-vit-24.token-labeling"
    ]


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(ValueError, match=r"^unknown pretrained model") as err:
        t2t_vit.get_weights("t2t-vit-15")
    known = (
        "t2t-vit-7, t2t-vit-10, t2t-vit-12, t2t-vit-14, t2t-vit-19, t2t-vit-24, t2t-vit-t-14, "
        "t2t-vit-t-19, t2t-vit-t-24, t2t-vit-14-384, " + ", ".join(t2t_vit.WEIGHTS)
    )
    assert str(err.value) == (
        f"unknown pretrained model 't2t-vit-15' (did you mean 't2t-vit-19'?); known: {known}"
    )
    with pytest.raises(
        ValueError,
        match=r"^unknown pretrained model 't2t-vit-14.foo' \(t2t-vit-14 has t2t-vit-14.official, ",
    ):
        t2t_vit.get_weights("t2t-vit-14.foo")


def test_preset_without_released_weights_says_so() -> None:
    with pytest.raises(ValueError, match=r"^no pretrained weights") as err:
        t2t_vit.get_weights("t2t-vit-14-wide")
    assert str(err.value) == (
        "no pretrained weights for preset 't2t-vit-14-wide'; presets with weights: t2t-vit-7, "
        "t2t-vit-10, t2t-vit-12, t2t-vit-14, t2t-vit-19, t2t-vit-24, t2t-vit-t-14, t2t-vit-t-19, "
        "t2t-vit-t-24, t2t-vit-14-384 (build it untrained with t2t_vit.create_model)"
    )


def test_hub_org_is_overridable_by_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    w = t2t_vit.get_weights("t2t-vit-t-14")
    monkeypatch.delenv(t2t_vit.HUB_ORG_ENV, raising=False)
    assert w.hub_repo_id == "t2t-vit/t2t-vit-t-14.mmpretrain"
    monkeypatch.setenv("T2T_VIT_HUB_ORG", "my-mirror")
    assert w.hub_repo_id == "my-mirror/t2t-vit-t-14.mmpretrain"


def _embedded_table(path: Path) -> str:
    text = path.read_text()
    return text.split(ZOO_START, 1)[1].split(ZOO_END, 1)[0]


@pytest.mark.parametrize("page", ["docs/weights.md", "README.md"])
def test_embedded_zoo_table_is_the_rendered_registry(page: str) -> None:
    assert _embedded_table(ROOT / page) == t2t_vit.render_zoo_table()


def test_zoo_table_rows_show_the_registry_figures() -> None:
    rows = t2t_vit.render_zoo_table().splitlines()
    assert rows[0] == (
        "| name | T2T | dataset | input | top-1 | top-5 | params (M) | MACs (G) | source "
        "| license | Hub id |"
    )
    assert len(rows) == 2 + len(t2t_vit.WEIGHTS)
    assert rows[5] == (
        "| `t2t-vit-14.official` (`t2t-vit-14`) | performer | imagenet-1k | 224 | 81.5 | "
        "95.666 | 21.5 | 4.78 | [official: `81.5_T2T_ViT_14.pth.tar`](https://github.com/"
        "yitu-opensource/T2T-ViT/releases/download/main/81.5_T2T_ViT_14.pth.tar) | "
        "bsd-3-clause-clear | `t2t-vit/t2t-vit-14.official` |"
    )
    assert rows[-1] == (
        "| `t2t-vit-t-24.mmpretrain` (`t2t-vit-t-24`) | transformer | imagenet-1k | 224 | "
        "82.71 | 96.09 | 64.1 | 14.97 | [mmpretrain: `t2t-vit-t-24_8xb64_in1k_20211214-"
        "b2a68ae3.pth`](https://download.openmmlab.com/mmclassification/v0/t2t-vit/"
        "t2t-vit-t-24_8xb64_in1k_20211214-b2a68ae3.pth) | apache-2.0 | "
        "`t2t-vit/t2t-vit-t-24.mmpretrain` |"
    )


def test_zoo_table_hub_ids_ignore_the_environment_org(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("T2T_VIT_HUB_ORG", "my-mirror")
    table = t2t_vit.render_zoo_table()
    assert "my-mirror" not in table
    assert table.count("| `t2t-vit/") == len(t2t_vit.WEIGHTS)


def test_sync_script_rewrites_a_stale_table(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = importlib.util.spec_from_file_location(
        "sync_zoo_table", ROOT / "scripts" / "sync_zoo_table.py"
    )
    assert spec is not None
    assert spec.loader is not None
    script = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(script)
    stale = tmp_path / "weights.md"
    stale.write_text(f"# Zoo\n\n{ZOO_START}| old |\n{ZOO_END}\n\nafter\n")
    assert script.main([str(stale), str(stale)]) == 0
    assert capsys.readouterr().out == f"updated {stale}\n{stale} is up to date\n"
    expected = f"# Zoo\n\n{ZOO_START}{t2t_vit.render_zoo_table()}{ZOO_END}\n\nafter\n"
    assert stale.read_text() == expected
