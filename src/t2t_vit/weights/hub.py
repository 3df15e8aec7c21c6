"""The Hugging Face Hub: downloading a converted folder and uploading one.

Downloads go through `huggingface_hub.hf_hub_download` and its cache, so `HF_HUB_OFFLINE=1`,
`HF_HOME`/`HF_HUB_CACHE`, `HF_ENDPOINT` and `revision` work as in every Hub library. One
short request comes first, so that an unreachable Hub is known within seconds rather than
after huggingface_hub's retries.
"""

from __future__ import annotations

import inspect
import logging
import math
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from torch import nn

from ..models.t2t_vit import T2TViT
from ..models.wrappers import unwrap_model
from .errors import Attempt, describe_failure
from .pretrained_cfg import resolve_pretrained_cfg
from .serialization import (
    CONFIG_NAME,
    LIBRARY_NAME,
    MODEL_CARD_NAME,
    WEIGHTS_NAME,
    folder_files,
    model_card,
)

__all__ = [
    "DEFAULT_HUB_TIMEOUT",
    "HubUnavailableError",
    "check_upload_access",
    "download_folder",
    "hub_timeout",
    "push_to_hub",
    "timeout_from_env",
    "upload_folder",
]

_log = logging.getLogger(__name__)

_COMMIT = re.compile(r"[0-9a-f]{40}")

DEFAULT_HUB_TIMEOUT = 5.0
"""Seconds the first Hub request waits for an answer, unless `HF_HUB_ETAG_TIMEOUT` says."""


