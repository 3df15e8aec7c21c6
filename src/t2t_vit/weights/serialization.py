"""The Hub folder on disk: `config.json` + `model.safetensors` (+ a model card `README.md`).

`save_pretrained` writes it, `load_folder` builds the model it describes, wherever the folder
came from (a user's own, a Hub download, a converted original, timm's `save_for_hf`).

`config.json` is timm's Hub layout, so that timm (`local-dir:` / `hf-hub:`) and transformers
(`AutoModelForImageClassification`) read the folder too:

- `architecture`: the timm name of the preset (`t2t_vit_14`); `model_args`: every other
  `T2TViT` argument, so that any architecture is rebuilt exactly; `num_classes`,
  `num_features`, `global_pool` and `label_names` (the class names) at the top, as timm
  writes them;
- `pretrained_cfg`: only keys of timm's `PretrainedCfg` (preprocessing, `tag`, `license`,
  `first_conv`, `classifier`, ...), which timm builds a dataclass from;
- `t2t_vit`: what timm has no field for: `labels` (a label-set name or the list), the
  checkpoint's `metrics` and its `source`.

`read_config` reads this layout, the one earlier versions wrote (`"architecture": "T2TViT"`,
the whole `pretrained_cfg` with `labels`, `metrics` and `source` in it) and a folder timm
wrote (a preset's name, `model_args` with the arguments its factory was given).
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
from ..models.presets import PRESETS
from ..models.t2t_vit import MODEL_ARGS, T2TViT, _pair, check_model_args
from ..models.wrappers import unwrap_model
from ..output import FolderPolicy, write_file, write_folder
from .convert import StateDictMismatchError, adapt_input_channels, check_state_dict
from .errors import PretrainedLoadError
from .pretrained_cfg import (
    LABEL_SET_SIZES,
    architecture_of,
    check_labels,
    complete_pretrained_cfg,
    first_layer,
    for_new_head,
    label_count,
    resolve_pretrained_cfg,
)

__all__ = [
    "CONFIG_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "folder_files",
    "load_folder",
    "model_card",
    "read_config",
    "save_pretrained",
    "write_model_card",
]

CONFIG_NAME = "config.json"
WEIGHTS_NAME = "model.safetensors"
#: The weights file timm's `save_for_hf` writes by default (a pickle, read weights-only).
TORCH_WEIGHTS_NAME = "pytorch_model.bin"
#: The `architecture` of the folders earlier versions wrote, with every argument in `model_args`.
LEGACY_ARCHITECTURE = "T2TViT"
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
    overwrite: bool = False,
) -> Path:
    """Write `config.json` (architecture and preprocessing) and `model.safetensors` to a folder.

    `config.json` is timm's Hub layout (see the module's docstring), which this library, timm
    (`timm.create_model("local-dir:PATH", pretrained=True)`) and transformers
    (`AutoModelForImageClassification.from_pretrained(PATH)`) all read. `pretrained_cfg`
    defaults to the model's own, whose labels always fit the model's head (see
    `resolve_pretrained_cfg`); a partial one (`{"labels": [...]}`) is completed with the
    defaults. A given `pretrained_cfg` whose labels name another number of classes than the
    model's is refused. A model inside `torch.compile` or (Distributed)DataParallel is saved
    as the model inside.

    The write goes through the output guard (`t2t_vit.output`): both files are built in
    memory first (a value `config.json` cannot hold fails before anything is written), then
    written all or nothing. A folder that `save_pretrained` wrote before is replaced, and
    the model card `README.md` that t2t-vit wrote there (it describes the old weights) is
    removed; a `config.json` or `model.safetensors` it did not write is replaced only with
    `overwrite=True`. Other files in the folder are left alone.
    """
    if not os.fspath(save_directory):
        raise ValueError(
            "save_pretrained needs a folder name, got an empty path; pass e.g. './my-model' "
            "(the current folder is never taken by default)"
        )
    files = folder_files(unwrap_model(model, "save_pretrained"), pretrained_cfg)
    out = Path(save_directory)
    stale = [MODEL_CARD_NAME] if is_model_card(out / MODEL_CARD_NAME) else []
    return write_folder(out, files, SAVE_POLICY, overwrite=overwrite, remove=stale)


def is_saved_folder(folder: Path) -> bool:
    """Whether `folder`'s `config.json` is one `save_pretrained` writes (and `load_folder`
    reads)."""
    try:
        read_config(folder / CONFIG_NAME)
    except PretrainedLoadError:
        return False
    return True


def is_model_card(path: Path) -> bool:
    """Whether `path` is a model card that t2t-vit wrote (`library_name: t2t-vit`)."""
    try:
        with path.open(encoding="utf-8", errors="replace") as f:
            head = f.read(4096)
    except OSError:
        return False
    front = head.split("\n---", 1)[0] if head.startswith("---") else ""
    return f"\nlibrary_name: {LIBRARY_NAME}\n" in front + "\n"


#: Where `save_pretrained` may write: a new folder, or any folder without a `config.json` /
#: `model.safetensors` it did not write.
SAVE_POLICY = FolderPolicy(
    writer="save_pretrained",
    what="save folder",
    policy=(
        "save_pretrained replaces only a config.json and model.safetensors it wrote before, "
        "so choose another folder"
    ),
    mine=is_saved_folder,
)


def _json_value(obj: Any) -> Any:
    """NumPy and torch scalars and arrays as the Python numbers and lists they hold."""
    tolist = getattr(obj, "tolist", None)
    if callable(tolist) and type(obj).__module__.split(".")[0] in ("numpy", "torch"):
        return tolist()
    raise TypeError(
        f"config.json cannot hold {obj!r} (a {type(obj).__module__}.{type(obj).__qualname__}); "
        "give numbers, strings, lists and dicts"
    )


def config_bytes(config: dict[str, Any]) -> bytes:
    """`config` as the text of a `config.json`; NumPy and torch numbers become plain ones,
    anything else JSON cannot hold raises `TypeError` naming it."""
    return (json.dumps(config, indent=2, default=_json_value) + "\n").encode()


def folder_files(
    model: nn.Module, pretrained_cfg: dict[str, Any] | None = None
) -> dict[str, bytes]:
    """The files of the folder `save_pretrained` writes, name -> bytes, built in memory."""
    from safetensors.torch import save

    if not isinstance(model, T2TViT):
        raise TypeError(f"save_pretrained expects a T2TViT, got {type(model).__name__}")
    if pretrained_cfg is not None and not isinstance(pretrained_cfg, dict):
        raise TypeError(
            f"pretrained_cfg must be a dict (e.g. {{'labels': [...]}}) or None, not "
            f"{type(pretrained_cfg).__name__} {pretrained_cfg!r}"
        )
    if any(t.is_meta for t in model.state_dict().values()):
        raise ValueError(
            "the model is on the meta device: it has no weights to save; load or train it "
            "on a real device first"
        )
    if pretrained_cfg is not None:
        count = label_count(pretrained_cfg.get("labels"))
        if count is not None and count != model.num_classes:
            raise ValueError(
                f"pretrained_cfg labels {_short(pretrained_cfg['labels'])} name {count} "
                f"classes, the model has {model.num_classes}; pass labels that fit, or leave "
                "pretrained_cfg out to use the model's own"
            )
    # Labels that do not fit the head are refused, never written.
    check_labels(
        complete_pretrained_cfg(model, pretrained_cfg or model.pretrained_cfg).get("labels"),
        model.num_classes,
    )
    text = config_bytes(_config_for(model, pretrained_cfg))
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    weights: bytes = save(state, metadata={"format": "pt"})
    return {WEIGHTS_NAME: weights, CONFIG_NAME: text}


#: The fields of timm's `PretrainedCfg` (timm 1.0): a folder's `pretrained_cfg` holds only
#: these, since timm builds the dataclass from it (`PretrainedCfg(**pretrained_cfg)`).
TIMM_CFG_KEYS = frozenset(
    {
        "url",
        "file",
        "state_dict",
        "hf_hub_id",
        "hf_hub_filename",
        "source",
        "architecture",
        "tag",
        "custom_load",
        "input_size",
        "test_input_size",
        "min_input_size",
        "fixed_input_size",
        "interpolation",
        "crop_pct",
        "test_crop_pct",
        "crop_mode",
        "mean",
        "std",
        "num_classes",
        "label_offset",
        "label_names",
        "label_descriptions",
        "pool_size",
        "test_pool_size",
        "first_conv",
        "classifier",
        "license",
        "description",
        "origin_url",
        "paper_name",
        "paper_ids",
        "notes",
    }
)
#: Where timm found the weights: never saved, the folder is their place now.
_LOCATION_KEYS = frozenset({"url", "file", "state_dict", "hf_hub_id", "hf_hub_filename"})
#: The `config.json` key of what timm's `pretrained_cfg` has no field for.
OWN_KEY = "t2t_vit"


def _config_for(model: T2TViT, pretrained_cfg: dict[str, Any] | None) -> dict[str, Any]:
    """The content of `config.json` for `model` (see the module's docstring)."""
    from .label_sets import load_labels

    cfg = complete_pretrained_cfg(model, pretrained_cfg or model.pretrained_cfg)
    args = dict(model.config)
    # Not in model_args: transformers passes its own num_classes next to them.
    num_classes = args.pop("num_classes")
    architecture = architecture_of(model.config)
    source = cfg.get("source")
    own = {k: v for k, v in cfg.items() if k not in TIMM_CFG_KEYS}
    if isinstance(source, dict):
        own["source"] = source
    timm_cfg = {
        k: v
        for k, v in cfg.items()
        if k in TIMM_CFG_KEYS and k not in _LOCATION_KEYS and k not in ("source", "label_names")
    }
    timm_cfg.update(
        architecture=architecture,
        num_classes=num_classes,
        fixed_input_size=not model.dynamic_img_size,
        first_conv=first_layer(model),
        classifier="head" if num_classes else None,
    )
    timm_cfg.setdefault("crop_mode", "center")
    if isinstance(source, dict):
        name = str(source.get("name") or "")
        if "." in name and name.split(".")[0].replace("_", "-") in PRESETS:
            timm_cfg.setdefault("tag", name.split(".", 1)[1])
        if source.get("license"):
            timm_cfg.setdefault("license", source["license"])
    config: dict[str, Any] = {
        "architecture": architecture,
        "num_classes": num_classes,
        "num_features": model.num_features,
    }
    pool = getattr(model, "global_pool", "token")
    if isinstance(pool, str) and pool:
        config["global_pool"] = pool
    labels = own.get("labels")
    if num_classes:
        names = load_labels(labels) if isinstance(labels, str) else labels or []
        config["label_names"] = [str(x) for x in names]
    config["model_args"] = args
    config["pretrained_cfg"] = timm_cfg
    config[OWN_KEY] = own
    return config


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
    overwrite: bool = False,
) -> Path:
    """Write a Hub model card `README.md`: source, metrics, preprocessing, license, citation.

    A `README.md` that t2t-vit did not write is replaced only with `overwrite=True`."""
    card = model_card(model_args=model_args, pretrained_cfg=pretrained_cfg, name=name)
    path = Path(folder) / MODEL_CARD_NAME
    own = is_model_card(path)
    write_file(path, card, force=overwrite or own, option="model card", force_flag="overwrite=True")
    return path


