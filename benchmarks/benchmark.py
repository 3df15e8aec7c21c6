#!/usr/bin/env python
"""Throughput and peak memory of T2T-ViT: fused attention against the explicit baseline.

Every comparison runs in one process on one set of weights: the library's fused path
(`F.scaled_dot_product_attention`), the explicit `softmax(q k^T) v` baseline
(`use_fused_attention(model, False)`), in fp32 and under bf16 autocast, with their
repeats interleaved so that drift on a shared machine hits all variants alike. Performer
presets are also run with the official Performer formulation (`.repeat`-based kernel,
the official einsum order) swapped into a copy of the same model.

Peak memory is measured per configuration in a fresh subprocess (see README.md).

    python benchmarks/benchmark.py                 # the full run (see README.md)
    python benchmarks/benchmark.py --quick         # tiny sizes, one repeat (CI)
"""

from __future__ import annotations

import argparse
import copy
import gc
import itertools
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

import t2t_vit
from t2t_vit import T2TModule, TokenPerformer, use_fused_attention, use_packed_linear
from t2t_vit.layers.precision import cpu_flags, cpu_has_native_bf16

DTYPES = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
#: The precisions measured unless `--dtypes` says otherwise (fp16: `--dtypes fp32 fp16`).
DEFAULT_DTYPES = ["fp32", "bf16"]
#: The flags that decide the CPU kind (issue 18): AVX2 only, AVX-512, AVX512_BF16, AMX.
CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16")
#: `use_fused_attention` argument per path: `default` is the per-layer choice.
PATHS = {"default": None, "fused": True, "explicit": False}
#: `use_packed_linear` argument per linear path, with the default attention choice: fp32
#: CPU inference only, where the packed GEMM can run (`default` is the automatic choice).
LINEAR_PATHS = {"packed": True, "unpacked": False}
MODES = ("inference", "train")
#: The baseline every ratio is taken against: explicit attention, fp32, eager.
BASELINE = ("explicit", "fp32")


# -- the official Performer formulation, re-implemented for the comparison ------------


class OfficialFormPerformer(TokenPerformer):
    """`TokenPerformer` computed as the official code does (same weights, same result).

    Written for this benchmark from the official formulation's math; not its code.

    The squared norm is `.repeat`-ed to the feature count before the subtraction, the
    normaliser is `.repeat`-ed to the width before the division, and the products
    go through the official einsum order in the ambient precision.
    """

    def prm_exp(self, x: Tensor) -> Tensor:
        half_sq = (x * x).sum(dim=-1, keepdim=True).repeat(1, 1, self.m) / 2
        projected = torch.einsum("bti,mi->btm", x.float(), self.w)
        return torch.exp(projected - half_sq) / math.sqrt(self.m)

    def single_attn(self, x: Tensor) -> Tensor:
        k, q, v = torch.split(self.kqv(x), self.emb, dim=-1)
        kp, qp = self.prm_exp(k), self.prm_exp(q)
        norm = torch.einsum("bti,bi->bt", qp, kp.sum(dim=1)).unsqueeze(dim=2)
        kptv = torch.einsum("bin,bim->bnm", v, kp)
        y = torch.einsum("bti,bni->btn", qp, kptv) / (norm.repeat(1, 1, self.emb) + self.epsilon)
        out: Tensor = v + self.dp(self.proj(y))
        return out


class OfficialFormT2TModule(T2TModule):
    """`T2TModule` with the official data flow between its layers (same result).

    Each soft split is `nn.Unfold` followed by a transpose to tokens, and the
    tokens are transposed and reshaped back into a `(B, C, h, w)` map before the
    next split, as the official stem does.
    """

    def forward(self, x: Tensor) -> tuple[Tensor, tuple[int, int]]:
        splits = self.soft_splits
        for split, layer in zip(splits, self.attentions, strict=False):
            tokens = layer(split(x).transpose(1, 2))
            side = math.isqrt(tokens.shape[1])
            x = tokens.transpose(1, 2).reshape(tokens.shape[0], tokens.shape[2], side, side)
        tokens = splits[-1](x).transpose(1, 2)
        side = math.isqrt(tokens.shape[1])
        return self.project(tokens), (side, side)


