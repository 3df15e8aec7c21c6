"""Saving, publishing and loading models in the Hub layout: `config.json` + `model.safetensors`.

`from_pretrained` takes a registry name (`t2t-vit-t-14`), a Hub repository id or a local
folder. Hub files go through `huggingface_hub.hf_hub_download` and its cache, so
`HF_HUB_OFFLINE=1`, `HF_HOME`/`HF_HUB_CACHE`, `HF_ENDPOINT` and `revision` work as in
every Hub library.
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .convert import check_state_dict
from .model import T2TViT, _pair
from .pos_embed import resample_pos_embed
from .pretrained_cfg import resolve_pretrained_cfg

__all__ = [
    "CONFIG_NAME",
    "MODEL_CARD_NAME",
    "WEIGHTS_NAME",
    "PretrainedLoadError",
    "from_pretrained",
    "push_to_hub",
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


class PretrainedLoadError(OSError):
    """Pretrained weights could not be found, downloaded or read."""


# -- saving ---------------------------------------------------------------------------------


def save_pretrained(
    model: nn.Module,
    save_directory: str | os.PathLike[str],
    *,
    pretrained_cfg: dict[str, Any] | None = None,
) -> Path:
    """Write `config.json` (architecture and preprocessing) and `model.safetensors` to a folder.

    `config.json` holds `{"architecture": "T2TViT", "model_args": {...T2TViT kwargs...},
    "pretrained_cfg": {...}}`; `pretrained_cfg` defaults to the model's own.
    """
    from safetensors.torch import save_file

    if not isinstance(model, T2TViT):
        raise TypeError(f"save_pretrained expects a T2TViT, got {type(model).__name__}")
    out = Path(save_directory)
    out.mkdir(parents=True, exist_ok=True)
    config = {
        "architecture": "T2TViT",
        "model_args": model.config,
        "pretrained_cfg": pretrained_cfg or resolve_pretrained_cfg(model),
    }
    (out / CONFIG_NAME).write_text(json.dumps(config, indent=2) + "\n")
    state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
    save_file(state, str(out / WEIGHTS_NAME), metadata={"format": "pt"})
    return out


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


def push_to_hub(
    model: nn.Module,
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload T2T-ViT weights",
    revision: str | None = None,
    create_pr: bool = False,
    pretrained_cfg: dict[str, Any] | None = None,
) -> Any:
    """Upload `config.json`, `model.safetensors` and a model card to a Hub model repository
    (created if missing). Returns huggingface_hub's commit info."""
    from huggingface_hub import HfApi

    if not isinstance(model, T2TViT):
        raise TypeError(f"push_to_hub expects a T2TViT, got {type(model).__name__}")
    api = HfApi(endpoint=_endpoint(), token=token)
    api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    with tempfile.TemporaryDirectory() as tmp:
        cfg = pretrained_cfg or resolve_pretrained_cfg(model)
        save_pretrained(model, tmp, pretrained_cfg=cfg)
        write_model_card(tmp, model_args=model.config, pretrained_cfg=cfg, name=repo_id)
        return api.upload_folder(
            repo_id=repo_id,
            folder_path=tmp,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
            repo_type="model",
        )


# -- loading --------------------------------------------------------------------------------


def _endpoint() -> str | None:
    # huggingface_hub reads HF_ENDPOINT once at import; reading it per call lets a
    # process (or a test) point at a mirror after importing.
    value = os.environ.get("HF_ENDPOINT", "").strip()
    return value.rstrip("/") or None


def _offline() -> bool:
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return constants.HF_HUB_OFFLINE or env in {"1", "ON", "YES", "TRUE"}


def _how_to_convert(weights: Any) -> str:
    if weights is not None:
        get = f"download {weights.url}, "
        file = weights.file_name
    else:
        get = ""
        file = "CHECKPOINT.pth"
    return (
        f"To use an original checkpoint instead: {get}run `t2t-vit convert {file} OUT_DIR` "
        "and load it with `t2t_vit.from_pretrained('OUT_DIR')`."
    )


def _download(
    repo_id: str,
    filename: str,
    *,
    revision: str | None,
    cache_dir: str | os.PathLike[str] | None,
    force_download: bool,
    weights: Any,
) -> Path:
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import (
        EntryNotFoundError,
        LocalEntryNotFoundError,
        RepositoryNotFoundError,
        RevisionNotFoundError,
    )

    from . import __version__

    at = f" at revision {revision!r}" if revision else ""
    try:
        return Path(
            hf_hub_download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                force_download=force_download,
                local_files_only=_offline(),
                endpoint=_endpoint(),
                library_name=LIBRARY_NAME,
                library_version=__version__,
            )
        )
    except RepositoryNotFoundError:
        raise PretrainedLoadError(
            f"Hugging Face Hub repository {repo_id!r} does not exist (or is private). "
            + _how_to_convert(weights)
        ) from None
    except RevisionNotFoundError:
        raise PretrainedLoadError(
            f"revision {revision!r} does not exist in Hub repository {repo_id!r}"
        ) from None
    except LocalEntryNotFoundError:
        # Must precede EntryNotFoundError, of which it is a subclass.
        why = "offline mode is on (HF_HUB_OFFLINE=1)" if _offline() else "the Hub is unreachable"
        where = cache_dir or "the Hugging Face cache (HF_HOME / HF_HUB_CACHE)"
        raise PretrainedLoadError(
            f"cannot load {filename} of {repo_id!r}{at}: {why} and it is not in {where}. "
            "Download it once while online, or pass the path of a local folder with "
            f"{CONFIG_NAME} and {WEIGHTS_NAME}."
        ) from None
    except EntryNotFoundError:
        raise PretrainedLoadError(
            f"Hub repository {repo_id!r} has no {filename}{at}, so it holds no t2t-vit weights. "
            + _how_to_convert(weights)
        ) from None


