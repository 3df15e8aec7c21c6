"""The Hub folder on disk: `config.json` + `model.safetensors` (+ a model card `README.md`).

`save_pretrained` writes it, `load_folder` builds the model it describes, wherever the folder
came from (a user's own, a Hub download, a converted original).
"""

from __future__ import annotations

import json
import logging
import os
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from ..layers.pos_embed import resample_pos_embed
from ..models.t2t_vit import T2TViT, _pair, check_model_args
from .convert import StateDictMismatchError, adapt_input_channels, check_state_dict
from .errors import PretrainedLoadError
from .pretrained_cfg import (
    check_labels,
    complete_pretrained_cfg,
    for_new_head,
    label_count,
    resolve_pretrained_cfg,
)

__all__ = [
    "CONFIG_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "load_folder",
    "read_config",
    "save_pretrained",
    "write_model_card",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
MODEL_CARD_NAME = "README.md"
LIBRARY_NAME = "t2t-vit"

_log = logging.getLogger(__name__)

CITATION = """\
@inproceedings{yuan2021tokens,
  title     = {Tokens-to-Token ViT: Training Vision Transformers from Scratch on ImageNet},
  author    = {Yuan, Li and Chen, Yunpeng and Wang, Tao and Yu, Weihao and Shi, Yujun and
               Jiang, Zi-Hang and Tay, Francis E. H. and Feng, Jiashi and Yan, Shuicheng},
  booktitle = {Proceedings of the IEEE/CVF International Conference on Computer Vision (ICCV)},
  year      = {2021}
}
"""


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    pretrained_cfg: dict[str, Any] | None = None,
) -> Path:
    """Write `config.json` (architecture and preprocessing) and `model.safetensors` to a folder.

    `config.json` holds `{"architecture": "T2TViT", "model_args": {...T2TViT kwargs...},
    "pretrained_cfg": {...}}`; `pretrained_cfg` defaults to the model's own, whose labels
    always fit the model's head (see `resolve_pretrained_cfg`); a partial one
    (`{"labels": [...]}`) is completed with the defaults. A given `pretrained_cfg` whose
    labels name another number of classes than the model's is refused. Each file is
    written under a temporary name and then renamed, so an interrupted save leaves no
    half-written file under the final name.
    """
    from safetensors.torch import save_file

    if not isinstance(model, T2TViT):
        raise TypeError(f"save_pretrained expects a T2TViT, got {type(model).__name__}")
    if pretrained_cfg is not None:
        count = label_count(pretrained_cfg.get("labels"))
        if count is not None and count != model.num_classes:
            raise ValueError(
                f"pretrained_cfg labels {_short(pretrained_cfg['labels'])} name {count} "
                f"classes, the model has {model.num_classes}; pass labels that fit, or leave "
                "pretrained_cfg out to use the model's own"
            )
    # A partial config ({"labels": [...]}) is completed, so that the folder loads anywhere;
    # labels that do not fit the head are refused, never written.
    cfg = complete_pretrained_cfg(model, pretrained_cfg or model.pretrained_cfg)
    check_labels(cfg.get("labels"), model.num_classes)
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": "T2TViT",
        "model_args": model.config,
        "pretrained_cfg": cfg,
    }
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    part = out / f".{WEIGHTS_NAME}.part"
    save_file(state, str(part), metadata={"format": "pt"})
    os.replace(part, out / WEIGHTS_NAME)
    part = out / f".{CONFIG_NAME}.part"
    part.write_text(json.dumps(config, indent=2) + "\n")
    os.replace(part, out / CONFIG_NAME)
    return out


def _short(labels: Any) -> str:
    if isinstance(labels, str):
        return repr(labels)
    return f"[{', '.join(repr(x) for x in list(labels)[:3])}, ...]"