def with_official_performer(model: nn.Module) -> nn.Module:
    """A deep copy of `model` whose T2T stem runs the official Performer formulation, and
    whose linear layers are `F.linear`, as in the official code."""
    twin = copy.deepcopy(model)
    for module in twin.modules():
        if type(module) is TokenPerformer:
            module.__class__ = OfficialFormPerformer
        elif type(module) is T2TModule:
            module.__class__ = OfficialFormT2TModule
    use_packed_linear(twin, False)
    return twin


def has_performer(model: nn.Module) -> bool:
    return any(isinstance(m, TokenPerformer) for m in model.modules())


# -- machine -------------------------------------------------------------------------


def machine_info(device: torch.device) -> dict[str, Any]:
    """CPU model, core count, torch version, threads, and the GPU when there is one."""
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    info: dict[str, Any] = {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "t2t_vit": t2t_vit.__version__,
        "threads": torch.get_num_threads(),
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "mkldnn": torch.backends.mkldnn.is_available(),  # type: ignore[no-untyped-call]
        "device": str(device),
    }
    flags = cpu_flags() or frozenset()
    info["cpu_flags"] = {f: f in flags for f in CPU_FLAGS}
    info["native_bf16"] = cpu_has_native_bf16()
    if device.type == "cuda":
        info["gpu"] = torch.cuda.get_device_name(device)
        info["cuda"] = torch.version.cuda
    return info


def matmul_peak(
    device: torch.device, dtype: str, size: int, repeats: int = 5, budget_s: float = 3.0
) -> float:
    """GFLOP/s of the best of `repeats` square `size` matmuls in `dtype` (no autocast),
    fewer when they exceed `budget_s` (emulated bf16 on an AVX2 CPU takes seconds each)."""
    torch_dtype = DTYPES[dtype] or torch.float32
    a = torch.randn(size, size, device=device).to(torch_dtype)
    b = torch.randn(size, size, device=device).to(torch_dtype)
    torch.mm(a, b)  # warm-up: oneDNN/MKL pick their kernels
    best = math.inf
    spent = 0.0
    for _ in range(repeats):
        sync(device)
        start = time.perf_counter()
        torch.mm(a, b)
        sync(device)
        took = time.perf_counter() - start
        best = min(best, took)
        spent += took
        if spent > budget_s:
            break
    return 2 * size**3 / best / 1e9


# -- measuring -----------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def autocast(device: torch.device, dtype: str) -> Any:
    if DTYPES[dtype] is None:
        return nullcontext()
    return torch.autocast(device_type=device.type, dtype=DTYPES[dtype])


@contextmanager
def attention_path(model: nn.Module, path: str) -> Iterator[None]:
    use_fused_attention(model, PATHS.get(path, True))
    try:
        yield
    finally:
        use_fused_attention(model, None)


def make_step(
    model: nn.Module, runner: Callable[[Tensor], Tensor], mode: str, dtype: str, x: Tensor
) -> Callable[[], Any]:
    """One inference forward, or one training step (forward, loss, backward, SGD step)."""
    device = x.device
    if mode == "inference":

        def infer() -> Any:
            with torch.inference_mode(), autocast(device, dtype):
                return runner(x)

        return infer
    # lr=0 keeps the weights identical for every variant; the update still runs.
    optimizer = torch.optim.SGD([p for p in model.parameters() if p.requires_grad], lr=0.0)
    target = torch.zeros(x.shape[0], dtype=torch.long, device=device)

    def train() -> Any:
        optimizer.zero_grad(set_to_none=True)
        with autocast(device, dtype):
            loss = F.cross_entropy(runner(x).float(), target)
        loss.backward()  # type: ignore[no-untyped-call]
        optimizer.step()
        return loss

    return train


def time_interleaved(
    steps: dict[str, Callable[[], Any]],
    setups: dict[str, Callable[[], None]],
    repeats: int,
    warmup: int,
    device: torch.device,
) -> dict[str, list[float]]:
    """Seconds per call for each step, repeats interleaved round-robin."""
    for name, step in steps.items():
        setups[name]()
        for _ in range(warmup):
            step()
        sync(device)
    times: dict[str, list[float]] = {name: [] for name in steps}
    for _ in range(repeats):
        for name, step in steps.items():
            setups[name]()
            sync(device)
            start = time.perf_counter()
            step()
            sync(device)
            times[name].append(time.perf_counter() - start)
    return times


