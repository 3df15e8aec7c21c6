"""Original `.pth` / `.pth.tar` checkpoint files: read without running code from them, and
converted into a Hub folder."""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pickle
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from torch import Tensor

from ..models.presets import PRESETS, canonical_name
from ..models.t2t_vit import T2TViT, check_model_args
from ..models.wrappers import strip_wrapper_prefixes
from ..output import TEMP_PREFIX, FolderPolicy, check_folder, write_folder
from .convert import (
    StateDictMismatchError,
    check_state_dict,
    convert_state_dict,
    detect_source,
    infer_model_args,
)
from .errors import PretrainedLoadError
from .pretrained_cfg import default_pretrained_cfg
from .registry import expected_sha256_prefix, find_weights_by_file_name, get_weights
from .serialization import (
    CONFIG_NAME,
    MODEL_CARD_NAME,
    WEIGHTS_NAME,
    folder_files,
    model_card,
    read_config,
)

__all__ = [
    "SAFE_GLOBALS",
    "ConversionResult",
    "UnsafeCheckpointError",
    "convert_checkpoint",
    "extract_state_dict",
    "load_checkpoint",
    "sha256sum",
]

#: Classes that weights-only unpickling may rebuild beyond tensors and plain containers.
#: The official files pickle their training arguments as an `argparse.Namespace`: a plain
#: attribute bag with no `__reduce__`/`__setstate__` of its own, so rebuilding one only
#: assigns the (already weights-only-safe) attribute values.
SAFE_GLOBALS: tuple[type, ...] = (argparse.Namespace,)

#: Keys that hold the weights in a training checkpoint, in order of preference: the EMA
#: weights (timm's `state_dict_ema`, what the official evaluation loads; DeiT's
#: `model_ema`), then the raw ones, then other trainers'.
STATE_DICT_KEYS: tuple[str, ...] = ("state_dict_ema", "model_ema", "state_dict", "model", "net")
#: The keys of `STATE_DICT_KEYS` that hold averaged (EMA) weights.
EMA_KEYS: tuple[str, ...] = ("state_dict_ema", "model_ema")


class UnsafeCheckpointError(ValueError):
    """A checkpoint pickles objects that weights-only loading refuses to rebuild; `names`
    lists their classes."""

    names: tuple[str, ...] = ()


def _unsafe_globals(path: Path, err: Exception) -> list[str]:
    """The classes a refused pickle names; empty when the file is damaged rather than foreign."""
    if "Weights only load failed" not in str(err):
        return []
    try:
        with path.open("rb") as f:
            found = torch.serialization.get_unsafe_globals_in_checkpoint(f)
        allowed = {f"{c.__module__}.{c.__qualname__}" for c in SAFE_GLOBALS}
        names = [g for g in found if g not in allowed]
        if names:
            return names
    except (ValueError, RuntimeError, OSError):
        pass  # not a zip checkpoint: fall back to the name in torch's message
    return re.findall(r"GLOBAL ([\w.]+)", str(err))


_ACCEPTED = "expected a file written by torch.save (.pth, .pth.tar, .bin) or a .safetensors file"
#: Leading bytes of formats people hand in by mistake, and what to call them.
_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\x1f\x8b", "gzip-compressed data (decompress it first)"),
    (b"BZh", "bzip2-compressed data (decompress it first)"),
    (b"\xfd7zXZ\x00", "xz-compressed data (decompress it first)"),
    (b"%PDF", "a PDF document"),
    (b"\x89HDF", "an HDF5 file (Keras/TensorFlow weights?)"),
    (b"version https://git-lfs", "a Git LFS pointer, not the file it points to (run git lfs pull)"),
)


_LEGACY_MAGIC = (0x1950A86A20F9469CFC6C).to_bytes(10, "little")


def _looks_like_safetensors(head: bytes, size: int) -> bool:
    if len(head) < 9:
        return False
    length = int.from_bytes(head[:8], "little")
    return 0 < length <= size - 8 and head[8:9] == b"{"