def _read_config(path: Path) -> dict[str, Any]:
    try:
        config = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PretrainedLoadError(f"{path} is not a readable config.json: {err}") from None
    if not isinstance(config, dict) or not isinstance(config.get("model_args"), dict):
        raise PretrainedLoadError(
            f"{path} has no 'model_args' object; expected the layout save_pretrained writes"
        )
    return config


def _read_weights(path: Path, device: str) -> dict[str, Tensor]:
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        state: dict[str, Tensor] = load_file(str(path), device=device)
    except (SafetensorError, OSError) as err:
        raise PretrainedLoadError(
            f"{path} is not a valid safetensors file (truncated or corrupt: {err}). Delete it "
            "and load again, or pass force_download=True."
        ) from None
    return state


def _resolve_source(name: str) -> tuple[Path | None, str | None, Any]:
    """(local folder, repo id, registry entry) for what the caller passed."""
    from .weights import WEIGHTS, get_weights

    path = Path(name).expanduser()
    if path.is_dir():
        return path, None, None
    if name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1:
        raise PretrainedLoadError(f"local folder {name!r} does not exist")
    if "/" in name:
        # A repo named after a registry entry gets that entry's convert hint in errors.
        return None, name, WEIGHTS.get(name.split("/")[1])
    weights = get_weights(name)
    return None, weights.hub_repo_id, weights


def from_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    device: str | torch.device | None = None,
    map_location: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    force_download: bool = False,
) -> T2TViT:
    """Load pretrained T2T-ViT weights, in eval mode.

    `name_or_path` is a registry name (`t2t-vit-t-14`, `t2t-vit-14.cifar10`; see
    `list_pretrained`), a Hub repository id (`org/name`) or a local folder written by
    `save_pretrained` / `t2t-vit convert`. Hub files are cached by huggingface_hub
    (`cache_dir`, `revision`, `HF_HUB_OFFLINE=1`).

    A `num_classes` other than the checkpoint's drops its classifier (with a warning)
    and leaves a fresh head; an `img_size` other than the checkpoint's resamples the
    position table bicubically (class token kept). Everything else loads strictly.
    `device` (alias `map_location`) and `dtype` place the result.
    """
    folder, repo_id, weights = _resolve_source(os.fspath(name_or_path))
    target = str(device or map_location or "cpu")
    if folder is not None:
        config_path, weights_path = folder / CONFIG_NAME, folder / WEIGHTS_NAME
        for p in (config_path, weights_path):
            if not p.is_file():
                raise PretrainedLoadError(
                    f"{folder} has no {p.name}; expected {CONFIG_NAME} and {WEIGHTS_NAME} "
                    "(see t2t-vit convert)"
                )
        where = str(folder)
    else:
        assert repo_id is not None  # _resolve_source returns a folder or a repo id
        config_path, weights_path = (
            _download(
                repo_id,
                filename,
                revision=revision,
                cache_dir=cache_dir,
                force_download=force_download,
                weights=weights,
            )
            for filename in (CONFIG_NAME, WEIGHTS_NAME)
        )
        where = repo_id
    config = _read_config(config_path)
    state = _read_weights(weights_path, "cpu")
    model_args = dict(config["model_args"])
    cfg = dict(config.get("pretrained_cfg") or {})

    trained_classes = int(model_args.get("num_classes", 1000))
    if num_classes is not None and num_classes != trained_classes:
        model_args["num_classes"] = num_classes
        dropped = [k for k in ("head.weight", "head.bias") if k in state]
        for k in dropped:
            del state[k]
        warnings.warn(
            f"{where}: num_classes={num_classes} differs from the checkpoint's "
            f"{trained_classes}: dropped {', '.join(dropped) or 'nothing'}; the new head is "
            "randomly initialised",
            UserWarning,
            stacklevel=2,
        )
        cfg["labels"] = [str(i) for i in range(num_classes)]
        cfg.pop("metrics", None)

    if img_size is not None:
        model_args["img_size"] = img_size
    try:
        model = T2TViT(**model_args)
    except (TypeError, ValueError) as err:
        raise PretrainedLoadError(
            f"{where}: config.json model_args do not fit T2TViT: {err}"
        ) from None
    if num_classes is not None and num_classes != trained_classes:
        # The fresh head is the model's own; everything else is checked strictly.
        own = model.state_dict()
        state.update({k: own[k] for k in ("head.weight", "head.bias") if k in own})
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
    except ValueError as err:
        raise PretrainedLoadError(
            f"the weights of {where} do not fit the architecture in its config.json: {err}"
        ) from None
    model.load_state_dict(state, strict=True)
    model.pretrained_cfg = cfg or resolve_pretrained_cfg(model)
    model.to(device=target, dtype=dtype)
    return model.eval()