def sdpa_backends(model: nn.Module, x: Tensor, dtype: str) -> list[str]:
    """The SDPA kernels one fused forward dispatches to, from the profiler's op names."""
    from torch.profiler import ProfilerActivity, profile

    activities = [ProfilerActivity.CPU]
    if x.device.type == "cuda":
        activities.append(ProfilerActivity.CUDA)
    with (
        attention_path(model, "fused"),
        profile(activities=activities) as prof,
        torch.inference_mode(),
        autocast(x.device, dtype),
    ):
        model(x)
        sync(x.device)
    names = {e.name for e in prof.events()}
    return sorted(
        n for n in names if "scaled_dot_product" in n and n != "aten::scaled_dot_product_attention"
    )


# -- peak memory -----------------------------------------------------------------------


def _rss_kib(field: str) -> int | None:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except OSError:
        return None
    return None


def _reset_peak_rss() -> bool:
    # Linux >= 4.0: writing 5 resets VmHWM (the peak RSS) to the current RSS.
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def memory_child(spec: dict[str, Any]) -> dict[str, Any]:
    """Peak memory of one configuration above the ready-to-run state (run in a subprocess)."""
    torch.set_num_threads(spec["threads"])
    device = torch.device(spec["device"])
    model = build(spec["model"], spec["img_size"], device, spec["mode"], spec["depth"])
    if spec["path"] == "official-performer":
        model = with_official_performer(model)
    use_fused_attention(
        model, PATHS.get(spec["path"], None if spec["path"] in LINEAR_PATHS else True)
    )
    if spec["path"] in LINEAR_PATHS:
        use_packed_linear(model, LINEAR_PATHS[spec["path"]])
    x = torch.randn(spec["batch"], 3, spec["img_size"], spec["img_size"], device=device)
    step = make_step(model, model, spec["mode"], spec["dtype"], x)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        base = torch.cuda.memory_allocated(device)
        torch.cuda.reset_peak_memory_stats(device)
        for _ in range(2):
            step()
        torch.cuda.synchronize(device)
        peak = torch.cuda.max_memory_allocated(device) - base
        return {"peak_mib": peak / 2**20, "method": "torch.cuda.max_memory_allocated"}
    import resource

    reset = _reset_peak_rss()
    base_kib = _rss_kib("VmRSS") if reset else None
    if base_kib is None:
        base_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for _ in range(2):
        step()
    peak_kib = _rss_kib("VmHWM") if reset else None
    method = "VmHWM after clear_refs"
    if peak_kib is None:
        peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        method = "ru_maxrss"
    return {"peak_mib": (peak_kib - base_kib) / 1024, "method": method}


def measure_memory(spec: dict[str, Any]) -> dict[str, Any]:
    """Run `memory_child` in a fresh interpreter and return its answer."""
    cmd = [sys.executable, __file__, "--memory-child", json.dumps(spec)]
    done = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"memory subprocess failed for {spec}:\n{done.stderr[-2000:]}")
    answer: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return answer


# -- the run ---------------------------------------------------------------------------


def build(
    name: str, img_size: int, device: torch.device, mode: str, depth: int | None = None
) -> nn.Module:
    torch.manual_seed(0)
    overrides: dict[str, Any] = {"img_size": img_size}
    if depth is not None:
        overrides["depth"] = depth
    model = t2t_vit.create_model(name, **overrides).to(device)
    return model.train() if mode == "train" else model.eval()


def variants_for(
    model: nn.Module, dtypes: list[str], linear_paths: bool = False
) -> list[tuple[str, str]]:
    paths = ["default", "fused", "explicit"]
    paths += ["official-performer"] if has_performer(model) else []
    variants = [(p, d) for d in dtypes for p in paths]
    if linear_paths and "fp32" in dtypes:
        variants += [(p, "fp32") for p in LINEAR_PATHS]
    return variants