def model_card(
    *,
    model_args: dict[str, Any],
    pretrained_cfg: dict[str, Any],
    name: str | None = None,
) -> str:
    """The text of a Hub model card `README.md` (see `write_model_card`)."""
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
        "timm and transformers read this folder too, once `t2t_vit.timm` registers the models:",
        "",
        "```python",
        "import timm",
        "import t2t_vit.timm",
        "from transformers import pipeline",
        "",
        f'model = timm.create_model("{"hf-hub:" + name if name else "local-dir:path"}", '
        "pretrained=True)",
        f'classify = pipeline("image-classification", model="{name or "path"}")',
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
    return "\n".join(lines)


def read_config(path: Path) -> dict[str, Any]:
    """The parsed `config.json` of a folder, in one form whichever layout it has (this
    version's, an earlier version's, timm's): `architecture`, `model_args` with every
    `T2TViT` argument the folder sets (`num_classes` included) and `pretrained_cfg` as a
    model holds it (`labels`, `metrics` and `source` in it). `PretrainedLoadError` when it is
    not one, or names an architecture that is not a T2T-ViT preset."""
    try:
        raw = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedLoadError(f"{path} is not a readable config.json: {err}") from None
    if not isinstance(raw, dict):
        raise PretrainedLoadError(
            f"{path} holds a JSON {type(raw).__name__}, not an object; expected the layout "
            "save_pretrained writes"
        )
    architecture = raw.get("architecture", LEGACY_ARCHITECTURE)
    model_args = raw.get("model_args")
    if architecture == LEGACY_ARCHITECTURE:
        if not isinstance(model_args, dict):
            raise PretrainedLoadError(
                f"{path} has no 'model_args' object; expected the layout save_pretrained writes"
            )
        base: dict[str, Any] = {}
    else:
        preset = _preset(architecture)
        if preset is None:
            known = ", ".join(p.replace("-", "_") for p in PRESETS)
            raise PretrainedLoadError(
                f"{path}: architecture {architecture!r} is not a T2T-ViT preset; accepted: "
                f"{known} (or {LEGACY_ARCHITECTURE!r} with every argument in model_args)"
            )
        if model_args is not None and not isinstance(model_args, dict):
            raise PretrainedLoadError(f"{path}: 'model_args' must be an object, got {model_args!r}")
        base = dict(PRESETS[preset])
    args = {**base, **_timm_only(model_args or {})}
    if "num_classes" not in args and isinstance(raw.get("num_classes"), int):
        args["num_classes"] = raw["num_classes"]
    stored = raw.get("pretrained_cfg")
    own = raw.get(OWN_KEY)
    cfg = _own_cfg(
        stored if isinstance(stored, dict) else {},
        own if isinstance(own, dict) else {},
        raw.get("label_names"),
    )
    return {**raw, "architecture": architecture, "model_args": args, "pretrained_cfg": cfg}


