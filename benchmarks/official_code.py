#!/usr/bin/env python
"""The library against the official code itself, side by side in one process.

Needs a local checkout of the official repository (`yitu-opensource/T2T-ViT`); nothing of
it is part of this project. Its `models/` imports three helpers of timm 0.3.4, which no
current timm has: when `--stand-ins` is given (the default), small stand-ins written for
this script answer those imports (weight init, drop path, a no-op model registry); the
official code's own layers run unchanged. Both models get the same weights (the official
model's, converted with `t2t_vit.convert_state_dict`), and their logits are compared.

Timed variants, round-robin, medians: the library as shipped (`default`), the library with
`use_packed_linear(model, False)` (`unpacked`), and the official model.

    python benchmarks/official_code.py --official-root ~/src/T2T-ViT
    python benchmarks/official_code.py --official-root ~/src/T2T-ViT \\
        --models t2t-vit-14 --batch 8 --threads 2 --rounds 9
"""

from __future__ import annotations

import argparse
import copy
import json
import statistics
import sys
import time
import types
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

import t2t_vit

#: Library preset -> the official model function of the same network.
OFFICIAL_FUNCTIONS = {
    "t2t-vit-7": "t2t_vit_7",
    "t2t-vit-10": "t2t_vit_10",
    "t2t-vit-12": "t2t_vit_12",
    "t2t-vit-14": "t2t_vit_14",
    "t2t-vit-19": "t2t_vit_19",
    "t2t-vit-24": "t2t_vit_24",
    "t2t-vit-t-14": "t2t_vit_t_14",
    "t2t-vit-t-19": "t2t_vit_t_19",
    "t2t-vit-t-24": "t2t_vit_t_24",
}


class _DropPath(nn.Module):
    def __init__(self, drop_prob: float = 0.0) -> None:
        super().__init__()
        self.inner = t2t_vit.DropPath(drop_prob)

    def forward(self, x: Tensor) -> Tensor:
        out: Tensor = self.inner(x)
        return out


def install_timm_stand_ins() -> None:
    """Answer `timm.models.{helpers,registry,layers}` imports of the official `models/`."""
    modules = {name: types.ModuleType(name) for name in ("timm", "timm.models")}
    helpers = types.ModuleType("timm.models.helpers")
    registry = types.ModuleType("timm.models.registry")
    layers = types.ModuleType("timm.models.layers")

    def load_pretrained(*_: Any, **__: Any) -> None:
        raise RuntimeError("the timm stand-in loads no weights; this script copies them")

    helpers.load_pretrained = load_pretrained  # type: ignore[attr-defined]
    registry.register_model = lambda fn: fn  # type: ignore[attr-defined]
    layers.trunc_normal_ = nn.init.trunc_normal_  # type: ignore[attr-defined]
    layers.DropPath = _DropPath  # type: ignore[attr-defined]
    modules.update({m.__name__: m for m in (helpers, registry, layers)})
    sys.modules.update(modules)


def load_official(root: Path, stand_ins: bool) -> types.ModuleType:
    """The official `models.t2t_vit` module from a checkout at `root`."""
    if not (root / "models" / "t2t_vit.py").is_file():
        raise SystemExit(f"--official-root {root}: no models/t2t_vit.py there")
    if stand_ins:
        install_timm_stand_ins()
    sys.path.insert(0, str(root))
    import importlib

    return importlib.import_module("models.t2t_vit")


def compare(
    official: types.ModuleType, name: str, batch: int, rounds: int, img: int
) -> dict[str, Any]:
    torch.manual_seed(0)
    ref = getattr(official, OFFICIAL_FUNCTIONS[name])(img_size=img).eval()
    ours = t2t_vit.create_model(name, img_size=img).eval()
    ours.load_state_dict(t2t_vit.convert_state_dict(ref.state_dict(), model=ours), strict=True)
    unpacked = copy.deepcopy(ours)
    t2t_vit.use_packed_linear(unpacked, False)
    x = torch.randn(batch, 3, img, img)
    models = {"default": ours, "unpacked": unpacked, "official": ref}
    times: dict[str, list[float]] = {k: [] for k in models}
    with torch.inference_mode():
        diff = (ours(x) - ref(x)).abs().max().item()
        unpacked(x)
        for _ in range(rounds):
            for key, model in models.items():
                start = time.perf_counter()
                model(x)
                times[key].append(time.perf_counter() - start)
    med = {k: statistics.median(v) for k, v in times.items()}
    return {
        "model": name,
        "batch": batch,
        "threads": torch.get_num_threads(),
        "median_s": med,
        "seconds": times,
        "default_vs_official": med["official"] / med["default"],
        "unpacked_vs_official": med["official"] / med["unpacked"],
        "packed_gain": med["unpacked"] / med["default"],
        "max_abs_logit_diff": diff,
    }


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--official-root", type=Path, required=True, help="a T2T-ViT checkout")
    p.add_argument("--models", nargs="+", choices=list(OFFICIAL_FUNCTIONS), default=None)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--img-size", type=int, default=224)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=7, help="interleaved timed rounds")
    p.add_argument(
        "--no-stand-ins", dest="stand_ins", action="store_false", help="use an installed timm"
    )
    p.add_argument("--out", type=Path, default=None, help="write the JSON here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    official = load_official(args.official_root.expanduser(), args.stand_ins)
    rows = []
    for name in args.models or ["t2t-vit-14", "t2t-vit-t-14"]:
        row = compare(official, name, args.batch, args.rounds, args.img_size)
        rows.append(row)
        print(
            f"{name} b{args.batch} fp32 {args.threads} thread(s): library "
            f"{row['default_vs_official']:.3f}x the official code "
            f"(unpacked linear {row['unpacked_vs_official']:.3f}x), "
            f"max |logit diff| {row['max_abs_logit_diff']:.1e}",
            flush=True,
        )
    if args.out is not None:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps({"rows": rows}, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