def run_group(
    name: str,
    img_size: int,
    batch: int,
    mode: str,
    compiled: bool,
    args: argparse.Namespace,
    device: torch.device,
) -> dict[str, Any]:
    """All variants of one (model, size, batch, mode, compile) group, interleaved."""
    model = build(name, img_size, device, mode, args.depth)
    twin = with_official_performer(model) if has_performer(model) else None
    # The packed GEMM runs in fp32 CPU inference only; each linear path gets its own copy,
    # so switching paths between rounds never repacks a weight.
    linear_paths = mode == "inference" and not compiled and device.type == "cpu"
    copies: dict[str, nn.Module] = {}
    for lpath, packed in LINEAR_PATHS.items() if linear_paths else ():
        copies[lpath] = copy.deepcopy(model)
        use_packed_linear(copies[lpath], packed)
    x = torch.randn(batch, 3, img_size, img_size, device=device)
    runner: Callable[[Tensor], Tensor] = torch.compile(model) if compiled else model
    twin_runner = (torch.compile(twin) if compiled else twin) if twin is not None else None
    steps: dict[str, Callable[[], Any]] = {}
    setups: dict[str, Callable[[], None]] = {}
    for path, dtype in variants_for(model, args.dtypes, linear_paths):
        key = f"{path}/{dtype}"
        if path in copies:
            steps[key] = make_step(copies[path], copies[path], mode, dtype, x)
            setups[key] = lambda: None
        elif path == "official-performer":
            assert twin is not None
            assert twin_runner is not None
            steps[key] = make_step(twin, twin_runner, mode, dtype, x)
            setups[key] = lambda: None
        else:
            steps[key] = make_step(model, runner, mode, dtype, x)
            setups[key] = lambda p=path: use_fused_attention(model, PATHS[p])  # type: ignore[misc]
    times = time_interleaved(steps, setups, args.repeats, args.warmup, device)
    use_fused_attention(model, None)
    rows = []
    base = statistics.median(times["/".join(BASELINE)])
    # A training step is about three forwards: the forward, and twice its FLOPs backward.
    flops = 2 * t2t_vit.count_macs(build(name, img_size, device, "inference", args.depth), img_size)
    flops *= 1 if mode == "inference" else 3
    for key, ts in times.items():
        path, dtype = key.split("/")
        med = statistics.median(ts)
        gflops = batch * flops / med / 1e9
        peak = args.peaks.get(dtype)
        rows.append(
            {
                "model": name,
                "img_size": img_size,
                "batch": batch,
                "mode": mode,
                "compile": compiled,
                "path": path,
                "dtype": dtype,
                "seconds": ts,
                "median_s": med,
                "images_per_s": batch / med,
                "speedup_vs_explicit_fp32": base / med,
                "gflop_per_s": gflops,
                "fraction_of_peak": gflops / peak if peak else None,
            }
        )
    group: dict[str, Any] = {"rows": rows}
    if twin is not None and mode == "inference" and not compiled:
        group["stem"] = stem_ratio(model, twin, x, args, device)
    if mode == "inference" and not compiled:
        group["accuracy"] = accuracy(model, x, with_bf16="bf16" in args.dtypes)
        group["sdpa_backends"] = {d: sdpa_backends(model, x, d) for d in args.dtypes}
    return group


def stem_ratio(
    model: nn.Module, twin: nn.Module, x: Tensor, args: argparse.Namespace, device: torch.device
) -> dict[str, Any]:
    """T2T stem alone: the library's Performer against the official formulation."""
    stems: dict[str, nn.Module] = {
        "library": model.get_submodule("tokens_to_token"),
        "official-performer": twin.get_submodule("tokens_to_token"),
    }
    out: dict[str, Any] = {}
    for dtype in args.dtypes:
        steps = {k: make_step(s, s, "inference", dtype, x) for k, s in stems.items()}
        setups: dict[str, Callable[[], None]] = {k: (lambda: None) for k in stems}
        times = time_interleaved(steps, setups, args.repeats, args.warmup, device)
        lib = statistics.median(times["library"])
        ref = statistics.median(times["official-performer"])
        out[dtype] = {
            "library_s": lib,
            "official_s": ref,
            "speedup": ref / lib,
            "library_images_per_s": x.shape[0] / lib,
            "official_images_per_s": x.shape[0] / ref,
        }
    return out