def identify(path: Path) -> tuple[Literal["torch", "safetensors"] | None, str]:
    """The checkpoint format of a file, `"torch"` or `"safetensors"`, else `None` and what
    the file looks like instead (the second item is `""` for a checkpoint).

    torch.save writes zip archives holding `data.pkl` (since PyTorch 1.6) and, before,
    pickles (protocol 2 to 5) that open with PyTorch's magic number. A damaged archive
    counts as torch's: `torch.load` says what is wrong with it.
    """
    size = path.stat().st_size
    if size == 0:
        return None, "an empty file (0 bytes; an interrupted download?)"
    with path.open("rb") as f:
        head = f.read(512)
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        import zipfile

        try:
            with zipfile.ZipFile(path) as archive:
                names = archive.namelist()
        except zipfile.BadZipFile:
            return "torch", ""
        if not any(n == "data.pkl" or n.endswith("/data.pkl") for n in names):
            return None, f"a zip archive without the data.pkl of torch.save ({len(names)} entries)"
        return "torch", ""
    if len(head) > 1 and head[0] == 0x80 and 2 <= head[1] <= 5:
        # torch.save's legacy format opens with its magic number, pickled as a LONG1.
        if head[2:14] == b"\x8a\x0a" + _LEGACY_MAGIC:
            return "torch", ""
        return None, "a Python pickle that torch.save did not write (no PyTorch magic number)"
    if _looks_like_safetensors(head, size):
        return "safetensors", ""
    return None, _looks_like(head)


def _looks_like(head: bytes) -> str:
    """What the first bytes of a file that is no checkpoint look like."""
    for magic, what in _MAGIC:
        if head.startswith(magic):
            return what
    text = head.decode("utf-8", errors="replace")
    stripped = text.lstrip().lower()
    if stripped.startswith(("<!doctype html", "<html")):
        return "an HTML page (a download that got a web page instead of the file?)"
    if "\ufffd" not in text and all(c.isprintable() or c in "\r\n\t" for c in text):
        first = text.strip().splitlines()[0] if text.strip() else ""
        return f"text ({first[:60]!r}{'...' if len(first) > 60 else ''})"
    return f"binary data of an unknown format (it starts with {head[:8].hex(' ')})"


