"""The benchmark script runs end to end in its quick mode and reports sound figures."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "benchmark.py"


def _run_script(script: str, *args: str, timeout: int) -> subprocess.CompletedProcess[str]:
    """`python benchmarks/<script> <args>` on this source tree, its output captured."""
    return subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / script), *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
        check=False,
        timeout=timeout,
    )


@pytest.fixture(scope="module")
def quick_result(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    out = tmp_path_factory.mktemp("bench")
    done = _run_script(SCRIPT.name, "--quick", "--device", "cpu", "--out", str(out), timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads((out / "results.json").read_text()), out, done.stdout


def _positive(value: Any) -> bool:
    return isinstance(value, float) and math.isfinite(value) and value > 0


def test_quick_benchmark_reports_the_machine(
    quick_result: tuple[dict[str, Any], Path, str],
) -> None:
    result, _, _ = quick_result
    machine = result["machine"]
    assert machine["torch"] == torch.__version__
    assert machine["threads"] == 1  # quick mode pins one thread
    assert machine["cpu_count"] == os.cpu_count()
    assert isinstance(machine["cpu"], str)
    assert machine["cpu"]
    assert result["baseline"] == "explicit/fp32"
    assert set(machine["cpu_flags"]) == {"avx2", "avx512f", "avx512_bf16", "amx_bf16"}
    assert machine["native_bf16"] in (True, False, None)
    assert set(result["peaks_gflop_per_s"]) == {"fp32", "bf16"}
    assert all(_positive(v) for v in result["peaks_gflop_per_s"].values())


def test_quick_benchmark_covers_every_variant_with_positive_ratios(
    quick_result: tuple[dict[str, Any], Path, str],
) -> None:
    result, _, _ = quick_result
    rows = result["throughput"]
    seen = {(r["model"], r["mode"], r["path"], r["dtype"]) for r in rows}
    for model in ("t2t-vit-t-14", "t2t-vit-14"):
        for mode in ("inference", "train"):
            for dtype in ("fp32", "bf16"):
                for path in ("default", "fused", "explicit"):
                    assert (model, mode, path, dtype) in seen
                assert (("t2t-vit-14", mode, "official-performer", dtype) in seen) is True
    assert ("t2t-vit-t-14", "inference", "official-performer", "fp32") not in seen
    # The linear paths: fp32 CPU inference only, where the packed GEMM can run.
    linear = {(m, mode, p, d) for (m, mode, p, d) in seen if p in ("packed", "unpacked")}
    assert linear == {
        (m, "inference", p, "fp32")
        for m in ("t2t-vit-t-14", "t2t-vit-14")
        for p in ("packed", "unpacked")
    }
    for r in rows:
        assert r["img_size"] == 32
        assert r["batch"] == 2
        assert len(r["seconds"]) == 1
        assert _positive(r["images_per_s"])
        assert _positive(r["speedup_vs_explicit_fp32"])
        assert _positive(r["gflop_per_s"])
        peak = result["peaks_gflop_per_s"][r["dtype"]]
        assert r["fraction_of_peak"] == pytest.approx(r["gflop_per_s"] / peak)
        assert r["images_per_s"] == pytest.approx(2 / r["median_s"])
        if (r["path"], r["dtype"]) == ("explicit", "fp32"):
            assert r["speedup_vs_explicit_fp32"] == 1.0


def test_quick_benchmark_measures_memory_stem_accuracy_and_kernels(
    quick_result: tuple[dict[str, Any], Path, str],
) -> None:
    result, _, _ = quick_result
    memory = result["memory"]
    assert {(m["model"], m["path"]) for m in memory} == {
        ("t2t-vit-t-14", "fused"),
        ("t2t-vit-t-14", "explicit"),
        ("t2t-vit-14", "fused"),
        ("t2t-vit-14", "explicit"),
        ("t2t-vit-14", "official-performer"),
        *((m, p) for m in ("t2t-vit-t-14", "t2t-vit-14") for p in ("packed", "unpacked")),
    }
    for m in memory:
        assert _positive(m["peak_mib"])
        assert _positive(m["fraction_of_explicit_fp32"])
    groups = {tuple(g["key"]): g for g in result["groups"]}
    stem = groups[("t2t-vit-14", 32, 2, "inference", False)]["stem"]
    assert set(stem) == {"fp32", "bf16"}
    assert all(_positive(s["speedup"]) for s in stem.values())
    assert "stem" not in groups[("t2t-vit-t-14", 32, 2, "inference", False)]
    for key in (
        ("t2t-vit-t-14", 32, 2, "inference", False),
        ("t2t-vit-14", 32, 2, "inference", False),
    ):
        accuracy = groups[key]["accuracy"]
        assert accuracy["fused_vs_explicit_fp32_max_abs"] < 1e-5
        assert accuracy["packed_vs_unpacked_fp32_max_abs"] < 1e-5
        assert 0 < accuracy["bf16_vs_fp32_max_abs"] < 0.05
        # The fused forward dispatches to SDPA's CPU flash kernel in both precisions.
        for kernels in groups[key]["sdpa_backends"].values():
            assert kernels == ["aten::_scaled_dot_product_flash_attention_for_cpu"]


def test_quick_benchmark_writes_table_and_plot(
    quick_result: tuple[dict[str, Any], Path, str],
) -> None:
    result, out, stdout = quick_result
    table = (out / "results.md").read_text()
    assert table in stdout
    assert "| t2t-vit-14 | 32 | 2 | inference | official-performer | fp32 |" in table
    assert "Matmul peaks, same run (GFLOP/s): fp32 " in table
    assert result["plot"] == "results.png"
    assert (out / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The quick configuration covers none of the 224px targets; it does compare the
    # default path with the faster forced path in every group and dtype.
    targets = result["targets"]
    assert len(targets) == 2 * 2 * 2
    assert all("default path >= 0.95x the faster forced path" in t["target"] for t in targets)
    assert all(_positive(t["value"]) for t in targets)


def test_quick_profile_splits_the_forward_into_kinds(tmp_path: Path) -> None:
    out = tmp_path / "profile.json"
    done = _run_script("profile_ops.py", "--quick", "--out", str(out), timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())["results"]
    assert [(r["model"], r["precision"]) for r in results] == [
        (m, p) for m in ("t2t-vit-t-14", "t2t-vit-14") for p in ("fp32", "bf16-autocast", "bf16")
    ]
    for r in results:
        prof = r["profile"]
        assert prof["total_ms"] > 0
        assert sum(prof["kinds_ms"].values()) == pytest.approx(prof["total_ms"])
        assert prof["kinds_ms"]["gemm"] > 0
        share = prof["copy_and_conversion_share"]
        assert share == pytest.approx(prof["share"]["copies"] + prof["share"]["conversions"])
        # A bf16 model converts only inside the Performer kernel; fp32 converts nothing.
        if r["precision"] == "fp32":
            assert prof["kinds_ms"]["conversions"] == 0
        # Who converts: under autocast, autocast itself, the promotion of each bf16 branch
        # into the fp32 residual stream (2 per block, depth 2, and the class-token `cat`),
        # and the library only in the Performer's fp32 kernel (k, q, v in and y out, per
        # T2T layer); a bf16 model only in that kernel.
        calls = {o: round(v["calls"]) for o, v in prof["conversions_by_origin"].items()}
        performer = 8 if r["model"] == "t2t-vit-14" else 0
        if r["precision"] == "bf16-autocast":
            assert calls["autocast"] > 0
            assert calls["type promotion"] == 2 * 2 + 1
            assert calls["library"] == performer
        else:
            assert calls == {
                "autocast": 0,
                "type promotion": 0,
                "library": performer * (r["precision"] == "bf16"),
            }
    assert "| t2t-vit-14 | 2 | bf16 |" in done.stdout


@pytest.mark.slow
def test_gpu_script_runs_its_steps_in_dry_mode(tmp_path: Path) -> None:
    # No GPU in CI: --dry runs the same benchmark steps on the CPU at toy sizes.
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "PYTHON": sys.executable}
    done = subprocess.run(
        ["bash", str(ROOT / "benchmarks" / "gpu.sh"), "--dry", str(tmp_path)],
        capture_output=True,
        text=True,
        env=env,
        check=False,
        timeout=900,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "== compile: skipped in --dry" in done.stderr
    eager = json.loads((tmp_path / "eager" / "results.json").read_text())
    seen = {(r["batch"], r["path"], r["dtype"]) for r in eager["throughput"]}
    # --dry runs on the CPU, so the fp32 linear paths (CPU only) come with it.
    assert seen == {
        (b, p, d)
        for b in (1, 2)
        for p in ("default", "fused", "explicit")
        for d in ("fp32", "bf16", "fp16")
    } | {(b, p, "fp32") for b in (1, 2) for p in ("packed", "unpacked")}
    memory = json.loads((tmp_path / "memory" / "results.json").read_text())["memory"]
    paths = {"fused", "explicit", "packed", "unpacked"}
    assert {(m["batch"], m["path"]) for m in memory} == {(2, p) for p in paths}
    assert all(_positive(m["peak_mib"]) for m in memory)


def test_official_code_script_runs_a_checkout_through_its_timm_stand_ins(tmp_path: Path) -> None:
    # A stand-in checkout: `models/t2t_vit.py` imports the three timm 0.3.4 helpers the
    # official code imports, and builds the network with the library (no official code here).
    models = tmp_path / "checkout" / "models"
    models.mkdir(parents=True)
    (models / "__init__.py").write_text("from .t2t_vit import *\n")
    (models / "t2t_vit.py").write_text(
        "from timm.models.helpers import load_pretrained\n"
        "from timm.models.registry import register_model\n"
        "from timm.models.layers import DropPath, trunc_normal_\n"
        "import torch, t2t_vit\n"
        "@register_model\n"
        "def t2t_vit_7(img_size=224):\n"
        "    assert DropPath(0.5).eval()(torch.ones(2)).tolist() == [1.0, 1.0]\n"
        "    return t2t_vit.create_model('t2t-vit-7', img_size=img_size)\n"
    )
    out = tmp_path / "official.json"
    args = ["--official-root", str(tmp_path / "checkout"), "--models", "t2t-vit-7"]
    args += ["--batch", "1", "--img-size", "32", "--rounds", "2", "--out", str(out)]
    done = _run_script("official_code.py", *args, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    (row,) = json.loads(out.read_text())["rows"]
    assert row["max_abs_logit_diff"] == 0.0
    assert {len(s) for s in row["seconds"].values()} == {2}
    assert row["default_vs_official"] == pytest.approx(
        row["median_s"]["official"] / row["median_s"]["default"]
    )
    assert "t2t-vit-7 b1 fp32 1 thread(s): library" in done.stdout
    missing = _run_script("official_code.py", "--official-root", str(tmp_path), timeout=300)
    assert missing.returncode != 0
    assert f"--official-root {tmp_path}: no models/t2t_vit.py there" in missing.stderr
