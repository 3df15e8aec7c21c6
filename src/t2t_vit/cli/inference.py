"""`t2t-vit predict | evaluate | info | attention`: using a (pretrained) model."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any

from ..factory import create_model
from ..models.presets import PRESETS, canonical_name
from ..models.t2t_vit import T2TViT
from ..output import check_output_file, write_file
from ..weights.pretrained import from_pretrained
from ..weights.serialization import CONFIG_NAME, WEIGHTS_NAME

__all__ = ["load_model", "register"]

# Keys that decide whether a weights folder holds the architecture `--model` names.
_ARCH_KEYS = ("tokens_type", "embed_dim", "depth", "num_heads", "mlp_ratio")


def load_model(name: str | None, weights: str | None) -> T2TViT:
    """The model a command runs: from `weights` (a `save_pretrained` folder) when given,
    else `from_pretrained(name)` (a preset's published weights or a Hub repository).

    With both, a preset `name` must match the folder's architecture.
    """
    if weights is None:
        if name is None:
            raise ValueError(_NO_MODEL)
        return from_pretrained(name)
    _check_weights_folder(weights)
    if not Path(weights, "config.json").is_file():
        raise FileNotFoundError(
            f"--weights {weights!r} is not a folder written by save_pretrained "
            f"(no config.json in it)"
        )
    model = from_pretrained(weights)
    if name is not None and _is_preset(name):
        preset = PRESETS[canonical_name(name)]
        differ = [
            f"{key}={model.config[key]!r} (preset: {preset.get(key)!r})"
            for key in _ARCH_KEYS
            if key in preset and model.config.get(key) != preset[key]
        ]
        if differ:
            raise ValueError(
                f"the weights in {weights!r} are not a {canonical_name(name)}: {', '.join(differ)}"
            )
    return model


_NO_MODEL = "give --model NAME, or --weights DIR with a saved model"


_EMPTY_NAME = (
    "is empty; give a preset or registry name (e.g. t2t-vit-14) or a Hub repository id (org/name)"
)


def _check_model_args(name: str | None, weights: str | None) -> None:
    if name is None and weights is None:
        raise ValueError(_NO_MODEL)
    # An empty name would load the current folder (Path("") is ".").
    if name is not None and not name.strip():
        raise ValueError(f"--model {_EMPTY_NAME}")


def _check_weights_folder(weights: str) -> None:
    if not weights.strip():
        raise ValueError("--weights is empty; give a folder written by save_pretrained")
    if os.path.isfile(weights):
        raise ValueError(
            f"--weights {weights!r} is a file; it takes a folder written by save_pretrained "
            "(for a checkpoint file run `t2t-vit convert FILE DIR` and pass DIR)"
        )
    if not os.path.exists(weights):
        raise FileNotFoundError(f"--weights {weights!r}: no such folder")


def _looks_like_path(name: str) -> bool:
    # No preset, registry or Hub name starts so or holds two slashes.
    return name.startswith((".", "/", "~")) or name.count("/") > 1


def _image_ending(name: str) -> bool:
    from ..inference.evaluate import IMG_EXTENSIONS

    return os.path.splitext(name)[1].lower() in IMG_EXTENSIONS


def _is_preset(name: str) -> bool:
    try:
        canonical_name(name)
    except ValueError:
        return False
    return True


def _add_model_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--model",
        metavar="NAME",
        help="preset or Hub repository, e.g. t2t-vit-t-14 (downloads its weights unless "
        "--weights is given)",
    )
    parser.add_argument(
        "--weights",
        metavar="DIR",
        help="a folder written by save_pretrained: architecture, preprocessing and weights",
    )


def register(subcommands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Add the predict, evaluate, info and attention subcommands."""
    p = subcommands.add_parser("predict", help="top-k classes of images")
    p.add_argument(
        "images",
        nargs="+",
        metavar="IMAGE",
        help="an image file, or a folder: its images, recursively (symbolic links followed), in "
        "sorted order",
    )
    _add_model_args(p)
    p.add_argument("--top-k", type=int, default=5, metavar="K")
    p.add_argument("--batch-size", type=int, default=32, help="images per forward pass")
    p.add_argument("--json", action="store_true", help="print JSON instead of text")
    p.set_defaults(func=_predict)

    p = subcommands.add_parser("evaluate", help="top-1/top-5 accuracy on an ImageFolder tree")
    p.add_argument("data_dir", metavar="DATA_DIR", help="DATA_DIR/<class>/<image>, classes sorted")
    _add_model_args(p)
    p.add_argument(
        "--top-k", type=int, default=5, metavar="K", help="report top-K accuracy beside top-1"
    )
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--workers", type=int, default=min(8, os.cpu_count() or 1))
    p.add_argument("--limit", type=int, default=None, help="evaluate this many images only")
    p.add_argument("--json", action="store_true", help="print the figures as JSON")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    p.set_defaults(func=_evaluate)

    p = subcommands.add_parser("info", help="architecture, parameters, MACs and weight metrics")
    p.add_argument("name", metavar="NAME", help="preset name or a save_pretrained folder")
    p.add_argument("--weights", metavar="DIR", help="report this saved model's config too")
    p.set_defaults(func=_info)

    p = subcommands.add_parser("attention", help="write an image with its attention rollout")
    p.add_argument("image", metavar="IMAGE")
    _add_model_args(p)
    p.add_argument(
        "--out",
        required=True,
        metavar="PNG",
        help="output image file; an existing one is replaced only with --force, the input never",
    )
    p.add_argument("--force", action="store_true", help="replace an existing --out file")
    p.add_argument("--alpha", type=float, default=0.5, help="weight of the map in the blend")
    p.add_argument("--colormap", default="inferno", help="matplotlib colormap name")
    p.set_defaults(func=_attention)


def _image_arguments(arguments: list[str]) -> list[str]:
    """The image files the IMAGE arguments name: a file as given, a folder as its images."""
    from ..inference.evaluate import IMG_EXTENSIONS, _image_files
    from ..inference.preprocess import missing_image

    images: list[str] = []
    for argument in arguments:
        if os.path.isdir(argument):
            files = _image_files(argument)
            if not files:
                raise ValueError(f"no images ({', '.join(IMG_EXTENSIONS)}) in folder {argument!r}")
            images += [str(path) for path in files]
        elif not os.path.isfile(argument):
            raise missing_image(argument)
        else:
            images.append(argument)
    return images


def _predict(args: argparse.Namespace) -> int:
    if args.top_k < 1:
        raise ValueError(f"--top-k must be at least 1, got {args.top_k}")
    if args.batch_size < 1:
        raise ValueError(f"--batch-size must be at least 1, got {args.batch_size}")
    _check_model_args(args.model, args.weights)
    # Before loading the model: a typo should not cost a download.
    images = _image_arguments(args.images)
    model = load_model(args.model, args.weights)
    payload: list[dict[str, object]] = []
    unreadable: list[str] = []
    for start in range(0, len(images), args.batch_size):
        chunk = images[start : start + args.batch_size]
        # One unreadable image must not cost the others' results: its batch is run again
        # image by image, and it is named at the end.
        for image, preds in _predict_chunk(model, chunk, args.top_k, unreadable):
            if args.json:
                payload.append(
                    {
                        "image": image,
                        "predictions": [
                            {"index": p.class_index, "label": p.label, "probability": p.probability}
                            for p in preds
                        ],
                    }
                )
                continue
            print(image)
            for p in preds:
                print(f"  {p.probability:7.2%}  {p.class_index:>5}  {p.label}")
    if args.json:
        print(json.dumps(payload, indent=2))
    sys.stdout.flush()  # the results first, then what went wrong
    for message in unreadable:
        print(f"t2t-vit predict: error: {message}", file=sys.stderr)
    if unreadable:
        print(
            f"t2t-vit predict: {len(unreadable)} of {len(images)} images could not be read",
            file=sys.stderr,
        )
        return 1
    return 0


def _predict_chunk(
    model: T2TViT, chunk: list[str], top_k: int, unreadable: list[str]
) -> list[tuple[str, list[Any]]]:
    """The predictions of the images of `chunk` that can be read, in order; the message
    of each one that cannot is appended to `unreadable`."""
    from ..inference.predict import predict

    try:
        return list(
            zip(chunk, predict(model, chunk, top_k=top_k, batch_size=len(chunk)), strict=True)
        )
    except ValueError as err:
        if len(chunk) == 1:
            unreadable.append(str(err))
            return []
    results: list[tuple[str, list[Any]]] = []
    for image in chunk:
        results += _predict_chunk(model, [image], top_k, unreadable)
    return results


def _evaluate(args: argparse.Namespace) -> int:
    from ..inference.evaluate import evaluate, evaluate_file_message

    _check_model_args(args.model, args.weights)
    if os.path.isfile(args.data_dir):
        raise ValueError(evaluate_file_message(args.data_dir))
    if not os.path.isdir(args.data_dir):
        raise FileNotFoundError(f"evaluation folder not found: {args.data_dir!r}")
    model = load_model(args.model, args.weights)
    result = evaluate(
        model,
        args.data_dir,
        batch_size=args.batch_size,
        workers=args.workers,
        limit=args.limit,
        progress=not args.no_progress,
        top_k=args.top_k,
    )
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
        return 0
    print(
        f"{result.images} images: top-1 {result.top1:.2%}  "
        f"top-{result.top_k} {result.top_k_accuracy:.2%}  "
        f"loss {result.loss:.4f}  {result.images_per_second:.1f} images/s"
    )
    return 0


def _info(args: argparse.Namespace) -> int:
    from ..flops import count_macs, count_params
    from ..weights.pretrained_cfg import resolve_pretrained_cfg

    source: str
    if not args.name.strip():
        raise ValueError(f"NAME {_EMPTY_NAME}")
    if args.weights is not None:
        _check_weights_folder(args.weights)
    elif os.path.isfile(args.name) or _image_ending(args.name):
        image = _image_ending(args.name)
        what = "an image file" if image else "a file"
        if not os.path.exists(args.name):
            what = f"{what} name (and no such file)"
        hint = f" (to classify it: t2t-vit predict --model NAME {args.name})" if image else ""
        raise ValueError(
            f"{args.name!r} is {what}; info takes a preset or registry name, or a folder "
            f"written by save_pretrained{hint}"
        )
    elif _looks_like_path(args.name) and not os.path.exists(args.name):
        raise FileNotFoundError(
            f"{args.name!r}: no such folder; info takes a preset or registry name, or a folder "
            "written by save_pretrained"
        )
    if args.weights is not None:
        model = load_model(args.name, args.weights)
        source = args.weights
    elif Path(args.name, "config.json").is_file():
        model = load_model(None, args.name)
        source = args.name
    else:
        from ..models.t2t_vit import T2TViT
        from ..weights.registry import get_weights

        try:
            entry = get_weights(args.name)
        except ValueError:
            if Path(args.name).is_dir():
                raise FileNotFoundError(
                    f"{args.name!r} is a folder without config.json, not one written by "
                    f"save_pretrained"
                ) from None
            if "." in args.name and not _is_preset(args.name):
                raise  # a <preset>.<tag> weights name: the registry's message lists them
            model = create_model(args.name)
            source = "preset (no released weights; randomly initialised)"
        else:
            # The registry knows the weights' architecture and metrics: no download needed.
            model = T2TViT(**entry.model_args())
            model.pretrained_cfg = entry.pretrained_cfg()
            source = f"{entry.name} from {entry.url} (Hub: {entry.hub_repo_id}; not downloaded)"
    cfg = resolve_pretrained_cfg(model)
    config = model.config
    print(f"model: {args.name}")
    print(f"source: {source}")
    print(
        f"architecture: tokens_type={config['tokens_type']} embed_dim={config['embed_dim']} "
        f"depth={config['depth']} num_heads={config['num_heads']} "
        f"mlp_ratio={config['mlp_ratio']} token_dim={config['token_dim']} "
        f"num_classes={config['num_classes']}"
    )
    _, height, width = cfg["input_size"]
    grid = model.grid
    print(f"input: {height}x{width} -> {grid[0]}x{grid[1]} tokens")
    params = count_params(model, trainable_only=True)
    total = count_params(model)
    macs = count_macs(model, (int(height), int(width)), in_chans=model.in_chans)
    print(
        f"params: {total:,} ({total / 1e6:.2f} M) in the state dict, as the zoo table counts; "
        f"{params:,} ({params / 1e6:.2f} M) trainable"
    )
    print(f"MACs: {macs:,} ({macs / 1e9:.2f} G)")
    print(
        f"preprocessing: resize {cfg['interpolation']} crop_pct={cfg['crop_pct']} "
        f"mean={cfg['mean']} std={cfg['std']}"
    )
    labels = cfg.get("labels")
    print(f"labels: {labels if isinstance(labels, str) else f'{len(labels or [])} names'}")
    metrics = cfg.get("metrics")
    # A figure the source does not state (None) is left out rather than shown as "None".
    known = {k: v for k, v in metrics.items() if v is not None} if isinstance(metrics, dict) else {}
    if known:
        print("metrics: " + "  ".join(f"{k}={v}" for k, v in known.items()))
    else:
        print("metrics: none in the config")
    return 0


def _inputs(image: str, weights: str | None) -> dict[Path, str]:
    """The files a command reads, which its output must never be."""
    found = {Path(image): "the input image"}
    if weights:
        for name in (CONFIG_NAME, WEIGHTS_NAME):
            found[Path(weights) / name] = f"the --weights folder's {name}"
    return found


def _attention(args: argparse.Namespace) -> int:
    from ..inference.preprocess import EvalTransform, require_pillow
    from ..inference.visualize import colormap_lut, overlay_map, rollout

    # Every argument is checked before the model is loaded and run.
    _check_model_args(args.model, args.weights)
    if os.path.isdir(args.image):
        raise ValueError(f"{args.image!r} is a folder; attention takes one image file")
    if not os.path.isfile(args.image):
        from ..inference.preprocess import missing_image

        raise missing_image(args.image)
    if not 0.0 <= args.alpha <= 1.0:
        raise ValueError(f"--alpha must be in [0, 1], got {args.alpha}")
    colormap_lut(args.colormap)
    out = Path(args.out)
    if out.suffix.lower() not in require_pillow().registered_extensions():
        raise ValueError(
            f"--out {str(out)!r} has no image file ending Pillow writes; use e.g. .png or .jpg"
        )
    inputs = _inputs(args.image, args.weights)
    check_output_file(out, inputs, force=args.force, option="--out")
    model = load_model(args.model, args.weights)
    transform = EvalTransform.from_model(model)
    crop = transform.resize_crop(args.image)
    x = transform.to_tensor(crop)[None]
    mask = rollout(model, x)[0]
    picture = overlay_map(crop, mask, alpha=args.alpha, colormap=args.colormap)
    write_file(out, picture.save, inputs, force=args.force, option="--out")
    print(f"wrote {out} ({crop.size[0]}x{crop.size[1]}, {mask.shape[0]}x{mask.shape[1]} tokens)")
    return 0