def write_model_card(
    folder: str | os.PathLike[str],
    *,
    model_args: dict[str, Any],
    pretrained_cfg: dict[str, Any],
    name: str | None = None,
) -> Path:
    """Write a Hub model card `README.md`: source, metrics, preprocessing, license, citation."""
    src = pretrained_cfg.get("source") or {}
    metrics = pretrained_cfg.get("metrics") or {}
    labels = pretrained_cfg.get("labels")
    dataset = labels if isinstance(labels, str) else None
    license_id = src.get("license", "other")
    title = name or src.get("name") or "T2T-ViT"
    front = ["---", f"license: {license_id}", f"library_name: {LIBRARY_NAME}"]
    front += ["pipeline_tag: image-classification", "tags:", "- image-classification"]
    front += ["- vision-transformer", "- t2t-vit"]
    if dataset:
        front += ["datasets:", f"- {dataset}"]
    front.append("---")
    c, h, w = pretrained_cfg["input_size"]
    lines = [
        *front,
        "",
        f"# {title}",
        "",
        "Tokens-to-Token ViT (Yuan et al., ICCV 2021) for the "
        f"[t2t-vit](https://pypi.org/project/t2t-vit/) library: a {model_args['depth']}-block "
        f"{model_args['tokens_type']}-stem network of width {model_args['embed_dim']} with "
        f"{model_args['num_classes']} classes, converted with `t2t-vit convert`.",
        "",
        "## Source",
        "",
        f"- origin: {src.get('origin', 'unknown')}",
    ]
    if "url" in src:
        lines.append(f"- original file: [{src.get('file_name')}]({src['url']})")
    elif "file_name" in src:
        lines.append(f"- original file: {src['file_name']}")
    if "sha256" in src:
        lines.append(f"- original file sha256: `{src['sha256']}`")
    lines += ["", "## Metrics", ""]
    if metrics:
        top5 = metrics.get("top5")
        lines += [
            f"As reported by the source, on {metrics.get('dataset', dataset)}:",
            "",
            "| top-1 | top-5 |",
            "| --- | --- |",
            f"| {metrics.get('top1')} | {'not reported' if top5 is None else top5} |",
        ]
    else:
        lines.append("No metrics recorded.")
    lines += [
        "",
        "## Preprocessing",
        "",
        f"Input {c}x{h}x{w}; resize the shorter side to `floor({h} / crop_pct)` with "
        f"{pretrained_cfg['interpolation']} interpolation (crop_pct {pretrained_cfg['crop_pct']}), "
        f"center-crop {h}x{w}, scale to [0, 1], normalise with mean {pretrained_cfg['mean']} "
        f"and std {pretrained_cfg['std']}. Labels: "
        f"{labels if isinstance(labels, str) else f'{len(labels or [])} names in config.json'}.",
        "",
        "## Usage",
        "",
        "```python",
        "import t2t_vit",
        "",
        f"model = t2t_vit.from_pretrained({title!r})"
        if name
        else 'model = t2t_vit.from_pretrained("path/to/this/folder")  # or "<org>/<repo>"',
        "```",
        "",
        "## License",
        "",
        f"The weights keep the license of their source: `{license_id}`."
        if "license" in src
        else "The source's license is not recorded: set `license:` above before publishing.",
        "",
        "## Citation",
        "",
        "```bibtex",
        CITATION.rstrip(),
        "```",
        "",
    ]
    path = Path(folder) / MODEL_CARD_NAME
    path.write_text("\n".join(lines))
    return path


def read_config(path: Path) -> dict[str, Any]:
    """The parsed `config.json` of a folder; `PretrainedLoadError` when it is not one."""
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedLoadError(f"{path} is not a readable config.json: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_args"), dict):
        raise PretrainedLoadError(
            f"{path} has no 'model_args' object; expected the layout save_pretrained writes"
        )
    return config


