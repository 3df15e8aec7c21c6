"""Publishing the registry's weights to a Hub organisation, for whoever holds one."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..output import FolderPolicy, check_folder, write_folder
from .checkpoint import _written_by_convert
from .errors import PretrainedLoadError
from .hub import check_upload_access, offline, upload_folder
from .registry import WEIGHTS, get_weights
from .release import OriginalUnavailableError, converted_folder
from .serialization import (
    CONFIG_NAME,
    MODEL_CARD_NAME,
    WEIGHTS_NAME,
    load_folder,
    model_card,
    read_config,
)

__all__ = ["PublishedWeights", "publish"]

_NAMES = (CONFIG_NAME, WEIGHTS_NAME, MODEL_CARD_NAME)

#: Where `publish` may write `OUT/<name>/`: a new or empty folder, or one it wrote before.
PUBLISH_POLICY = FolderPolicy(
    writer="publish",
    policy="publish writes each weight into a new or empty folder, or one it wrote before",
    force_flag="--force (force=True)",
    mine=_written_by_convert,
    exclusive=True,
)


@dataclass(frozen=True)
class PublishedWeights:
    """What `publish` wrote (and uploaded) for one registry entry."""

    name: str
    repo_id: str
    folder: Path
    #: SHA-256 of the original release file the folder was converted from.
    original_sha256: str
    #: huggingface_hub's commit info; `None` for a dry run.
    commit: Any = None


def publish(
    org: str,
    names: Sequence[str] = (),
    *,
    out_dir: str | os.PathLike[str],
    dry_run: bool = False,
    token: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force: bool = False,
) -> list[PublishedWeights]:
    """Download each registry entry's original (as `from_pretrained` does), convert it,
    write `<out_dir>/<name>/` with `config.json`, `model.safetensors` and a model card, check
    that the folder loads, and upload it to `<org>/<name>` (created if missing).

    `names` are weight or preset names (default: every entry); `dry_run` writes the folders
    only. Raises `PretrainedLoadError` for an original that cannot be had.

    Each `<out_dir>/<name>/` must be new, empty or written by `publish` before (`force=True`:
    any folder; its other files are kept); every folder is checked before the first
    download, and each is written all or nothing (`t2t_vit.output`).
    """
    if not org or "/" in org:
        raise ValueError(f"--org must be a Hub organisation or user name, got {org!r}")
    entries = [get_weights(n) for n in names] if names else list(WEIGHTS.values())
    entries = list(dict.fromkeys(entries))
    # A folder that cannot be written is known before any download.
    for entry in entries:
        check_folder(Path(out_dir) / entry.name, _NAMES, PUBLISH_POLICY, overwrite=force)
    if not dry_run:
        # A missing token or an unreachable Hub is known before any download.
        check_upload_access(token)
    done: list[PublishedWeights] = []
    for entry in entries:
        try:
            source, _ = converted_folder(entry, cache_dir=cache_dir, offline=offline())
        except OriginalUnavailableError as err:
            raise PretrainedLoadError(
                f"cannot publish {entry.name}: {err.attempt}", [err.attempt]
            ) from None
        repo_id = f"{org}/{entry.name}"
        dest = Path(out_dir) / entry.name
        load_folder(source)  # strict: what is uploaded loads
        config = read_config(source / CONFIG_NAME)
        cfg = config["pretrained_cfg"]
        card = model_card(model_args=config["model_args"], pretrained_cfg=cfg, name=repo_id)
        files = {n: (source / n).read_bytes() for n in (CONFIG_NAME, WEIGHTS_NAME)}
        files[MODEL_CARD_NAME] = card.encode()
        inputs = {
            source / n: "the converted copy in the cache" for n in (CONFIG_NAME, WEIGHTS_NAME)
        }
        write_folder(dest, files, PUBLISH_POLICY, inputs=inputs, overwrite=force)
        sha = cfg["source"]["sha256"]
        commit = None
        if not dry_run:
            commit = upload_folder(
                dest,
                repo_id,
                token=token,
                commit_message=f"{entry.name}: converted from {entry.file_name} (sha256 {sha})",
            )
        done.append(PublishedWeights(entry.name, repo_id, dest, sha, commit))
    return done