class HubUnavailableError(Exception):
    """The Hub did not give the files; `attempt` says where and what it answered."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(str(attempt))
        self.attempt = attempt


def timeout_from_env(variable: str, default: float) -> float:
    """Seconds from one of huggingface_hub's timeout variables (`HF_HUB_ETAG_TIMEOUT`,
    `HF_HUB_DOWNLOAD_TIMEOUT`) if it is set, else `default`. `ValueError` names the variable
    when it is no number greater than 0 (0 would make every request fail at once)."""
    value = os.environ.get(variable, "").strip()
    if not value:
        return default
    try:
        seconds = float(value)
    except ValueError:
        seconds = math.nan
    if not 0 < seconds < math.inf:
        raise ValueError(
            f"{variable}={value!r} must be a number of seconds greater than 0 (it is "
            "huggingface_hub's setting; unset it for the default)"
        )
    return seconds


#: huggingface_hub's timeout variables, which it reads with `int()` when it is imported.
HUB_TIMEOUT_VARIABLES = ("HF_HUB_ETAG_TIMEOUT", "HF_HUB_DOWNLOAD_TIMEOUT")


def check_hub_env() -> None:
    """Before huggingface_hub is imported: `ValueError` naming a timeout variable its import
    would fail on (`int()` of `abc` or `2.5`), where huggingface_hub names none."""
    if "huggingface_hub.constants" in sys.modules:
        return
    for variable in HUB_TIMEOUT_VARIABLES:
        value = os.environ.get(variable, "").strip()
        if not value:
            continue
        try:
            int(value)
        except ValueError:
            raise ValueError(
                f"{variable}={value!r} must be a whole number of seconds greater than 0 "
                "(huggingface_hub reads it as an integer; unset it for the default)"
            ) from None


def hub_timeout() -> float:
    """`$HF_HUB_ETAG_TIMEOUT` (huggingface_hub's own setting) if set, else `DEFAULT_HUB_TIMEOUT`."""
    return timeout_from_env("HF_HUB_ETAG_TIMEOUT", DEFAULT_HUB_TIMEOUT)


def endpoint() -> str:
    """The Hub's base URL: `$HF_ENDPOINT`, else huggingface_hub's default."""
    check_hub_env()
    from huggingface_hub import constants

    # huggingface_hub reads HF_ENDPOINT once at import; reading it per call lets a process
    # (or a test) point at a mirror after importing.
    value = os.environ.get("HF_ENDPOINT", "").strip().rstrip("/")
    return value or constants.ENDPOINT


def offline() -> bool:
    """Whether `HF_HUB_OFFLINE` forbids network requests."""
    check_hub_env()
    from huggingface_hub import constants

    env = os.environ.get("HF_HUB_OFFLINE", "").strip().upper()
    return bool(constants.HF_HUB_OFFLINE) or env in {"1", "ON", "YES", "TRUE"}


def _cached(
    repo_id: str, revision: str, cache_dir: str | os.PathLike[str] | None
) -> tuple[Path, Path] | None:
    check_hub_env()
    from huggingface_hub import hf_hub_download

    try:
        config, weights = (
            Path(
                hf_hub_download(
                    repo_id,
                    name,
                    revision=revision,
                    cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                    local_files_only=True,
                )
            )
            for name in (CONFIG_NAME, WEIGHTS_NAME)
        )
    except Exception:  # not cached, whatever huggingface_hub calls it
        return None
    return config, weights


def download_folder(
    repo_id: str,
    *,
    revision: str | None = None,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
) -> tuple[Path, Path]:
    """The local paths of `config.json` and `model.safetensors` of a Hub repository.

    Raises `HubUnavailableError` naming the repository and what the Hub answered. When the
    Hub cannot be reached, or answers with a server error, a cached copy is used if there is
    one (unless `force_download`).
    """
    check_hub_env()
    from huggingface_hub import hf_hub_download, hf_hub_url

    from .. import __version__

    rev = revision or "main"
    base = endpoint()
    where = f"Hub repository {repo_id} (revision {rev}) at {base}"
    if offline():
        files = _cached(repo_id, rev, cache_dir)
        if files is not None:
            return files
        raise HubUnavailableError(
            Attempt(where, "offline mode is on (HF_HUB_OFFLINE=1) and it is not in the cache")
        )
    if _COMMIT.fullmatch(rev) and not force_download:
        # A commit never changes: a cached copy needs no request.
        files = _cached(repo_id, rev, cache_dir)
        if files is not None:
            return files
    timeout = hub_timeout()
    url = hf_hub_url(repo_id, CONFIG_NAME, revision=rev, endpoint=base)
    try:
        # One request without retries: huggingface_hub retries an unreachable Hub for
        # tens of seconds before it gives up.
        _probe(url, timeout)
    except Exception as err:
        answer = describe_failure(err, timeout=timeout, file=CONFIG_NAME)
        # No answer, or a server error (not a 4xx): a cached copy may still serve.
        if not answer.startswith("HTTP 4") and not force_download:
            files = _cached(repo_id, rev, cache_dir)
            if files is not None:
                _log.warning("%s: %s; using the cached copy", where, answer)
                return files
        raise HubUnavailableError(Attempt(where, answer)) from err
    paths: list[Path] = []
    for name in (CONFIG_NAME, WEIGHTS_NAME):
        try:
            path = hf_hub_download(
                repo_id,
                name,
                revision=rev,
                cache_dir=None if cache_dir is None else os.fspath(cache_dir),
                force_download=force_download,
                endpoint=base,
                etag_timeout=timeout,
                library_name=LIBRARY_NAME,
                library_version=__version__,
            )
        except Exception as err:
            answer = describe_failure(err, timeout=timeout, file=name)
            raise HubUnavailableError(Attempt(where, answer)) from err
        paths.append(Path(path))
    return paths[0], paths[1]


def _probe(url: str, timeout: float) -> None:
    """One HEAD request, never retried, through huggingface_hub's own session (its proxies,
    certificates and headers). Raises for no answer and for an HTTP error; a redirect is an
    answer. (`get_hf_file_metadata` would do, but retries network errors and 5xx for ~23 s in
    huggingface_hub 0.35.1-0.36.x.)"""
    # Documented utilities, importable from here in every release since 0.20.
    check_hub_env()
    from huggingface_hub.utils import (  # type: ignore[attr-defined]
        build_hf_headers,
        get_session,
        hf_raise_for_status,
    )

    from .. import __version__

    # requests.Session before huggingface_hub 1.0, an httpx client since: typed as neither.
    session: Any = get_session()
    no_redirects = (
        {"follow_redirects": False}
        if "follow_redirects" in inspect.signature(session.head).parameters
        else {"allow_redirects": False}
    )
    headers = build_hf_headers(library_name=LIBRARY_NAME, library_version=__version__)
    try:
        response = session.head(url, headers=headers, timeout=timeout, **no_redirects)
    except Exception as err:
        if "timeout" in type(err).__name__.lower() or isinstance(err, TimeoutError):
            raise  # no answer in time: a second wait would only double it
        # A kept-alive connection the server has dropped (after a 5xx, say) fails at once:
        # one more try on a fresh connection tells that from a network that is down.
        _fresh_session()
        session = get_session()
        response = session.head(url, headers=headers, timeout=timeout, **no_redirects)
    if response.status_code >= 400:
        hf_raise_for_status(response)


def _fresh_session() -> None:
    """Close huggingface_hub's shared session and its pooled connections; the next
    `get_session()` opens new ones (`close_session` since 1.0, `reset_sessions` before)."""
    check_hub_env()
    from huggingface_hub import utils

    close = getattr(utils, "close_session", None) or getattr(utils, "reset_sessions", None)
    if close is not None:
        close()


def check_upload_access(token: str | None = None) -> str:
    """Before any work that ends in an upload: that there is a Hub token and the Hub accepts
    it, one short request. Returns the account name.

    Raises `ValueError` for an empty or missing token, `PermissionError` for a token the Hub
    refuses and `ConnectionError` for a Hub that cannot be reached, each in one line.
    """
    check_hub_env()
    from huggingface_hub import get_token
    from huggingface_hub.utils import build_hf_headers, get_session  # type: ignore[attr-defined]

    from .. import __version__

    base = endpoint()
    if offline():
        raise ConnectionError("offline mode is on (HF_HUB_OFFLINE=1); uploading needs the Hub")
    if token is not None and not token.strip():
        raise ValueError(
            'the Hub token is empty (an unset variable in --token "$HF_TOKEN"?); pass a token, '
            "or log in with `hf auth login`"
        )
    effective = token or get_token()
    if not effective:
        raise ValueError("no Hub token: log in with `hf auth login`, set HF_TOKEN, or pass --token")
    timeout = hub_timeout()
    headers = build_hf_headers(
        token=effective, library_name=LIBRARY_NAME, library_version=__version__
    )
    session: Any = get_session()
    try:
        # One request, never retried: huggingface_hub's own calls retry for tens of seconds.
        response = session.get(f"{base}/api/whoami-v2", headers=headers, timeout=timeout)
    except Exception as err:
        answer = describe_failure(err, timeout=timeout)
        raise ConnectionError(f"cannot reach the Hub at {base}: {answer}") from None
    if response.status_code == 401:
        raise PermissionError(
            f"the Hub at {base} refused the token (HTTP 401); check it, or log in again with "
            "`hf auth login`"
        )
    if response.status_code >= 400:
        raise ConnectionError(
            f"the Hub at {base} answered HTTP {response.status_code} to the token check"
        )
    try:
        name = response.json().get("name", "")
    except (ValueError, AttributeError):
        name = ""
    return str(name)


def upload_folder(
    folder: str | os.PathLike[str],
    repo_id: str,
    *,
    private: bool | None = None,
    token: str | None = None,
    commit_message: str = "Upload T2T-ViT weights",
    revision: str | None = None,
    create_pr: bool = False,
) -> Any:
    """Create the Hub model repository if missing and upload a folder's files to its root.
    Returns huggingface_hub's commit info."""
    check_hub_env()
    from huggingface_hub import HfApi

    api = HfApi(endpoint=endpoint(), token=token)
    # Older huggingface_hub sends private=None as null; leave it out unless it is chosen.
    if private is None:
        api.create_repo(repo_id, exist_ok=True, repo_type="model")
    else:
        api.create_repo(repo_id, private=private, exist_ok=True, repo_type="model")
    return api.upload_folder(
        repo_id=repo_id,
        folder_path=os.fspath(folder),
        commit_message=commit_message,
        revision=revision,
        create_pr=create_pr,
        repo_type="model",
    )


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
    (created if missing). Returns huggingface_hub's commit info. A model inside
    `torch.compile` or (Distributed)DataParallel is uploaded as the model inside."""
    model = unwrap_model(model, "push_to_hub")
    if not isinstance(model, T2TViT):
        raise TypeError(f"push_to_hub expects a T2TViT, got {type(model).__name__}")
    cfg = pretrained_cfg or resolve_pretrained_cfg(model)
    files = folder_files(model, cfg)  # a config that cannot be written fails before the Hub
    files[MODEL_CARD_NAME] = model_card(
        model_args=model.config, pretrained_cfg=cfg, name=repo_id
    ).encode()
    check_upload_access(token)
    with tempfile.TemporaryDirectory() as tmp:
        for name, data in files.items():
            (Path(tmp) / name).write_bytes(data)
        return upload_folder(
            tmp,
            repo_id,
            private=private,
            token=token,
            commit_message=commit_message,
            revision=revision,
            create_pr=create_pr,
        )
