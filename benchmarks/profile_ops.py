#!/usr/bin/env python
"""Where a T2T-ViT forward spends its time: self CPU time per kind of op.

Profiles inference forwards with `torch.profiler` and sums every op's *self* time into
a few kinds: copies (`aten::copy_` and friends that are not dtype conversions, and
`im2col`/padding, which write moved copies), dtype
conversions (copies under `aten::_to_copy`), GEMMs, SDPA, LayerNorm and the rest. The
share of copies and conversions is the figure issue 18 asks about.

    python benchmarks/profile_ops.py                 # t2t-vit-t-14 b8: fp32, autocast, bf16
    python benchmarks/profile_ops.py --models t2t-vit-14 --batch 8 --precisions fp32
    python benchmarks/profile_ops.py --quick         # tiny, for CI
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import t2t_vit

#: fp32: fp32 weights and input; bf16-autocast: fp32 weights under `torch.autocast`;
#: bf16: `model.to(torch.bfloat16)` with a bf16 input.
PRECISIONS = ("fp32", "bf16-autocast", "bf16")

KINDS = ("copies", "conversions", "gemm", "sdpa", "layer_norm", "other")
# Data movement: copies, and the unfold and padding kernels that write a moved copy.
_COPY_OPS = {
    "aten::copy_",
    "aten::clone",
    "aten::contiguous",
    "aten::_unsafe_view",
    "aten::im2col",
    "aten::constant_pad_nd",
}
_GEMM_OPS = {
    "aten::mm",
    "aten::addmm",
    "aten::bmm",
    "aten::baddbmm",
    "aten::matmul",
    "aten::linear",
    "aten::_addmm_activation",
    "mkldnn::_linear_pointwise",
    "aten::mkldnn_linear",
}


def _is_tensor_cast(event: Any) -> bool:
    # Python scalars in arithmetic are cast as 0-d tensors: no data moves; an
    # `aten::to` that keeps the dtype returns its input and calls no `_to_copy`.
    return event.name == "aten::_to_copy" and bool(event.input_shapes and event.input_shapes[0])


def kind_of(event: Any) -> str:
    """The kind of one profiler event, by its name and whether it runs inside a cast."""
    name = event.name
    if name in _COPY_OPS:
        parent = event.cpu_parent
        while parent is not None:
            if parent.name == "aten::_to_copy":
                return "conversions" if _is_tensor_cast(parent) else "other"
            parent = parent.cpu_parent
        return "copies"
    if name in ("aten::_to_copy", "aten::to"):
        return "conversions" if _is_tensor_cast(event) else "other"
    if name in _GEMM_OPS:
        return "gemm"
    if "scaled_dot_product" in name:
        return "sdpa"
    if "layer_norm" in name:
        return "layer_norm"
    return "other"


#: Who asked for a dtype conversion, by the op it runs under: autocast casts the operands
#: of the ops on its lists; a mixed-dtype `add` or `cat` promotes its bf16 operand (the
#: bf16 branch into the fp32 residual stream); anything else is the library's own.
CONVERSION_ORIGINS = ("autocast", "type promotion", "library")
_AUTOCAST_PARENTS = _GEMM_OPS | {"aten::conv2d", "aten::convolution"}
_PROMOTING_PARENTS = {"aten::add", "aten::add_", "aten::cat", "aten::sub", "aten::mul"}


def conversion_origin(event: Any) -> str:
    """Which of `CONVERSION_ORIGINS` one `aten::_to_copy` tensor cast comes from."""
    parent = event.cpu_parent
    while parent is not None and parent.name in ("aten::to", "aten::_to_copy"):
        parent = parent.cpu_parent
    if parent is not None and parent.name in _AUTOCAST_PARENTS:
        return "autocast"
    if parent is not None and parent.name in _PROMOTING_PARENTS:
        return "type promotion"
    return "library"


def profile_forward(run: Callable[[], Any], forwards: int) -> dict[str, Any]:
    """Self CPU milliseconds per kind and per op (per forward), plus copy calls and shapes."""
    from torch.profiler import ProfilerActivity, profile

    run()  # warm-up: caches (position tables, oneDNN primitives) are not the forward's
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        for _ in range(forwards):
            run()
    kinds = dict.fromkeys(KINDS, 0.0)
    ops: dict[str, float] = {}
    copies: dict[str, list[float]] = {}
    origins = {o: {"calls": 0.0, "ms": 0.0} for o in CONVERSION_ORIGINS}
    for e in prof.events():
        ms = e.self_cpu_time_total / 1000 / forwards
        if _is_tensor_cast(e):
            origin = origins[conversion_origin(e)]
            origin["calls"] += 1 / forwards
            origin["ms"] += e.cpu_time_total / 1000 / forwards  # the cast and its copy
        kind = kind_of(e)
        kinds[kind] += ms
        ops[e.name] = ops.get(e.name, 0.0) + ms
        if kind in ("copies", "conversions") and e.name == "aten::copy_" and ms > 0:
            shape = str(e.input_shapes[0]) if e.input_shapes else "?"
            entry = copies.setdefault(f"{kind} {shape}", [0.0, 0.0])
            entry[0] += ms
            entry[1] += 1 / forwards
    total = sum(kinds.values())
    top_copies = sorted(copies.items(), key=lambda kv: -kv[1][0])[:8]
    return {
        "total_ms": total,
        "kinds_ms": kinds,
        "share": {k: v / total for k, v in kinds.items()} if total else {},
        "copy_and_conversion_share": (kinds["copies"] + kinds["conversions"]) / total
        if total
        else 0.0,
        "top_ops_ms": dict(sorted(ops.items(), key=lambda kv: -kv[1])[:12]),
        "top_copies": [{"what": k, "ms": v[0], "calls": v[1]} for k, v in top_copies],
        "conversions_by_origin": origins,
    }


def runner(model: nn.Module, x: Tensor, precision: str) -> Callable[[], Any]:
    """One inference forward in the given precision (the model is converted in place)."""
    if precision == "bf16":
        model.to(torch.bfloat16)
        x = x.to(torch.bfloat16)
    else:
        model.float()
    ctx: Callable[[], Any] = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if precision == "bf16-autocast"
        else nullcontext
    )

    def run() -> Any:
        with torch.inference_mode(), ctx():
            return model(x)

    return run


def markdown(results: list[dict[str, Any]]) -> str:
    lines = [
        "| model | batch | precision | ms/forward | copies | conversions | copies+conv | "
        "GEMM | SDPA | LayerNorm | other |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in results:
        p = r["profile"]
        s = p["share"]
        lines.append(
            f"| {r['model']} | {r['batch']} | {r['precision']} | {p['total_ms']:.0f} | "
            f"{s['copies']:.1%} | {s['conversions']:.1%} | "
            f"{p['copy_and_conversion_share']:.1%} | {s['gemm']:.1%} | {s['sdpa']:.1%} | "
            f"{s['layer_norm']:.1%} | {s['other']:.1%} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="presets (t2t-vit-t-14)")
    p.add_argument("--img-size", type=int, default=None, help="input side (224)")
    p.add_argument("--batch", type=int, default=None, help="batch size (8)")
    p.add_argument("--precisions", nargs="+", choices=PRECISIONS, default=list(PRECISIONS))
    p.add_argument("--forwards", type=int, default=None, help="profiled forwards (2)")
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: stable shares)")
    p.add_argument("--depth", type=int, default=None, help="override the presets' block count")
    p.add_argument("--quick", action="store_true", help="tiny sizes (CI)")
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = p.parse_args(argv)
    quick = dict(models=["t2t-vit-t-14", "t2t-vit-14"], img_size=32, batch=2, forwards=1, depth=2)
    full = dict(models=["t2t-vit-t-14"], img_size=224, batch=8, forwards=2, depth=None)
    for k, v in (quick if args.quick else full).items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    torch.set_num_threads(args.threads)
    results = []
    for name in args.models:
        torch.manual_seed(0)
        overrides: dict[str, Any] = {"img_size": args.img_size}
        if args.depth is not None:
            overrides["depth"] = args.depth
        model = t2t_vit.create_model(name, **overrides).eval()
        x = torch.randn(args.batch, 3, args.img_size, args.img_size)
        for precision in args.precisions:
            start = time.perf_counter()
            prof = profile_forward(runner(model, x, precision), args.forwards)
            print(
                f"[{name} {precision}: {time.perf_counter() - start:.0f} s]",
                file=sys.stderr,
                flush=True,
            )
            results.append(
                {"model": name, "batch": args.batch, "precision": precision, "profile": prof}
            )
    print(markdown(results))
    for r in results:
        origins = r["profile"]["conversions_by_origin"]
        print(
            f"{r['model']} {r['precision']}: conversions per forward by origin: "
            + ", ".join(f"{o} {v['calls']:.0f} calls {v['ms']:.1f} ms" for o, v in origins.items())
        )
    for r in results:
        print(f"{r['model']} {r['precision']}: largest copies (ms/forward, calls)")
        for c in r["profile"]["top_copies"]:
            print(f"  {c['ms']:8.1f} ms  {c['calls']:5.1f}x  {c['what']}")
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"threads": args.threads, "results": results}, indent=2))
    return results


if __name__ == "__main__":
    main()