def accuracy(model: nn.Module, x: Tensor, with_bf16: bool = True) -> dict[str, float | None]:
    """Logit differences: fused vs explicit (fp32), packed vs unpacked linear layers (fp32,
    default attention) and bf16 autocast vs fp32 (fused)."""
    with torch.inference_mode():
        use_packed_linear(model, True)
        packed = model(x).float()
        use_packed_linear(model, False)
        unpacked = model(x).float()
        use_packed_linear(model, None)
        use_fused_attention(model, False)
        explicit = model(x).float()
        use_fused_attention(model, True)
        fused = model(x).float()
        bf16 = None
        if with_bf16:
            with torch.autocast(device_type=x.device.type, dtype=torch.bfloat16):
                bf16 = model(x).float()
        use_fused_attention(model, None)
    return {
        "fused_vs_explicit_fp32_max_abs": (fused - explicit).abs().max().item(),
        "packed_vs_unpacked_fp32_max_abs": (packed - unpacked).abs().max().item(),
        "bf16_vs_fp32_max_abs": None if bf16 is None else (bf16 - fused).abs().max().item(),
        "fp32_logits_max_abs": fused.abs().max().item(),
    }


def memory_rows(args: argparse.Namespace, device: torch.device) -> list[dict[str, Any]]:
    rows = []
    configs = [(b, m) for b in args.batch_sizes for m in args.memory_modes]
    configs += [(b, "inference") for b in args.memory_batch_sizes if b not in args.batch_sizes]
    for name, img_size, (batch, mode) in itertools.product(args.models, args.img_sizes, configs):
        paths = ["fused", "explicit"]
        if t2t_vit.PRESETS[t2t_vit.canonical_name(name)]["tokens_type"] == "performer":
            paths.append("official-performer")
        if mode == "inference" and device.type == "cpu":
            paths += list(LINEAR_PATHS)  # the packed copy of the weights is memory too
        for dtype, path in itertools.product(args.memory_dtypes, paths):
            if path in LINEAR_PATHS and dtype != "fp32":
                continue
            spec = {
                "model": name,
                "img_size": img_size,
                "batch": batch,
                "mode": mode,
                "dtype": dtype,
                "path": path,
                "depth": args.depth,
                "threads": torch.get_num_threads(),
                "device": str(device),
            }
            log(f"memory {name} {img_size}px b{batch} {mode} {dtype} {path}")
            rows.append({**spec, **measure_memory(spec)})
    base: dict[tuple[Any, ...], float] = {}
    for r in rows:
        if (r["path"], r["dtype"]) == BASELINE:
            base[(r["model"], r["img_size"], r["batch"], r["mode"])] = r["peak_mib"]
    for r in rows:
        ref = base[(r["model"], r["img_size"], r["batch"], r["mode"])]
        r["fraction_of_explicit_fp32"] = r["peak_mib"] / ref if ref > 0 else float("nan")
    return rows


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# -- targets and reports -----------------------------------------------------------------


def find(rows: list[dict[str, Any]], **match: Any) -> dict[str, Any] | None:
    for r in rows:
        if all(r.get(k) == v for k, v in match.items()):
            return r
    return None