def _preset(architecture: Any) -> str | None:
    """The preset an `architecture` names (`t2t_vit_14`, `t2t-vit-14`); `None` for others."""
    if not isinstance(architecture, str):
        return None
    key = architecture.strip().lower().replace("_", "-")
    return key if key in PRESETS else None


def _timm_only(model_args: dict[str, Any]) -> dict[str, Any]:
    """`model_args` without timm's record of the pooling when this model cannot take it as
    an argument and it is the one it does (the class token)."""
    pool = model_args.get("global_pool", "")
    if "global_pool" not in MODEL_ARGS and pool in ("token", None):
        return {k: v for k, v in model_args.items() if k != "global_pool"}
    return dict(model_args)


def _own_cfg(stored: dict[str, Any], own: dict[str, Any], label_names: Any) -> dict[str, Any]:
    """The `pretrained_cfg` a model holds, from a folder's `pretrained_cfg`, its `t2t_vit`
    object and its `label_names` (timm's names of the classes)."""
    from .label_sets import load_labels

    cfg = {k: v for k, v in stored.items() if k not in _LOCATION_KEYS and k != "custom_load"}
    if not isinstance(cfg.get("source"), dict):
        cfg.pop("source", None)  # timm's: where it found this config
    names = cfg.pop("label_names", None)
    cfg.pop("label_descriptions", None)
    cfg.update(own)
    names = label_names if isinstance(label_names, list) else names
    if "labels" not in cfg and isinstance(names, (list, tuple)) and names:
        names = [str(x) for x in names]
        # A label set's names are stored under its name, as this library names them.
        sets = [s for s, n in LABEL_SET_SIZES.items() if n == len(names)]
        cfg["labels"] = next((s for s in sets if load_labels(s) == names), names)
    return cfg