def load_checkpoint(path: str | os.PathLike[str], *, trust_checkpoint: bool = False) -> Any:
    """Read a checkpoint file on the CPU.

    `.safetensors` files are read directly. Pickled files (`.pth`, `.pth.tar`, `.bin`) go
    through `torch.load(weights_only=True)` with only `SAFE_GLOBALS` added, so a file that
    carries any other object raises `UnsafeCheckpointError` naming it.
    `trust_checkpoint=True` unpickles with full pickle, which can run code from the file.
    """
    file = Path(path)
    if not file.is_file():
        raise FileNotFoundError(f"checkpoint {str(file)!r} does not exist or is not a file")
    kind, looks = identify(file)
    if kind is None:
        raise ValueError(f"{file} is not a PyTorch checkpoint: it looks like {looks}; {_ACCEPTED}")
    if kind == "safetensors" or file.suffix == ".safetensors":
        from safetensors import SafetensorError
        from safetensors.torch import load_file

        try:
            return load_file(str(file))
        except SafetensorError as err:
            raise ValueError(f"{file} is not a valid safetensors file: {err}") from err
    try:
        if trust_checkpoint:
            return torch.load(file, map_location="cpu", weights_only=False)
        with torch.serialization.safe_globals(list(SAFE_GLOBALS)):
            return torch.load(file, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        names = [] if trust_checkpoint else _unsafe_globals(file, err)
        if not names:
            raise ValueError(_corrupt(file, err)) from err
        refused = UnsafeCheckpointError(
            f"refusing to unpickle {file}: it holds objects of {', '.join(names)}, which "
            "weights-only loading does not rebuild (allowed beyond tensors and plain "
            f"containers: {', '.join(c.__qualname__ for c in SAFE_GLOBALS)}). If you trust "
            "where the file comes from, pass --trust-checkpoint (trust_checkpoint=True) to "
            "load it with full pickle, which can run code from the file."
        )
        refused.names = tuple(names)
        raise refused from None
    except Exception as err:
        # torch's unpicklers fail on damaged files with whatever they meet: EOFError,
        # RuntimeError, KeyError, ...
        raise ValueError(_corrupt(file, err)) from err


def _corrupt(file: Path, err: BaseException) -> str:
    detail = str(err).strip().splitlines()[0][:200] if str(err).strip() else ""
    what = f"{type(err).__name__}: {detail}" if detail else type(err).__name__
    return f"{file} is not a readable PyTorch checkpoint (truncated or corrupt?): {what}"


def _is_state_dict(obj: Any) -> bool:
    return (
        isinstance(obj, Mapping)
        and len(obj) > 0
        and all(isinstance(k, str) and isinstance(v, Tensor) for k, v in obj.items())
    )


def extract_state_dict(checkpoint: Any) -> tuple[dict[str, Tensor], str | None]:
    """The weights in a loaded checkpoint and the key they were under (`None`: the whole
    object is the state dict). Prefers the EMA weights (`state_dict_ema`, `model_ema`), then
    `state_dict`, `model`, `net`."""
    if isinstance(checkpoint, Mapping):
        for key in STATE_DICT_KEYS:
            if _is_state_dict(checkpoint.get(key)):
                return dict(checkpoint[key]), key
        if _is_state_dict(checkpoint):
            return dict(checkpoint), None
        keys = ", ".join(repr(k) for k in list(checkpoint)[:10])
        raise ValueError(
            f"no state dict in the checkpoint: expected one of {', '.join(STATE_DICT_KEYS)} "
            f"holding parameter tensors, or a flat name -> tensor mapping; its keys: {keys}"
        )
    raise ValueError(f"expected a checkpoint dict, got {type(checkpoint).__name__}")


def _ema_note(checkpoint: Any, key: str | None) -> list[str]:
    """Which weights were taken when the checkpoint holds both averaged and raw ones."""
    if key not in EMA_KEYS or not isinstance(checkpoint, Mapping):
        return []
    raw = [k for k in STATE_DICT_KEYS if k not in EMA_KEYS and _is_state_dict(checkpoint.get(k))]
    if not raw:
        return []
    return [
        f"took the EMA weights under {key!r}, as for the official files; the checkpoint also "
        f"holds raw weights under {raw[0]!r}"
    ]


# -- conversion into a Hub folder ------------------------------------------------------------


def sha256sum(path: str | os.PathLike[str]) -> str:
    """Hex SHA-256 of a file."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


@dataclass
class ConversionResult:
    """What `convert_checkpoint` wrote and decided."""

    out_dir: Path
    #: Written file name -> SHA-256.
    files: dict[str, str]
    model_args: dict[str, Any]
    #: Registry weight name or preset the architecture came from (`None`: a custom config).
    model_name: str | None
    source: str
    #: The checkpoint key the weights were read from (`None`: the file is a bare state dict).
    state_dict_key: str | None
    dropped_keys: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def _read_model_json(path: Path) -> dict[str, Any]:
    """The `T2TViT` arguments of a `--model` JSON file, checked: one line naming the file."""
    where = f"--model {str(path)!r}"
    try:
        text = path.read_text()
    except FileNotFoundError:
        raise FileNotFoundError(f"{where}: file not found") from None
    except (OSError, UnicodeDecodeError) as err:
        raise ValueError(f"{where}: cannot read it ({err})") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as err:
        raise ValueError(
            f"{where}: not valid JSON ({err.msg} at line {err.lineno} column {err.colno})"
        ) from None
    if not isinstance(data, dict):
        raise ValueError(
            f"{where}: must hold a JSON object of T2TViT arguments, got a {type(data).__name__}"
        )
    for key in ("model_args", "official_kwargs"):
        if isinstance(data.get(key), dict):
            data = dict(data[key])
            break
    try:
        check_model_args(data)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{where}: {err}") from None
    return data


def _resolve_model(
    model: str | Mapping[str, Any] | None,
    state_dict: Mapping[str, Tensor],
    checkpoint_name: str,
    sha256: str,
) -> tuple[dict[str, Any], str | None, Any, list[str]]:
    """(model kwargs, name, registry entry or None, notes)."""
    notes: list[str] = []
    if isinstance(model, str) and "." in model and not model.endswith(".json"):
        # Registry weights named by the caller: their architecture and metadata, as asked.
        named = get_weights(model)
        return named.model_args(), named.name, named, notes
    entry = find_weights_by_file_name(checkpoint_name)
    prefix = expected_sha256_prefix(checkpoint_name)
    if entry is not None and prefix is not None and not sha256.startswith(prefix):
        # The name is the release's, the bytes are not: its metrics would be a false claim.
        notes.append(
            f"{checkpoint_name} has the name of registry weights {entry.name!r} but not their "
            f"SHA-256 ({sha256[:8]}..., the name promises {prefix}...): converted as a "
            "checkpoint of its own"
        )
        entry = None
    if isinstance(model, Mapping):
        return dict(model), None, entry, notes
    if isinstance(model, str) and model.endswith(".json"):
        return _read_model_json(Path(model)), None, entry, notes
    if isinstance(model, str):
        preset = canonical_name(model)
        inferred: dict[str, Any] = {}
        # No T2T layer to read sizes from: the check against the preset says what differs.
        with contextlib.suppress(ValueError):
            inferred = infer_model_args(state_dict)[1]
        sizes = ("num_classes", "img_size", "in_chans")
        extra: dict[str, Any] = {k: inferred[k] for k in sizes if k in inferred}
        return {**PRESETS[preset], **extra}, preset, entry, notes
    if entry is not None:
        notes.append(f"recognised {entry.file_name} as registry weights {entry.name!r}")
        return entry.model_args(), entry.name, entry, notes
    found, kwargs, others = infer_model_args(state_dict)
    if found is None:
        shown = ", ".join(f"{k}={v}" for k, v in kwargs.items())
        raise ValueError(
            f"the checkpoint's shapes ({shown}) fit no preset ({', '.join(PRESETS)}); pass "
            "--model CONFIG.json with its T2TViT arguments (num_heads cannot be read from shapes)"
        )
    notes.append(f"inferred preset {found!r} from the checkpoint's shapes")
    if others:
        notes.append(
            f"the shapes also fit {', '.join(others)} (num_heads differs); pass --model to choose"
        )
    return kwargs, found, None, notes


#: The files of a folder `convert_checkpoint` wrote (and the cache's record of where it came
#: from): a folder holding only these, with its `config.json`, may be written again.
_OWN_FILES = frozenset({WEIGHTS_NAME, CONFIG_NAME, MODEL_CARD_NAME, "provenance.json"})


def _written_by_convert(folder: Path) -> bool:
    """Whether `folder` holds only what `convert_checkpoint` writes, its `config.json` with the
    `pretrained_cfg.source.format` only conversion records."""
    if any(
        p.name not in _OWN_FILES and not p.name.startswith(TEMP_PREFIX) for p in folder.iterdir()
    ):
        return False
    try:
        config = read_config(folder / CONFIG_NAME)
        return "format" in config["pretrained_cfg"]["source"]
    except (PretrainedLoadError, KeyError, TypeError):
        return False


#: Where `convert_checkpoint` may write: a new or empty folder, or one it wrote before.
CONVERT_POLICY = FolderPolicy(
    writer="convert",
    policy="convert writes into a new or empty folder, or one it wrote before",
    force_flag="--force (force=True)",
    mine=_written_by_convert,
    exclusive=True,
)


def convert_checkpoint(
    checkpoint: str | os.PathLike[str],
    out_dir: str | os.PathLike[str],
    *,
    source: str = "auto",
    model: str | Mapping[str, Any] | None = None,
    trust_checkpoint: bool = False,
    ignore_keys: Iterable[str] = (),
    sha256: str | None = None,
    force: bool = False,
) -> ConversionResult:
    """Convert an original checkpoint file into a Hub folder: `model.safetensors`,
    `config.json` and a model card `README.md`.

    `model` is a registry weight name (`t2t-vit-14.cifar10`), a preset name, a JSON file
    or a dict of `T2TViT` arguments; by default the file name is looked up in the
    registry, else the preset is inferred from the shapes. Keys starting with any of
    `ignore_keys` are dropped (and reported); every other key must be used and every
    shape must fit. The file is read with `load_checkpoint` (weights only unless
    `trust_checkpoint`). The file's SHA-256 is recorded in the folder; pass `sha256` when
    it is already known (it is computed otherwise).

    `out_dir` must be new, empty, or a folder this function wrote before; `force=True`
    writes into any folder (replacing its `config.json`, `model.safetensors` and
    `README.md`). The checkpoint itself is never overwritten. The three files are built in
    memory and written all or nothing (`t2t_vit.output`).
    """
    path = Path(checkpoint)
    names = (WEIGHTS_NAME, CONFIG_NAME, MODEL_CARD_NAME)
    inputs = {path: "the checkpoint itself"}
    if isinstance(model, str) and model.endswith(".json"):
        inputs[Path(model)] = "the --model file"
    # Refused before the checkpoint is read; checked again when the files are written.
    check_folder(out_dir, names, CONVERT_POLICY, inputs=inputs, overwrite=force)
    loaded = load_checkpoint(path, trust_checkpoint=trust_checkpoint)
    raw, key = extract_state_dict(loaded)
    notes_first = _ema_note(loaded, key)
    raw = strip_wrapper_prefixes(raw)
    prefixes = tuple(ignore_keys)
    dropped = sorted(k for k in raw if prefixes and k.startswith(prefixes))
    raw = {k: v for k, v in raw.items() if k not in dropped}
    detected: str = detect_source(raw) if source == "auto" else source
    state_dict = convert_state_dict(raw, source=detected)
    sha256 = sha256 or sha256sum(path)
    model_args, name, entry, notes = _resolve_model(model, state_dict, path.name, sha256)
    notes[:0] = notes_first
    if entry is not None and entry.source != detected:
        notes.append(
            f"registry entry {entry.name!r} is {entry.source}; the file reads as {detected}"
        )
    net = T2TViT(**model_args)
    try:
        check_state_dict(net, state_dict)
    except StateDictMismatchError as err:
        raise StateDictMismatchError(
            f"{path.name} does not fit {name or 'the given architecture'}: {err}",
            err.missing,
            err.unexpected,
            err.mismatched,
        ) from None
    net.load_state_dict(state_dict, strict=True)

    if entry is not None:
        cfg = entry.pretrained_cfg()
    else:
        # A class count other than ImageNet's gets index labels rather than a guessed dataset.
        cfg = default_pretrained_cfg(net.img_size, net.in_chans, net.num_classes)
        cfg["source"] = {"origin": f"converted from {path.name}", "file_name": path.name}
    cfg["source"]["sha256"] = sha256
    cfg["source"]["format"] = detected
    contents = folder_files(net, cfg)
    card = model_card(model_args=net.config, pretrained_cfg=cfg, name=name)
    contents[MODEL_CARD_NAME] = card.encode()
    out = write_folder(out_dir, contents, CONVERT_POLICY, inputs=inputs, overwrite=force)
    files = {n: hashlib.sha256(contents[n]).hexdigest() for n in names}
    if dropped:
        notes.append(f"dropped {len(dropped)} ignored keys: {', '.join(dropped)}")
    return ConversionResult(
        out_dir=out,
        files=files,
        model_args=net.config,
        model_name=name,
        source=detected,
        state_dict_key=key,
        dropped_keys=dropped,
        notes=notes,
    )