def _read_weights(path: Path, advice: str) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        mapped: dict[str, Tensor] = load_file(str(path), device="cpu")
    except (SafetensorError, OSError) as err:
        raise PretrainedLoadError(
            f"{path} is not a valid safetensors file (truncated or corrupt: {err}). {advice}"
        ) from None
    # `load_file` maps the file: its tensors would stay views of it, 8-byte aligned (another
    # file copied over it would change the live model, a shorter one kill the process with
    # SIGBUS, and misaligned weights change the CPU kernels' results). Each is copied into
    # memory of its own, aligned by torch's allocator, and the mapping is released.
    state = {
        key: tensor.clone(memory_format=torch.contiguous_format) for key, tensor in mapped.items()
    }
    del mapped
    return state


#: What to do about a corrupt file in a folder the user wrote themselves.
LOCAL_ADVICE = (
    "Write the folder again (t2t_vit.save_pretrained, or t2t-vit convert from the original "
    "checkpoint)."
)


def _builds(model_args: dict[str, Any]) -> bool:
    """Whether `model_args` alone make a `T2TViT` (on the meta device: nothing allocated)."""
    try:
        check_model_args(model_args)
        with torch.device("meta"):
            T2TViT(**model_args)
    except (TypeError, ValueError):
        return False
    return True


def adapt_normalization(cfg: dict[str, Any], in_chans: int) -> dict[str, list[float]]:
    """`mean` and `std` of `cfg` for `in_chans` input channels: one channel takes the mean
    over the trained channels (grey from RGB, as timm adapts its configs), more channels
    repeat them in turn, as the first layer's weights are repeated; empty when they fit."""
    adapted: dict[str, list[float]] = {}
    for key in ("mean", "std"):
        values = cfg.get(key)
        if not isinstance(values, (list, tuple)) or not values or len(values) == in_chans:
            continue
        numbers = [float(v) for v in values]
        if in_chans == 1:
            adapted[key] = [sum(numbers) / len(numbers)]
        else:
            adapted[key] = [numbers[i % len(numbers)] for i in range(in_chans)]
    return adapted


def check_load_args(num_classes: int | None, dtype: object) -> None:
    """Refuse a `num_classes` or `dtype` to load with before any file is read."""
    if num_classes is not None:
        check_model_args({"num_classes": num_classes})
    if dtype is None:
        return
    if isinstance(dtype, str):
        raise TypeError(
            f"dtype must be a torch.dtype such as torch.{dtype.removeprefix('torch.')}, got the "
            f"string {dtype!r}"
        )
    if not isinstance(dtype, torch.dtype) or not dtype.is_floating_point:
        raise TypeError(f"dtype must be a floating-point torch.dtype, got {dtype!r}")


