"""`from_pretrained`: a registry name, a Hub repository or a local folder to a loaded model.

A registry name (`t2t-vit-7`, `t2t-vit-t-14.mmpretrain`) is looked for first in its Hub
repository, then, when the Hub does not have it or cannot be reached, in the original release
file, which is downloaded, converted and cached once (`t2t_vit.release`).
"""

from __future__ import annotations

import inspect
import logging
import os
from pathlib import Path
from typing import Any, Literal

import torch

from ..models.presets import did_you_mean
from ..models.t2t_vit import MODEL_ARGS, T2TViT, check_model_args
from .errors import Attempt, PretrainedLoadError
from .hub import HubUnavailableError, download_folder, endpoint, offline
from .registry import WEIGHTS, PretrainedWeights, get_weights
from .release import (
    HUB_MISS_TTL_ENV,
    OriginalUnavailableError,
    cached_folder,
    converted_folder,
    forget_hub_miss,
    original_url,
    recent_hub_miss,
    remember_hub_miss,
)
from .serialization import CONFIG_NAME, WEIGHTS_NAME, check_load_args, load_folder

__all__ = ["SOURCES", "Source", "from_pretrained"]

_log = logging.getLogger("t2t_vit")

Source = Literal["auto", "hub", "original"]
SOURCES: tuple[str, ...] = ("auto", "hub", "original")
"""Accepted values of `from_pretrained(source=...)`."""

_HUB_ADVICE = "Load it again with force_download=True to download it anew."


def _check_overrides(overrides: dict[str, Any]) -> None:
    """Name a keyword that is neither a `from_pretrained` option nor a `T2TViT` argument."""
    own = [
        p
        for p in inspect.signature(from_pretrained).parameters
        if p not in ("name_or_path", "overrides")
    ]
    for key in overrides:
        if key not in MODEL_ARGS:
            hint = did_you_mean(key, own + list(MODEL_ARGS))
            raise TypeError(
                f"unknown argument {key!r}{hint}; from_pretrained takes {', '.join(own)} and "
                f"T2TViT arguments ({', '.join(MODEL_ARGS)})"
            )
    check_model_args(overrides)


def _device(value: str | torch.device) -> torch.device | str:
    try:
        return torch.device(value)
    except (RuntimeError, TypeError):
        return str(value)  # torch's own error comes when the model is moved


def _is_registry_name(name: str) -> bool:
    try:
        get_weights(name)
    except ValueError:
        return False
    return True


def _is_path_like(name: str) -> bool:
    return name.startswith((".", "/", "~")) or "\\" in name or name.count("/") > 1


def _failure(name: str, attempts: list[Attempt], advice: str) -> PretrainedLoadError:
    tried = "; ".join(str(a) for a in attempts).rstrip(".")
    return PretrainedLoadError(
        f"cannot load pretrained weights {name!r}: {tried}. {advice}", attempts
    )


def _advice(entry: PretrainedWeights | None, attempts: list[Attempt], repo: bool) -> str:
    if all("offline mode is on" in a.answer for a in attempts):
        return (
            "Load it once with network access (it is then cached), or unset HF_HUB_OFFLINE, "
            "or pass the path of a folder written by t2t_vit.save_pretrained or t2t-vit convert."
        )
    if attempts[-1].answer.startswith("cannot write"):
        return (
            "Free space on its disk or make it writable, or set HF_HUB_CACHE (Hub files) or "
            "T2T_VIT_CACHE (converted originals), or pass cache_dir=, to use another folder."
        )
    if entry is not None and repo:
        return (
            f"from_pretrained({entry.name!r}) loads these weights from the Hub organisation "
            f"and falls back to the original release file {entry.url}."
        )
    if entry is None and attempts[-1].answer.startswith("server error"):
        return "The server failed: try again later, or pass the path of a local folder."
    if entry is None:
        check = "the repository id" if attempts[-1].answer.startswith("HTTP 4") else "your network"
        return (
            f"Check {check}, or pass the path of a folder written by t2t_vit.save_pretrained "
            "or t2t-vit convert."
        )
    return (
        f"Check your network, or point HF_ENDPOINT or T2T_VIT_RELEASE_MIRROR at a mirror, or "
        f"download {entry.url} yourself, run `t2t-vit convert {entry.file_name} OUT_DIR` and "
        "load OUT_DIR."
    )


