#!/usr/bin/env python
"""Batch-1 latency of the deployment paths, side by side in one process.

Paths, each on the same weights and input, timed with their repeats interleaved:

- `eager`: the model as shipped (per-layer attention default), fp32, `inference_mode`;
- `compile`: `torch.compile` (inductor) with `torch._inductor.config.freezing = True`,
  which folds the weights into the graph as constants and lets inductor pre-pack them
  for oneDNN;
- `onnxruntime`: `torch.onnx.export(dynamo=True)` run by ONNX Runtime's CPU provider,
  with as many intra-op threads as torch uses;
- `int8`: `torch.ao.quantization.quantize_dynamic` on every `nn.Linear` except the
  stem's projection (`tokens_to_token.project`), which stays fp32.

Each row gives the median milliseconds, the ratio to eager and the largest logit
difference to eager fp32.

    python benchmarks/latency.py                    # t2t-vit-7 and t2t-vit-t-14, 224px, b1
    python benchmarks/latency.py --paths eager int8 # a subset
    python benchmarks/latency.py --quick            # tiny model, eager/onnxruntime/int8 (CI)
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import t2t_vit

PATHS = ("eager", "compile", "onnxruntime", "int8")


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def build_model(name: str, img_size: int, depth: int | None) -> nn.Module:
    torch.manual_seed(0)
    overrides: dict[str, Any] = {"img_size": img_size}
    if depth is not None:
        overrides["depth"] = depth
    return t2t_vit.create_model(name, **overrides).eval()


def int8_model(model: nn.Module) -> nn.Module:
    """Dynamic int8 on the linears; the stem projection stays fp32 (issue 18)."""
    from torch.ao.quantization import default_dynamic_qconfig, quantize_dynamic

    spec: dict[str | type[nn.Module], Any] = {
        name: default_dynamic_qconfig
        for name, m in model.named_modules()
        if isinstance(m, nn.Linear) and name != "tokens_to_token.project"
    }
    return quantize_dynamic(model, qconfig_spec=spec, dtype=torch.qint8, inplace=False)


def compiled_model(model: nn.Module) -> Callable[[Tensor], Tensor]:
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True
    return torch.compile(model, backend="inductor")  # type: ignore[return-value]


def onnx_runner(model: nn.Module, x: Tensor, folder: Path) -> Callable[[Tensor], Tensor]:
    import onnxruntime as ort

    path = folder / "model.onnx"
    torch.onnx.export(
        model, (x,), str(path), dynamo=True, opset_version=18,
        input_names=["image"], output_names=["logits"],
    )  # fmt: skip
    options = ort.SessionOptions()
    options.intra_op_num_threads = torch.get_num_threads()
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(batch: Tensor) -> Tensor:
        (logits,) = session.run(None, {"image": batch.numpy()})
        return torch.from_numpy(logits)

    return run


def measure(args: argparse.Namespace, name: str, folder: Path) -> list[dict[str, Any]]:
    model = build_model(name, args.img_size, args.depth)
    x = torch.randn(args.batch, 3, args.img_size, args.img_size)
    runners: dict[str, Callable[[Tensor], Tensor]] = {}
    for path in args.paths:
        start = time.perf_counter()
        if path == "eager":
            runners[path] = model
        elif path == "compile":
            runners[path] = compiled_model(model)
        elif path == "onnxruntime":
            runners[path] = onnx_runner(model, x, folder)
        elif path == "int8":
            runners[path] = int8_model(model)
        with torch.inference_mode():
            runners[path](x)  # warm-up; for compile this is the compilation
        log(f"{name} {path}: ready in {time.perf_counter() - start:.0f} s")
    with torch.inference_mode():
        reference = model(x)
        times: dict[str, list[float]] = {p: [] for p in runners}
        outputs: dict[str, Tensor] = {}
        for _ in range(args.repeats):
            for path, run in runners.items():
                start = time.perf_counter()
                outputs[path] = run(x)
                times[path].append(time.perf_counter() - start)
    eager = statistics.median(times["eager"]) if "eager" in times else None
    rows = []
    for path, ts in times.items():
        med = statistics.median(ts)
        rows.append(
            {
                "model": name,
                "img_size": args.img_size,
                "batch": args.batch,
                "path": path,
                "seconds": ts,
                "median_ms": med * 1000,
                "speedup_vs_eager": eager / med if eager else None,
                "max_abs_logit_diff": (outputs[path].float() - reference).abs().max().item(),
            }
        )
    return rows


def markdown(rows: list[dict[str, Any]], machine: str) -> str:
    lines = [
        machine,
        "",
        "| model | batch | path | ms | x eager | max logit diff |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ratio = r["speedup_vs_eager"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['path']} | {r['median_ms']:.1f} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {r['max_abs_logit_diff']:.1e} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="(t2t-vit-7 t2t-vit-t-14)")
    p.add_argument("--paths", nargs="+", choices=PATHS, default=None, help="(all)")
    p.add_argument("--img-size", type=int, default=None, help="input side (224)")
    p.add_argument("--batch", type=int, default=1, help="batch size (1)")
    p.add_argument("--depth", type=int, default=None, help="override the presets' block count")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per path (20)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (torch's default)")
    p.add_argument("--quick", action="store_true", help="tiny model, no compile (CI)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = p.parse_args(argv)
    quick = dict(
        models=["t2t-vit-7"], paths=["eager", "onnxruntime", "int8"], img_size=32, depth=1,
        repeats=2,
    )  # fmt: skip
    full = dict(models=["t2t-vit-7", "t2t-vit-t-14"], paths=list(PATHS), img_size=224, repeats=20)
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    from t2t_vit.layers.precision import cpu_flags

    flags = cpu_flags() or frozenset()
    cpu = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "unknown CPU",
    ) if Path("/proc/cpuinfo").exists() else "unknown CPU"  # fmt: skip
    kind = ", ".join(f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags)
    threads = torch.get_num_threads()
    machine = f"Machine: {cpu} ({kind}), {threads} threads, torch {torch.__version__}"
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in args.models:
            rows += measure(args, name, Path(tmp))
            log(f"{name} measured")  # each model's rows as soon as they exist
            print(markdown([r for r in rows if r["model"] == name], machine), flush=True)
    if len(args.models) > 1:
        print(markdown(rows, machine))
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"machine": machine, "rows": rows}, indent=2))
    return rows


if __name__ == "__main__":
    main()
