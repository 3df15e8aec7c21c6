"""The original release files: download, verify, convert once, and keep the converted folder.

The official checkpoints are GitHub release assets and OpenMMLab's are on its download
server. `converted_folder(entry)` downloads one (following redirects, resuming a partial
download, with a progress bar), checks it, reads it weights-only, converts it into a Hub
folder and caches that folder, so that later calls, offline ones too, load it with no request.

Cache layout under `cache_root()`: `downloads/` (partial downloads, removed once converted)
and `converted/<weight name>/` (`config.json`, `model.safetensors`, `README.md` and
`provenance.json`, which records the original's URL and SHA-256 and the SHA-256 of each file).
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import ssl
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .checkpoint import convert_checkpoint, sha256sum
from .errors import Attempt, describe_failure
from .hub import timeout_from_env
from .registry import PretrainedWeights
from .serialization import CONFIG_NAME, MODEL_CARD_NAME, WEIGHTS_NAME

__all__ = [
    "CACHE_ENV",
    "DEFAULT_DOWNLOAD_TIMEOUT",
    "PROVENANCE_NAME",
    "RELEASE_MIRROR_ENV",
    "IncompleteDownloadError",
    "IntegrityError",
    "OriginalUnavailableError",
    "cache_root",
    "converted_folder",
    "download",
    "expected_sha256_prefix",
    "original_url",
]

_log = logging.getLogger(__name__)

CACHE_ENV = "T2T_VIT_CACHE"
"""Environment variable naming the folder of downloaded and converted originals."""
RELEASE_MIRROR_ENV = "T2T_VIT_RELEASE_MIRROR"
"""Environment variable with a base URL that replaces the directory of every original URL."""
PROVENANCE_NAME = "provenance.json"
"""The file of a converted folder that records where it came from and its files' SHA-256."""
DEFAULT_DOWNLOAD_TIMEOUT = 10.0
"""Seconds a download waits for each answer, unless `HF_HUB_DOWNLOAD_TIMEOUT` says."""

_CHUNK = 1 << 20
_HASH_SUFFIX = re.compile(r"-([0-9a-f]{8})\.pth$")


class OriginalUnavailableError(Exception):
    """The original file could not be had; `attempt` says where and what happened."""

    def __init__(self, attempt: Attempt) -> None:
        super().__init__(str(attempt))
        self.attempt = attempt


class IncompleteDownloadError(OSError):
    """The connection closed before the whole file came; the partial file is kept."""


class IntegrityError(ValueError):
    """A downloaded file's SHA-256 is not the one its name promises."""


def cache_root(cache_dir: str | os.PathLike[str] | None = None) -> Path:
    """Where converted originals live: `<cache_dir>/t2t-vit` when `cache_dir` is given, else
    `$T2T_VIT_CACHE`, else `t2t-vit` under the Hugging Face cache root (`$HF_HOME`, by default
    `~/.cache/huggingface`)."""
    if cache_dir is not None:
        return Path(cache_dir).expanduser() / "t2t-vit"
    env = os.environ.get(CACHE_ENV, "").strip()
    if env:
        return Path(env).expanduser()
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME", "").strip() or constants.HF_HOME).expanduser() / "t2t-vit"


def original_url(entry: PretrainedWeights) -> str:
    """The entry's URL, or its file name under `$T2T_VIT_RELEASE_MIRROR` when that is set."""
    mirror = os.environ.get(RELEASE_MIRROR_ENV, "").strip()
    return f"{mirror.rstrip('/')}/{entry.file_name}" if mirror else entry.url


def expected_sha256_prefix(file_name: str) -> str | None:
    """The SHA-256 prefix that OpenMMLab writes into its file names (`...-f7378dd5.pth`)."""
    match = _HASH_SUFFIX.search(file_name)
    return match.group(1) if match else None


def _timeout() -> float:
    return timeout_from_env("HF_HUB_DOWNLOAD_TIMEOUT", DEFAULT_DOWNLOAD_TIMEOUT)


def _opener() -> urllib.request.OpenerDirector:
    # The system's certificates plus certifi's (installed with huggingface_hub's HTTP
    # client): some Python builds ship without a usable system store.
    context = ssl.create_default_context()
    try:
        import certifi

        context.load_verify_locations(certifi.where())
    except (ImportError, OSError):
        pass
    # urllib follows redirects (release assets answer 302 to a storage host) and honours
    # the usual proxy environment variables.
    return urllib.request.build_opener(urllib.request.HTTPSHandler(context=context))


def _progress(total: int | None, initial: int, name: str) -> Any:
    # huggingface_hub's tqdm: it honours HF_HUB_DISABLE_PROGRESS_BARS.
    from huggingface_hub.utils import tqdm  # type: ignore[attr-defined]

    return tqdm(  # type: ignore[no-untyped-call]
        total=total,
        initial=initial,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=name,
        leave=False,
    )