def from_pretrained(
    name_or_path: str | os.PathLike[str],
    *,
    num_classes: int | None = None,
    img_size: int | tuple[int, int] | None = None,
    source: Source | str = "auto",
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    device: str | torch.device | None = None,
    map_location: str | torch.device | None = None,
    dtype: torch.dtype | None = None,
    **overrides: Any,
) -> T2TViT:
    """Load pretrained T2T-ViT weights, in eval mode.

    `name_or_path` is a registry name (`t2t-vit-t-14`, `t2t-vit-14.cifar10`; see
    `list_pretrained`), a Hub repository id (`org/name`) or a local folder written by
    `save_pretrained` / `t2t-vit convert`.

    A registry name is looked for in its Hub repository first; when the Hub does not have
    it or cannot be reached, its original release file is downloaded, checked, read
    weights-only, converted and cached (`source="auto"`). `source="hub"` or `"original"`
    forces one. A `revision` pins a Hub revision and so never falls back. Later calls load
    the cache with no download, offline (`HF_HUB_OFFLINE=1`) too; a Hub miss is remembered
    for `$T2T_VIT_HUB_MISS_TTL` seconds (default 3600), during which a cached converted
    original loads with no request at all (`force_download=True` asks afresh). One log line (logger
    `t2t_vit`, level INFO) says where the weights came from. `cache_dir` holds both the Hub
    files and the converted originals; `force_download` downloads and converts again.

    A `num_classes` other than the checkpoint's drops its classifier (with a warning)
    and leaves a fresh head (`num_classes=0`: no head, no warning); an `img_size` other
    than the checkpoint's resamples the position table bicubically (class token kept).
    Other keyword arguments replace
    `T2TViT` arguments (`drop_path_rate=0.1`, ...); everything else loads strictly.
    `device` (alias `map_location`; both given must agree) and `dtype` place the result.
    The weights are copied out of the file into memory of the model's own.

    Raises `PretrainedLoadError` naming each place tried and what it answered, and
    `ValueError` for an unknown registry name.
    """
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}; accepted: {', '.join(SOURCES)}")
    _check_overrides(overrides)
    check_load_args(num_classes, dtype)
    if device is not None and map_location is not None and _device(device) != _device(map_location):
        raise ValueError(
            f"device={device!r} and map_location={map_location!r} disagree; map_location is "
            "an alias of device: pass one of them"
        )
    name = os.fspath(name_or_path)
    load: dict[str, Any] = dict(
        num_classes=num_classes,
        img_size=img_size,
        device=device or map_location,
        dtype=dtype,
        overrides=overrides,
    )
    path = Path(name).expanduser()
    if path.is_dir():
        if source != "auto":
            raise ValueError(f"source={source!r} applies to registry names; {name!r} is a folder")
        model = load_folder(path, **load)
        if not _is_path_like(name) and _is_registry_name(name):
            _log.warning(
                "%s: loaded the local folder %s, which has the name of registered weights; "
                "to load those, run from another folder or rename this one",
                name, path.resolve(),
            )  # fmt: skip
        else:
            # The caller named the folder: no need to tell them where the weights came from.
            _log.debug("%s: weights from the local folder %s", name, path.resolve())
        return model
    not_a_folder = _not_a_folder(name, path)
    if not_a_folder is not None:
        raise PretrainedLoadError(not_a_folder)
    if _is_path_like(name):
        raise PretrainedLoadError(f"local folder {name!r} does not exist")

    repo = "/" in name
    if repo:
        entry = WEIGHTS.get(name.split("/")[1])
        if source == "original":
            raise ValueError(
                f"source='original' needs a registry name (see t2t_vit.list_pretrained()), "
                f"not the Hub repository {name!r}"
            )
        repo_id = name
    else:
        entry = get_weights(name)
        repo_id = entry.hub_repo_id
    attempts: list[Attempt] = []
    # A registry name that can fall back: a recent Hub miss with a whole converted copy in
    # the cache loads that copy without waiting for the Hub again.
    fallback = entry is not None and not repo and source == "auto" and revision is None
    if fallback and entry is not None and not force_download and not offline():
        miss = recent_hub_miss(repo_id, endpoint(), cache_dir)
        cached = cached_folder(entry, cache_dir) if miss is not None else None
        if cached is not None:
            model = load_folder(cached, where=str(cached), advice=_HUB_ADVICE, **load)
            _log.info(
                "%s: weights %s from the original release file %s (converted earlier, cached "
                "in %s); Hub repository %s not asked: it answered %s (asked again after "
                "%s seconds, or with force_download=True)",
                name, entry.name, original_url(entry), cached, repo_id, miss, HUB_MISS_TTL_ENV,
            )  # fmt: skip
            return model
    if source in ("auto", "hub"):
        try:
            config, weights = download_folder(
                repo_id, revision=revision, cache_dir=cache_dir, force_download=force_download
            )
        except HubUnavailableError as err:
            attempts.append(err.attempt)
            if fallback and not offline():
                remember_hub_miss(repo_id, endpoint(), err.attempt.answer, cache_dir)
        else:
            folder = config.parent
            if weights.parent != folder:  # pragma: no cover - a race with a push
                raise PretrainedLoadError(
                    f"{CONFIG_NAME} and {WEIGHTS_NAME} of {repo_id} came from different commits "
                    "(the branch moved while they downloaded); load again"
                )
            model = load_folder(
                folder, where=f"Hub repository {repo_id}", advice=_HUB_ADVICE, **load
            )
            if fallback:
                forget_hub_miss(repo_id, cache_dir)
            _log.info("%s: weights from the Hugging Face Hub repository %s", name, repo_id)
            return model
    if entry is None or source == "hub" or repo or revision is not None:
        raise _failure(name, attempts, _advice(entry, attempts, repo))

    try:
        folder, made = converted_folder(
            entry, cache_dir=cache_dir, force_download=force_download, offline=offline()
        )
    except OriginalUnavailableError as err:
        attempts.append(err.attempt)
        raise _failure(name, attempts, err.advice or _advice(entry, attempts, repo)) from None
    model = load_folder(folder, where=str(folder), advice=_HUB_ADVICE, **load)
    how = "downloaded and converted into" if made else "converted earlier, cached in"
    hub = f"; {attempts[0]}" if attempts else ""
    _log.info(
        "%s: weights %s from the original release file %s (%s %s)%s",
        name, entry.name, original_url(entry), how, folder, hub,
    )  # fmt: skip
    return model