def load_folder(
    folder: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    device: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    overrides: dict[str, Any] | None = None,
    where: str | None = None,
    advice: str = LOCAL_ADVICE,
) -> T2TViT:
    """Build the model a Hub folder describes and load its weights strictly, in eval mode.

    A `num_classes` other than the checkpoint's drops its classifier (with a warning) and
    leaves a fresh head (`num_classes=0`: no head, no warning); an `img_size` other than
    the checkpoint's resamples the position table bicubically (class token kept).
    `overrides` replace other `T2TViT` arguments
    (`drop_path_rate`, ...); one that changes a weight's shape fails the strict load.
    `where` names the folder's origin in messages and `advice` says what to do about a
    corrupt weights file.
    """
    check_load_args(num_classes, dtype)
    path = Path(folder)
    where = where or str(path)
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        if not (path / name).is_file():
            raise PretrainedLoadError(
                f"{path} has no {name}; expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                "(see t2t-vit convert)"
            )
    config = read_config(path / CONFIG_NAME)
    state = _read_weights(path / WEIGHTS_NAME, advice)
    model_args = dict(config["model_args"])
    model_args.update(overrides or {})
    cfg = dict(config.get("pretrained_cfg") or {})

    # What the caller changed, for messages that must not blame config.json for it.
    changed = {**(overrides or {}), **({} if img_size is None else {"img_size": img_size})}
    given = ", ".join(
        f"{k}={v!r} (config.json: {config['model_args'].get(k, 'default')!r})"
        for k, v in changed.items()
    )
    trained_classes = model_args.get("num_classes", 1000)
    new_head = num_classes is not None and num_classes != trained_classes
    if new_head:
        model_args["num_classes"] = num_classes
        dropped = [k for k in ("head.weight", "head.bias") if k in state]
        for k in dropped:
            del state[k]
        if num_classes:
            warnings.warn(
                f"{where}: num_classes={num_classes} differs from the checkpoint's "
                f"{trained_classes}: dropped {', '.join(dropped) or 'nothing'}; the new head is "
                "randomly initialised",
                UserWarning,
                stacklevel=3,
            )
        else:
            # Asked for no head: nothing random to warn about.
            _log.info(
                "%s: num_classes=0: dropped %s; the model returns its pooled features",
                where, ", ".join(dropped) or "nothing",
            )  # fmt: skip
    if img_size is not None:
        model_args["img_size"] = img_size
    trained_chans = config["model_args"].get("in_chans", 3)
    in_chans = model_args.get("in_chans", 3)
    if in_chans != trained_chans and isinstance(in_chans, int):
        check_model_args({"in_chans": in_chans})
        state = adapt_input_channels(state, in_chans, trained_chans)
        how = (
            "summed over"
            if in_chans == 1
            else f"repeated and rescaled by {trained_chans}/{in_chans} from"
        )
        warnings.warn(
            f"{where}: in_chans={in_chans} differs from the checkpoint's {trained_chans}: the "
            f"first layer's weights are {how} its {trained_chans} channels, as timm's "
            "adapt_input_conv does",
            UserWarning,
            stacklevel=3,
        )
        if isinstance(cfg.get("input_size"), list) and cfg["input_size"]:
            cfg["input_size"] = [in_chans, *cfg["input_size"][1:]]
        cfg.update(adapt_normalization(cfg, in_chans))
    try:
        check_model_args(model_args)
        # On the meta device: no memory and no random initialisation for weights that the
        # checkpoint replaces (seconds for the large presets); `assign` below fills them.
        with torch.device("meta"):
            model = T2TViT(**model_args)
    except (TypeError, ValueError) as err:
        blame = "config.json model_args"
        if given and _builds(config["model_args"]):
            blame = f"the arguments {given}"
        raise PretrainedLoadError(f"{where}: {blame} do not fit T2TViT: {err}") from None
    if new_head and num_classes:
        # A fresh head, initialised as the model initialises its own; everything else is
        # checked strictly.
        head = nn.Linear(model.embed_dim, num_classes)
        T2TViT._init_weights(head)
        state.update({"head.weight": head.weight.data, "head.bias": head.bias.data})
    if img_size is not None and "pos_embed" in state:
        trained_grid = model.tokens_to_token.output_grid(
            *_pair(config["model_args"].get("img_size", 224))
        )
        if trained_grid != model.grid:
            state["pos_embed"] = resample_pos_embed(state["pos_embed"], model.grid, trained_grid)
            _log.info("%s: resampled pos_embed from grid %s to %s", where, trained_grid, model.grid)
        cfg["input_size"] = [model.in_chans, *model.img_size]
    try:
        check_state_dict(model, state)
    except StateDictMismatchError as err:
        what = f"that the arguments {given} make of" if given else "in"
        raise PretrainedLoadError(
            f"the weights of {where} do not fit the architecture {what} its config.json: {err}",
            mismatch=err,
        ) from None
    model.load_state_dict(state, strict=True, assign=True)
    if new_head and cfg:
        # A new head's classes are named by index, and the checkpoint's metrics go.
        cfg = for_new_head(cfg, model.num_classes)
    model.pretrained_cfg = cfg or None
    model.pretrained_cfg = resolve_pretrained_cfg(model)
    try:
        check_labels(model.pretrained_cfg.get("labels"), model.num_classes)
    except ValueError as err:
        raise PretrainedLoadError(f"{where}: {CONFIG_NAME}: {err}") from None
    model.to(device=device or "cpu", dtype=dtype)
    return model.eval()
