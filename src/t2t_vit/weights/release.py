"""The original release files: download, verify, convert once, and keep the converted folder.

The official checkpoints are GitHub release assets and OpenMMLab's are on its download
server. `converted_folder(entry)` downloads one (following redirects, resuming a partial
download, with a progress bar), checks it, reads it weights-only, converts it into a Hub
folder and caches that folder, so that later calls, offline ones too, load it with no request.

Cache layout under `cache_root()`: `downloads/` (partial downloads, removed once converted),
`hub-misses/` (when the Hub last failed to give a registry name's repository) and
`converted/<weight name>/` (`config.json`, `model.safetensors`, `README.md` and
`provenance.json`, which records the original's URL and SHA-256 and the SHA-256 of each file).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import ssl
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..output import replace_folder
from .checkpoint import UnsafeCheckpointError, convert_checkpoint, sha256sum
from .errors import Attempt, describe_failure, local_error
from .hub import check_hub_env, timeout_from_env
from .registry import PretrainedWeights, expected_sha256_prefix
from .serialization import CONFIG_NAME, MODEL_CARD_NAME, WEIGHTS_NAME

__all__ = [
    "CACHE_ENV",
    "DEFAULT_DOWNLOAD_TIMEOUT",
    "DEFAULT_HUB_MISS_TTL",
    "HUB_MISS_TTL_ENV",
    "PROVENANCE_NAME",
    "RELEASE_MIRROR_ENV",
    "IncompleteDownloadError",
    "IntegrityError",
    "OriginalUnavailableError",
    "cache_root",
    "cached_folder",
    "converted_folder",
    "download",
    "expected_sha256_prefix",
    "forget_hub_miss",
    "original_url",
    "recent_hub_miss",
    "remember_hub_miss",
]

_log = logging.getLogger(__name__)

CACHE_ENV = "T2T_VIT_CACHE"
"""Environment variable naming the folder of downloaded and converted originals."""
RELEASE_MIRROR_ENV = "T2T_VIT_RELEASE_MIRROR"
"""Environment variable with a base URL (http://, https://, file://) or a local folder that
replaces the directory of every original URL."""
HUB_MISS_TTL_ENV = "T2T_VIT_HUB_MISS_TTL"
"""Environment variable: seconds a Hub miss is remembered (`DEFAULT_HUB_MISS_TTL`; 0: never)."""
DEFAULT_HUB_MISS_TTL = 3600.0
"""Seconds during which a registry name whose Hub repository failed loads its cached converted
original without asking the Hub again."""
PROVENANCE_NAME = "provenance.json"
"""The file of a converted folder that records where it came from and its files' SHA-256."""
DEFAULT_DOWNLOAD_TIMEOUT = 10.0
"""Seconds a download waits for each answer, unless `HF_HUB_DOWNLOAD_TIMEOUT` says."""

_CHUNK = 1 << 20


class OriginalUnavailableError(Exception):
    """The original file could not be had; `attempt` says where and what happened, and
    `advice` (when set) what to do about this kind of failure."""

    def __init__(self, attempt: Attempt, advice: str | None = None) -> None:
        super().__init__(str(attempt))
        self.attempt = attempt
        self.advice = advice


_DISK_ADVICE = (
    f"Free space on its disk or make it writable, or set {CACHE_ENV} or pass cache_dir= "
    "to use another folder."
)


def _disk_advice(root: Path, cache_dir: str | os.PathLike[str] | None) -> str:
    """What to do about a cache folder that cannot be written, naming the setting that chose
    it: advice to "set T2T_VIT_CACHE" is no help when it is set (to a file, say)."""
    env = os.environ.get(CACHE_ENV, "").strip()
    if cache_dir is not None:
        setting = f"cache_dir={os.fspath(cache_dir)!r}"
    elif env:
        setting = f"{CACHE_ENV}={env!r}"
    else:
        setting = None
    blocker = next((p for p in (root, *root.parents) if p.exists() and not p.is_dir()), None)
    if blocker is not None:
        cause = f"{blocker} is a file, not a folder: "
        if setting is not None:
            return f"{cause}point {setting.split('=')[0]} at a folder (it is {setting})."
        return f"{cause}move it, or set {CACHE_ENV} or pass cache_dir= to use another folder."
    if setting is not None:
        return (
            f"Free space on its disk or make it writable, or point {setting.split('=')[0]} "
            f"(it is {setting}) at another folder."
        )
    return _DISK_ADVICE


def _conversion_failure(
    where: str, entry: PretrainedWeights, digest: str, dest: Path, err: Exception
) -> OriginalUnavailableError:
    """The error of a verified download that did not become a converted folder."""
    local = local_error(err)
    if local is not None:
        return OriginalUnavailableError(
            Attempt(
                where,
                f"downloaded (SHA-256 {digest}) but cannot write the converted folder into "
                f"{dest.parent.parent / 'converted'} ({local.strerror})",
            ),
            advice=_DISK_ADVICE,
        )
    if isinstance(err, UnsafeCheckpointError):
        return OriginalUnavailableError(
            Attempt(
                where,
                f"downloaded (SHA-256 {digest}) but refused to unpickle it: it holds objects "
                f"of {', '.join(err.names)}, which weights-only loading does not rebuild; "
                "deleted it",
            ),
            advice=(
                f"If you trust where it comes from, download {entry.url} yourself, run "
                f"`t2t-vit convert --trust-checkpoint {entry.file_name} OUT_DIR` (full pickle, "
                "which can run code from the file) and load OUT_DIR with from_pretrained."
            ),
        )
    return OriginalUnavailableError(
        Attempt(where, f"downloaded (SHA-256 {digest}) but it does not convert: {err}")
    )


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
    check_hub_env()
    from huggingface_hub import constants

    return Path(os.environ.get("HF_HOME", "").strip() or constants.HF_HOME).expanduser() / "t2t-vit"


_MIRROR_SCHEMES = ("http://", "https://", "file://")


def original_url(entry: PretrainedWeights) -> str:
    """The entry's URL, or its file name under `$T2T_VIT_RELEASE_MIRROR` when that is set.

    The mirror is a base URL (`http://`, `https://`, `file://`) or a local folder; anything
    else raises `ValueError` naming the variable.
    """
    mirror = os.environ.get(RELEASE_MIRROR_ENV, "").strip()
    if not mirror:
        return entry.url
    if not mirror.lower().startswith(_MIRROR_SCHEMES):
        folder = Path(mirror).expanduser()
        if not folder.is_dir():
            raise ValueError(
                f"{RELEASE_MIRROR_ENV}={mirror!r} is neither a URL (http://, https://, "
                "file://) nor an existing folder"
            )
        mirror = folder.resolve().as_uri()
    return f"{mirror.rstrip('/')}/{entry.file_name}"


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
    check_hub_env()
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


def _damage(folder: Path, entry: PretrainedWeights) -> str | None:
    """What is wrong with a cached converted folder that has a record of `entry`: a file
    missing or no longer matching its SHA-256; `None` when it is whole."""
    record = _read_provenance(folder)
    if record is None or record.name != entry.name:
        return "missing"
    for name, digest in record.files.items():
        path = folder / name
        if not path.is_file():
            return f"{name} is missing"
        if sha256sum(path) != digest:
            return f"{name} no longer matches its recorded SHA-256"
    return None


def cached_folder(
    entry: PretrainedWeights, cache_dir: str | os.PathLike[str] | None = None
) -> Path | None:
    """The cached converted folder of a registry entry when it is whole, else `None`."""
    final = cache_root(cache_dir) / "converted" / entry.name
    return final if _damage(final, entry) is None else None


def _miss_file(repo_id: str, cache_dir: str | os.PathLike[str] | None) -> Path:
    return cache_root(cache_dir) / "hub-misses" / f"{repo_id.replace('/', '--')}.json"


def _miss_ttl() -> float:
    value = os.environ.get(HUB_MISS_TTL_ENV, "").strip()
    try:
        return float(value) if value else DEFAULT_HUB_MISS_TTL
    except ValueError:
        raise ValueError(
            f"{HUB_MISS_TTL_ENV}={value!r} is not a number of seconds (0: always ask the Hub)"
        ) from None


def remember_hub_miss(
    repo_id: str, endpoint: str, answer: str, cache_dir: str | os.PathLike[str] | None = None
) -> None:
    """Record that the Hub at `endpoint` did not give `repo_id` (what it answered, and when).
    A cache that cannot be written just forgets."""
    path = _miss_file(repo_id, cache_dir)
    record = {"endpoint": endpoint, "answer": answer, "time": time.time()}
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        part = path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}")
        part.write_text(json.dumps(record) + "\n")
        os.replace(part, path)
    except OSError:
        pass