#: Endings of checkpoint files, which `t2t-vit convert` turns into a folder.
_CHECKPOINT_ENDINGS = (".pth", ".pth.tar", ".pt", ".tar", ".bin", ".ckpt", ".safetensors")


def _not_a_folder(name: str, path: Path) -> str | None:
    """What to say when `name` is a file, a URL or a checkpoint file name rather than a
    folder, a registry name or a Hub repository id; `None` when it is none of these."""
    convert = "run `t2t-vit convert CHECKPOINT OUT_DIR` and load OUT_DIR"
    loads = (
        "from_pretrained loads a folder written by save_pretrained or t2t-vit convert "
        "(config.json + model.safetensors), a registry name or a Hub repository id"
    )
    if path.is_file():
        if path.name in (CONFIG_NAME, WEIGHTS_NAME) and (path.parent / CONFIG_NAME).is_file():
            return f"{name!r} is a file of a saved folder: pass the folder {str(path.parent)!r}"
        return (
            f"{name!r} is a file; {loads}. For an original checkpoint, run "
            f"`t2t-vit convert {name} OUT_DIR` and load OUT_DIR"
        )
    lowered = name.lower()
    if lowered.startswith(("http://", "https://")):
        hub = endpoint().lower()
        for base in {hub, "https://huggingface.co", "https://hf.co"}:
            if lowered.startswith(base + "/"):
                parts = name[len(base) + 1 :].split("/")
                if len(parts) >= 2 and parts[0] and parts[1]:
                    return (
                        f"{name!r} is a web address; from_pretrained takes the Hub repository "
                        f"id: from_pretrained({f'{parts[0]}/{parts[1]}'!r})"
                    )
        return f"{name!r} is a web address; {loads}. For a checkpoint file, download it, {convert}"
    if lowered.endswith(_CHECKPOINT_ENDINGS):
        return f"{name!r} does not exist; {loads}. For a checkpoint file, {convert}"
    return None