def download(url: str, dest: Path, *, expected_prefix: str | None = None) -> str:
    """Download `url` to `dest` and return its SHA-256.

    The bytes go to `dest` + `.incomplete` first; a later call resumes from there (with an
    HTTP range request) and only a complete, verified file is renamed to `dest`. A file
    whose SHA-256 does not start with `expected_prefix` is deleted and `IntegrityError`
    names both hashes. Network failures raise as they come (see `describe_failure`).
    """
    from .. import __version__

    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".incomplete")
    start = part.stat().st_size if part.exists() else 0
    headers = {"User-Agent": f"t2t-vit/{__version__}"}
    if start:
        headers["Range"] = f"bytes={start}-"
    request = urllib.request.Request(url, headers=headers)
    try:
        response = _opener().open(request, timeout=_timeout())
    except urllib.error.HTTPError as err:
        if err.code == 416 and start:
            # The partial file is not a prefix the server knows: start again.
            part.unlink()
            return download(url, dest, expected_prefix=expected_prefix)
        raise
    with response:
        resumed = start > 0 and response.status == 206
        # A server that ignores the range sends the whole file: start it again.
        offset = start if resumed else 0
        length = response.headers.get("Content-Length")
        total = int(length) + offset if length and length.isdigit() else None
        with (
            part.open("ab" if resumed else "wb") as out,
            _progress(total, offset, dest.name) as bar,
        ):
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                bar.update(len(chunk))
    size = part.stat().st_size
    if total is not None and size != total:
        raise IncompleteDownloadError(
            f"the connection closed after {size} of {total} bytes; the next call resumes the "
            "download"
        )
    digest = sha256sum(part)
    if expected_prefix is not None and not digest.startswith(expected_prefix):
        part.unlink()
        raise IntegrityError(
            f"SHA-256 mismatch: the file name promises {expected_prefix}..., the download "
            f"is {digest}; deleted it"
        )
    os.replace(part, dest)
    return digest


@dataclass(frozen=True)
class _Provenance:
    name: str
    url: str
    downloaded_from: str
    sha256: str
    files: dict[str, str]


def _read_provenance(folder: Path) -> _Provenance | None:
    try:
        data = json.loads((folder / PROVENANCE_NAME).read_text())
        return _Provenance(**data)
    except (OSError, ValueError, TypeError):
        return None


def _valid(folder: Path, entry: PretrainedWeights) -> bool:
    """Whether a cached converted folder is complete and each file still has its SHA-256."""
    record = _read_provenance(folder)
    if record is None or record.name != entry.name:
        return False
    for name, digest in record.files.items():
        path = folder / name
        if not path.is_file() or sha256sum(path) != digest:
            _log.warning(
                "%s: %s no longer matches its recorded SHA-256; re-making it", folder, name
            )
            return False
    return True


def _replace_folder(tmp: Path, final: Path) -> None:
    """Move `tmp` to `final`, replacing an old `final`, so that `final` is never half-written."""
    old = final.with_name(f".{final.name}.old-{uuid.uuid4().hex[:8]}")
    if final.exists():
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process put a folder there in between: keep theirs.
        shutil.rmtree(tmp, ignore_errors=True)
    shutil.rmtree(old, ignore_errors=True)


def converted_folder(
    entry: PretrainedWeights,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    force_download: bool = False,
    offline: bool = False,
) -> tuple[Path, bool]:
    """The cached converted folder of a registry entry's original file, made if needed.

    Returns `(folder, made)`: `made` is True when this call downloaded and converted it.
    A cached folder whose files no longer match their recorded SHA-256 is made again.
    Raises `OriginalUnavailableError` (naming the URL and what happened) when the file
    cannot be downloaded, is not what its name promises, or does not convert.
    """
    from filelock import FileLock  # a dependency of huggingface_hub

    root = cache_root(cache_dir)
    final = root / "converted" / entry.name
    url = original_url(entry)
    where = f"original file {url}"
    if not force_download and _valid(final, entry):
        return final, False
    if offline:
        raise OriginalUnavailableError(
            Attempt(
                where, f"offline mode is on (HF_HUB_OFFLINE=1) and {final} holds no converted copy"
            )
        )
    try:
        for sub in ("locks", "downloads", "converted"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / "locks" / f"{entry.name}.lock"))
        lock.acquire()
    except OSError as err:
        raise OriginalUnavailableError(
            Attempt(
                where,
                f"cannot write the cache folder {root} ({err.strerror or err}); set "
                f"{CACHE_ENV} or pass cache_dir= to use another",
            )
        ) from err
    try:
        # Another process may have made it while this one waited for the lock.
        if not force_download and _valid(final, entry):
            return final, False
        dest = root / "downloads" / entry.file_name
        try:
            digest = download(url, dest, expected_prefix=expected_sha256_prefix(entry.file_name))
        except (IntegrityError, IncompleteDownloadError) as err:
            raise OriginalUnavailableError(Attempt(where, str(err))) from err
        except Exception as err:
            raise OriginalUnavailableError(
                Attempt(where, describe_failure(err, timeout=_timeout()))
            ) from err
        tmp = final.with_name(f".{entry.name}.tmp-{uuid.uuid4().hex[:8]}")
        try:
            # Weights only, whatever the caller passes: this file came from the network.
            result = convert_checkpoint(
                dest, tmp, model=entry.name, trust_checkpoint=False, sha256=digest
            )
            files = {n: result.files[n] for n in (WEIGHTS_NAME, CONFIG_NAME, MODEL_CARD_NAME)}
            record = _Provenance(entry.name, entry.url, url, digest, files)
            (tmp / PROVENANCE_NAME).write_text(json.dumps(record.__dict__, indent=2) + "\n")
        except Exception as err:
            shutil.rmtree(tmp, ignore_errors=True)
            raise OriginalUnavailableError(
                Attempt(where, f"downloaded (SHA-256 {digest}) but it does not convert: {err}")
            ) from err
        _replace_folder(tmp, final)
        dest.unlink(missing_ok=True)
    finally:
        lock.release()
    _log.debug("converted %s (SHA-256 %s) into %s", url, digest, final)
    return final, True