def check_targets(result: dict[str, Any], args: argparse.Namespace) -> list[dict[str, Any]]:
    """The issue's CPU targets, for whichever of their configurations this run covered."""
    rows, groups, mem = result["throughput"], result["groups"], result["memory"]
    base = dict(model="t2t-vit-t-14", img_size=224, mode="inference", compile=False)
    targets: list[dict[str, Any]] = []
    fused = find(rows, **base, batch=8, path="fused", dtype="fp32")
    if fused:
        targets.append(
            {
                "target": "t2t-vit-t-14 224px b8 inference: fused fp32 >= 1.6x explicit fp32",
                "value": fused["speedup_vs_explicit_fp32"],
                "goal": 1.6,
                "met": fused["speedup_vs_explicit_fp32"] >= 1.6,
            }
        )
    bf16 = find(rows, **base, batch=8, path="fused", dtype="bf16")
    if bf16:
        targets.append(
            {
                "target": "t2t-vit-t-14 224px b8 inference: fused bf16 >= 3.5x explicit fp32",
                "value": bf16["speedup_vs_explicit_fp32"],
                "goal": 3.5,
                "met": bf16["speedup_vs_explicit_fp32"] >= 3.5,
            }
        )
        acc = next(
            (
                g["accuracy"]
                for g in groups
                if g["key"] == ["t2t-vit-t-14", 224, 8, "inference", False]
            ),
            None,
        )
        if acc and acc["bf16_vs_fp32_max_abs"] is not None:
            diff = acc["bf16_vs_fp32_max_abs"]
            targets.append(
                {
                    "target": "t2t-vit-t-14 224px b8: bf16 logits within 0.05 of fp32",
                    "value": diff,
                    "goal": 0.05,
                    "met": diff <= 0.05,
                }
            )
    m = find(
        mem,
        model="t2t-vit-t-14",
        img_size=224,
        batch=32,
        mode="inference",
        path="fused",
        dtype="fp32",
    )
    if m:
        targets.append(
            {
                "target": "t2t-vit-t-14 224px b32 inference fp32: fused peak <= 40% of explicit",
                "value": m["fraction_of_explicit_fp32"],
                "goal": 0.4,
                "met": m["fraction_of_explicit_fp32"] <= 0.4,
            }
        )
    for g in groups:
        if g["key"][0] == "t2t-vit-14" and g["key"][1] == 224 and "stem" in g:
            ratio = g["stem"]["fp32"]["speedup"] if "fp32" in g["stem"] else None
            if ratio is not None:
                targets.append(
                    {
                        "target": f"t2t-vit-14 224px b{g['key'][2]} fp32: Performer stem >= "
                        "1.3x the official formulation",
                        "value": ratio,
                        "goal": 1.3,
                        "met": ratio >= 1.3,
                    }
                )
    for g in groups:
        name, img, batch, mode, compiled = g["key"]
        for dtype in args.dtypes:
            med = {
                p: r["median_s"]
                for p in PATHS
                if (r := find(rows, model=name, img_size=img, batch=batch, mode=mode,
                              compile=compiled, path=p, dtype=dtype))
            }  # fmt: skip
            if len(med) == len(PATHS):
                best = min(med["fused"], med["explicit"])
                targets.append(
                    {
                        "target": f"{name} {img}px b{batch} {mode}"
                        + (" compiled" if compiled else "")
                        + f" {dtype}: default path >= 0.95x the faster forced path",
                        "value": best / med["default"],
                        "goal": 0.95,
                        "met": best / med["default"] >= 0.95,
                    }
                )
    return targets