def _read_weights(path: Path, advice: str) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    if path.name == TORCH_WEIGHTS_NAME:
        try:
            loaded = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as err:  # whatever torch.load raises for a bad pickle
            first = (str(err).strip().splitlines() or [type(err).__name__])[0]
            raise PretrainedLoadError(
                f"{path} is not a readable state dict (read weights only: {first}). {advice}"
            ) from None
        if not isinstance(loaded, dict) or not all(isinstance(v, Tensor) for v in loaded.values()):
            raise PretrainedLoadError(f"{path} holds no state dict of tensors. {advice}")
        return {str(k): v for k, v in loaded.items()}
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
    weights = path / WEIGHTS_NAME
    if not weights.is_file() and (path / TORCH_WEIGHTS_NAME).is_file():
        weights = path / TORCH_WEIGHTS_NAME  # timm's save_for_hf without safetensors
    for file in (path / CONFIG_NAME, weights):
        if not file.is_file():
            raise PretrainedLoadError(
                f"{path} has no {file.name}; expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                "(see t2t-vit convert)"
            )
    config = read_config(path / CONFIG_NAME)
    state = _read_weights(weights, advice)
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
    if "num_classes" in cfg:
        cfg["num_classes"] = model.num_classes  # timm's key, for the head loaded
    model.pretrained_cfg = cfg or None
    model.pretrained_cfg = resolve_pretrained_cfg(model)
    try:
        check_labels(model.pretrained_cfg.get("labels"), model.num_classes)
    except ValueError as err:
        raise PretrainedLoadError(f"{where}: {CONFIG_NAME}: {err}") from None
    model.to(device=device or "cpu", dtype=dtype)
    return model.eval()