def recent_hub_miss(
    repo_id: str, endpoint: str, cache_dir: str | os.PathLike[str] | None = None
) -> str | None:
    """What the Hub at `endpoint` answered for `repo_id` less than `$T2T_VIT_HUB_MISS_TTL`
    seconds ago (`DEFAULT_HUB_MISS_TTL`), with the time; `None` when there is no such miss."""
    ttl = _miss_ttl()
    path = _miss_file(repo_id, cache_dir)
    try:
        record = json.loads(path.read_text())
        when, answer = float(record["time"]), str(record["answer"])
        same = record["endpoint"] == endpoint
    except (OSError, ValueError, KeyError, TypeError):
        return None
    age = time.time() - when
    if not same or not 0 <= age < ttl:
        return None
    stamp = time.strftime("%H:%M:%S UTC", time.gmtime(when))
    return f"{answer} at {stamp}"


def forget_hub_miss(repo_id: str, cache_dir: str | os.PathLike[str] | None = None) -> None:
    """Drop the record of a Hub miss (the Hub has since answered)."""
    with contextlib.suppress(OSError):
        _miss_file(repo_id, cache_dir).unlink(missing_ok=True)


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
    damage = None if force_download else _damage(final, entry)
    if not force_download and damage is None:
        return final, False
    if offline:
        held = (
            f"the converted copy in {final} is damaged ({damage})"
            if damage and damage != "missing"
            else f"{final} holds no converted copy"
        )
        raise OriginalUnavailableError(
            Attempt(where, f"offline mode is on (HF_HUB_OFFLINE=1) and {held}")
        )
    if damage and damage != "missing":
        _log.warning("%s: %s; making it again", final, damage)
    try:
        for sub in ("locks", "downloads", "converted"):
            (root / sub).mkdir(parents=True, exist_ok=True)
        lock = FileLock(str(root / "locks" / f"{entry.name}.lock"))
        lock.acquire()
    except OSError as err:
        raise OriginalUnavailableError(
            Attempt(
                where,
                f"cannot write the cache folder {root} ({err.strerror or err})",
            ),
            advice=_disk_advice(root, cache_dir),
        ) from err
    try:
        # Another process may have made it while this one waited for the lock.
        if not force_download and _damage(final, entry) is None:
            return final, False
        dest = root / "downloads" / entry.file_name
        try:
            digest = download(url, dest, expected_prefix=expected_sha256_prefix(entry.file_name))
        except IntegrityError as err:
            raise OriginalUnavailableError(
                Attempt(where, str(err)),
                advice=(
                    f"The file served is not the published one: check what {url} serves (a "
                    f"proxy or mirror may change files), or point {RELEASE_MIRROR_ENV} at a "
                    "faithful copy."
                ),
            ) from err
        except IncompleteDownloadError as err:
            raise OriginalUnavailableError(Attempt(where, str(err))) from err
        except Exception as err:
            local = local_error(err)
            if local is not None:
                raise OriginalUnavailableError(
                    Attempt(where, f"cannot write into {dest.parent} ({local.strerror})"),
                    advice=_DISK_ADVICE,
                ) from err
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
            # Nothing trusts or resumes a complete download that did not convert.
            dest.unlink(missing_ok=True)
            raise _conversion_failure(where, entry, digest, dest, err) from err
        replace_folder(tmp, final)
        dest.unlink(missing_ok=True)
    finally:
        lock.release()
    _log.debug("converted %s (SHA-256 %s) into %s", url, digest, final)
    return final, True