def markdown(result: dict[str, Any]) -> str:
    mach = result["machine"]
    flags = ", ".join(f"{f} {'yes' if on else 'no'}" for f, on in mach["cpu_flags"].items())
    peaks = ", ".join(f"{d} {v:.3g}" for d, v in result["peaks_gflop_per_s"].items())
    lines = [
        f"Machine: {mach['cpu']}, {mach['cpu_count']} cores, {mach['threads']} torch threads, "
        f"torch {mach['torch']} ({mach['cpu_capability']})"
        + (f", GPU {mach['gpu']}" if "gpu" in mach else ""),
        f"CPU flags: {flags}; native bf16: {mach['native_bf16']}",
        f"Matmul peaks, same run (GFLOP/s): {peaks}",
        "",
        "| model | img | batch | mode | path | dtype | images/s | x explicit fp32 | % peak |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in result["throughput"]:
        frac = r["fraction_of_peak"]
        lines.append(
            f"| {r['model']} | {r['img_size']} | {r['batch']} | "
            f"{r['mode']}{' compiled' if r['compile'] else ''} | {r['path']} | {r['dtype']} | "
            f"{r['images_per_s']:.2f} | {r['speedup_vs_explicit_fp32']:.2f} | "
            f"{'-' if frac is None else f'{100 * frac:.0f}'} |"
        )
    if result["memory"]:
        lines += [
            "",
            "| model | img | batch | mode | path | dtype | peak MiB | x explicit fp32 |",
            "| --- | --- | --- | --- | --- | --- | --- | --- |",
        ]
        for r in result["memory"]:
            lines.append(
                f"| {r['model']} | {r['img_size']} | {r['batch']} | {r['mode']} | {r['path']} | "
                f"{r['dtype']} | {r['peak_mib']:.0f} | {r['fraction_of_explicit_fp32']:.2f} |"
            )
    stems = [g for g in result["groups"] if "stem" in g]
    if stems:
        lines += [
            "",
            "| T2T stem alone | dtype | library images/s | official formulation images/s "
            "| speedup |",
            "| --- | --- | --- | --- | --- |",
        ]
        for g in stems:
            name, img, batch = g["key"][:3]
            for dtype, s in g["stem"].items():
                lines.append(
                    f"| {name} {img}px b{batch} | {dtype} | {s['library_images_per_s']:.2f} | "
                    f"{s['official_images_per_s']:.2f} | {s['speedup']:.2f} |"
                )
    accs = [g for g in result["groups"] if "accuracy" in g]
    if accs:
        lines += [
            "",
            "| logits | fused vs explicit (fp32) | bf16 vs fp32 | max abs fp32 logit "
            "| SDPA kernels |",
            "| --- | --- | --- | --- | --- |",
        ]
        for g in accs:
            a = g["accuracy"]
            kernels = "; ".join(
                f"{d}: {', '.join(k) or '-'}" for d, k in g["sdpa_backends"].items()
            )
            name, img, batch = g["key"][:3]
            bf16 = a["bf16_vs_fp32_max_abs"]
            lines.append(
                f"| {name} {img}px b{batch} | {a['fused_vs_explicit_fp32_max_abs']:.2e} | "
                f"{'-' if bf16 is None else f'{bf16:.2e}'} | {a['fp32_logits_max_abs']:.3f} | "
                f"{kernels} |"
            )
    if result["targets"]:
        lines += ["", "| target | measured | goal | met |", "| --- | --- | --- | --- |"]
        for t in result["targets"]:
            lines.append(
                f"| {t['target']} | {t['value']:.3g} | {t['goal']} | "
                f"{'yes' if t['met'] else 'no'} |"
            )
    return "\n".join(lines) + "\n"


def plot(result: dict[str, Any], path: Path) -> bool:
    """Bar chart of images/s per group and variant; False when matplotlib is missing."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        log('matplotlib is missing, no plot written: pip install "t2t-vit[plot]"')
        return False
    rows = result["throughput"]
    groups = list(
        dict.fromkeys(
            (r["model"], r["img_size"], r["batch"], r["mode"], r["compile"]) for r in rows
        )
    )
    variants = list(dict.fromkeys(f"{r['path']} {r['dtype']}" for r in rows))
    fig, ax = plt.subplots(figsize=(max(6.0, 1.6 * len(groups) + 2), 4.0), dpi=100)
    width = 0.8 / len(variants)
    for i, var in enumerate(variants):
        heights = []
        for g in groups:
            r = find(
                rows,
                model=g[0],
                img_size=g[1],
                batch=g[2],
                mode=g[3],
                compile=g[4],
                path=var.split()[0],
                dtype=var.split()[1],
            )
            heights.append(r["images_per_s"] if r else 0.0)
        ax.bar([j + i * width for j in range(len(groups))], heights, width, label=var)
    labels = [f"{g[0]}\n{g[1]}px b{g[2]} {g[3]}" + (" compiled" if g[4] else "") for g in groups]
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(groups))], labels, fontsize=7)
    ax.set_ylabel("images / s")
    mach = result["machine"]
    where = mach.get("gpu", f"{mach['cpu']}, {mach['threads']} threads")
    ax.set_title(f"T2T-ViT throughput ({where}, torch {mach['torch']})", fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
    return True


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--models", nargs="+", default=None, help="presets (t2t-vit-t-14 t2t-vit-14)")
    p.add_argument("--img-sizes", nargs="+", type=int, default=None, help="input sides (224)")
    p.add_argument("--batch-sizes", nargs="+", type=int, default=None, help="throughput (8)")
    p.add_argument(
        "--memory-batch-sizes",
        nargs="+",
        type=int,
        default=None,
        help="extra batch sizes measured for inference peak memory only (32)",
    )
    p.add_argument("--modes", nargs="+", choices=MODES, default=list(MODES))
    p.add_argument("--dtypes", nargs="+", choices=list(DTYPES), default=DEFAULT_DTYPES)
    p.add_argument("--memory-modes", nargs="+", choices=MODES, default=None, help="(as --modes)")
    p.add_argument(
        "--memory-dtypes", nargs="+", choices=list(DTYPES), default=None, help="(as --dtypes)"
    )
    p.add_argument("--depth", type=int, default=None, help="override the presets' block count")
    p.add_argument("--compile", action="store_true", help="also run torch.compile (inference)")
    p.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    p.add_argument("--repeats", type=int, default=None, help="timed calls per variant (5)")
    p.add_argument("--warmup", type=int, default=None, help="untimed calls per variant (1)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (torch's default)")
    p.add_argument("--device", default="auto", help="auto, cpu or cuda")
    p.add_argument("--quick", action="store_true", help="tiny sizes, one repeat (CI)")
    p.add_argument("--out", type=Path, default=Path("benchmark-results"), help="output folder")
    p.add_argument("--memory-child", default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    cuda = args.device == "cuda" or (args.device == "auto" and torch.cuda.is_available())
    args.device = "cuda" if cuda else "cpu"
    if args.quick:
        defaults: dict[str, Any] = dict(
            models=["t2t-vit-t-14", "t2t-vit-14"],
            img_sizes=[32],
            batch_sizes=[2],
            memory_batch_sizes=[],
            memory_modes=["inference"],
            memory_dtypes=["fp32"],
            depth=2,
            threads=1,
            repeats=1,
            warmup=1,
        )
    else:
        defaults = dict(
            models=["t2t-vit-t-14", "t2t-vit-14"],
            img_sizes=[224],
            batch_sizes=[256] if cuda else [8],
            memory_batch_sizes=[] if cuda else [32],
            memory_modes=args.modes,
            memory_dtypes=args.dtypes,
            repeats=5,
            warmup=1,
        )
    for k, v in defaults.items():
        if getattr(args, k) is None:
            setattr(args, k, v)
    for k in ("repeats", "warmup"):
        if getattr(args, k) < (1 if k == "repeats" else 0):
            p.error(f"--{k} must be >= {1 if k == 'repeats' else 0}, got {getattr(args, k)}")
    for name in args.models:
        try:
            t2t_vit.canonical_name(name)
        except ValueError as err:
            p.error(str(err))
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    args = parse_args(argv)
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    if args.memory_child is not None:
        print(json.dumps(memory_child(json.loads(args.memory_child))))
        return {}
    device = torch.device(args.device)
    size = 256 if args.quick else 1024
    log(f"matmul peaks ({size}x{size})")
    args.peaks = {d: matmul_peak(device, d, size) for d in DEFAULT_DTYPES}
    args.peaks.update({d: matmul_peak(device, d, size) for d in args.dtypes if d not in args.peaks})
    result: dict[str, Any] = {
        "machine": machine_info(device),
        "peaks_gflop_per_s": args.peaks,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        "config": {
            k: v for k, v in vars(args).items() if k not in ("out", "memory_child", "peaks")
        },
        "baseline": "/".join(BASELINE),
        "throughput": [],
        "groups": [],
        "memory": [],
    }
    compiles = [False, True] if args.compile else [False]
    for name, img, batch, mode, compiled in itertools.product(
        args.models, args.img_sizes, args.batch_sizes, args.modes, compiles
    ):
        if compiled and mode == "train":
            continue
        log(f"throughput {name} {img}px b{batch} {mode}{' compiled' if compiled else ''}")
        group = run_group(name, img, batch, mode, compiled, args, device)
        result["throughput"] += group.pop("rows")
        result["groups"].append({"key": [name, img, batch, mode, compiled], **group})
    # Peaks again after the groups: on a shared machine the better of the two is the
    # closer to what the CPU can do (each row's fraction uses it).
    for d, before in list(args.peaks.items()):
        args.peaks[d] = max(before, matmul_peak(device, d, size))
    for row in result["throughput"]:
        gflops, peak = row["gflop_per_s"], args.peaks.get(row["dtype"])
        row["fraction_of_peak"] = gflops / peak if peak else None
    if not args.no_memory:
        result["memory"] = memory_rows(args, device)
    result["targets"] = check_targets(result, args)
    args.out.mkdir(parents=True, exist_ok=True)
    table = markdown(result)
    (args.out / "results.md").write_text(table)
    result["plot"] = "results.png" if plot(result, args.out / "results.png") else None
    (args.out / "results.json").write_text(json.dumps(result, indent=2))
    print(table)
    return result


if __name__ == "__main__":
    main()
