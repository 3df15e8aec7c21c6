"""The one output guard: every file that the library, its command line and its examples write.

Three rules, so that a write never loses a file:

- an output is never one of the inputs: paths are compared by device and inode, so `./x`,
  a symlink and a hard link to an input all count as the input;
- an existing file is replaced only when the writer wrote it (a folder it recognises as its
  own) or when it is told to (`--force`, `overwrite=True`);
- a folder of several files is written all or nothing: the caller builds every file's bytes
  first (a value that cannot be serialised fails before anything is written), a new folder
  is written as a temporary sibling and renamed into place, and an existing one gets the
  files staged inside it and renamed over the old ones, which are put back on any failure.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import uuid
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "TEMP_PREFIX",
    "FolderPolicy",
    "check_folder",
    "check_output_file",
    "replace_folder",
    "same_file",
    "write_file",
    "write_folder",
]

PathArg = str | os.PathLike[str]
#: Inputs of a writer: paths, or a mapping of path -> what it is ("the input image").
Inputs = Mapping[PathArg, str] | Iterable[PathArg]

#: Prefix of the staging folders and files a write leaves only while it runs.
TEMP_PREFIX = ".t2t-vit-tmp-"


def same_file(a: PathArg, b: PathArg) -> bool:
    """Whether two paths name the same file (through `./`, symlinks and hard links)."""
    try:
        sa, sb = os.stat(a), os.stat(b)
    except (OSError, ValueError):
        return False
    return (sa.st_dev, sa.st_ino) == (sb.st_dev, sb.st_ino)


def _inputs(inputs: Inputs) -> list[tuple[Path, str]]:
    if isinstance(inputs, Mapping):
        return [(Path(p), what) for p, what in inputs.items()]
    return [(Path(p), "an input") for p in inputs]


def _input_at(target: Path, inputs: Inputs) -> tuple[Path, str] | None:
    for path, what in _inputs(inputs):
        if same_file(target, path):
            return path, what
    return None


def check_output_file(
    out: PathArg,
    inputs: Inputs = (),
    *,
    force: bool = False,
    option: str = "output",
    force_flag: str = "--force",
) -> Path:
    """Refuse an output file that is an input, a folder, in a missing folder, or (without
    `force`) an existing file; returns it as a `Path`. Messages name it as `option`."""
    path = Path(out)
    hit = _input_at(path, inputs)
    if hit is not None:
        raise ValueError(f"{option} {str(path)!r} is {hit[1]}; give another file name")
    if path.is_dir():
        raise IsADirectoryError(f"{option} {str(path)!r} is a folder; give a file name")
    if not path.parent.is_dir():
        raise FileNotFoundError(f"output folder not found: {str(path.parent)!r}")
    if (path.exists() or path.is_symlink()) and not force:
        raise FileExistsError(
            f"{option} {str(path)!r} exists; give another file name, or {force_flag} to replace it"
        )
    return path


def write_file(
    out: PathArg,
    content: bytes | str | Callable[[Path], object],
    inputs: Inputs = (),
    *,
    force: bool = False,
    option: str = "output",
    force_flag: str = "--force",
) -> Path:
    """Write one file through `check_output_file`: `content` (bytes, text, or a function
    that writes the file at the path it is given, such as `image.save`) goes to a temporary
    sibling with the same suffix, which then replaces `out`, so a failure leaves `out` as it
    was."""
    path = check_output_file(out, inputs, force=force, option=option, force_flag=force_flag)
    tmp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{path.name}")
    try:
        if isinstance(content, bytes):
            tmp.write_bytes(content)
        elif isinstance(content, str):
            tmp.write_text(content)
        else:
            content(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def _never(folder: Path) -> bool:
    return False


@dataclass(frozen=True)
class FolderPolicy:
    """Which existing folders a writer may write into, and how its refusals read.

    `mine(folder)` says whether the writer wrote the folder before (its files may then be
    replaced). With `exclusive`, any other file in the folder is a reason to refuse (the
    folder must be new, empty or the writer's own); without, only the files it would replace
    are. Refusals read `"{what} 'DIR' holds other files (...); {policy}; pass {force_flag}
    to write there anyway"` (or `advice` in place of the last part).
    """

    writer: str
    policy: str
    what: str = "output folder"
    force_flag: str = "overwrite=True"
    mine: Callable[[Path], bool] = field(default=_never)
    exclusive: bool = False
    #: What to do instead, replacing `"pass {force_flag} to write there anyway"`.
    advice: str | None = None


def _listed(names: list[str]) -> str:
    return ", ".join(names[:5]) + (f", ... ({len(names)} entries)" if len(names) > 5 else "")


def check_folder(
    folder: PathArg,
    names: Iterable[str],
    policy: FolderPolicy,
    *,
    inputs: Inputs = (),
    overwrite: bool = False,
) -> Path:
    """Refuse to write the files `names` into `folder` when one of them is an input, when
    `folder` is a file, or (without `overwrite`) when it holds files the policy does not
    let the writer replace. Cheap: call it before the work, `write_folder` calls it again."""
    path = Path(folder)
    names = list(names)
    for name in names:
        hit = _input_at(path / name, inputs)
        if hit is not None:
            # The input by its own name when the output reaches it another way (a link).
            alias = "" if Path(hit[0]) == path / name else f" ({str(hit[0])!r})"
            raise ValueError(
                f"writing {path / name} would overwrite {hit[1]}{alias}; choose another "
                f"{policy.what}"
            )
    if path.exists() and not path.is_dir():
        raise FileExistsError(
            f"{policy.what} {str(path)!r} is a file; {policy.writer} writes a folder: give a "
            "new folder's path"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise NotADirectoryError(
                    f"{policy.what} {str(path)!r} is inside {str(parent)!r}, which is a file"
                )
            break
    if overwrite or not path.is_dir():
        return path
    entries = sorted(p.name for p in path.iterdir() if not p.name.startswith(TEMP_PREFIX))
    clash = entries if policy.exclusive else [n for n in entries if n in names]
    if clash and not policy.mine(path):
        advice = policy.advice or f"pass {policy.force_flag} to write there anyway"
        raise FileExistsError(
            f"{policy.what} {str(path)!r} holds other files ({_listed(clash)}); {policy.policy}; "
            f"{advice}"
        )
    return path


def write_folder(
    folder: PathArg,
    files: Mapping[str, bytes],
    policy: FolderPolicy,
    *,
    inputs: Inputs = (),
    overwrite: bool = False,
    remove: Iterable[str] = (),
) -> Path:
    """Write `files` (name -> bytes, all built beforehand) into `folder` and delete the
    files named in `remove`, all or nothing, after `check_folder`. Other files in the
    folder are left alone. Returns the folder."""
    remove = [n for n in remove if n not in files]
    path = check_folder(folder, [*files, *remove], policy, inputs=inputs, overwrite=overwrite)
    if not path.is_dir():
        _write_new_folder(path, files)
    else:
        _write_into_folder(path, files, remove)
    return path


def _write_new_folder(path: Path, files: Mapping[str, bytes]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}-{path.name}")
    tmp.mkdir()
    try:
        for name, data in files.items():
            (tmp / name).write_bytes(data)
        os.replace(tmp, path)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _write_into_folder(path: Path, files: Mapping[str, bytes], remove: list[str]) -> None:
    stage = path / f"{TEMP_PREFIX}{uuid.uuid4().hex[:8]}"
    new, old = stage / "new", stage / "old"
    moved: list[str] = []  # files now in `old`, to put back on failure
    placed: list[str] = []  # new files moved into place where none was before
    try:
        new.mkdir(parents=True)
        old.mkdir()
        for name, data in files.items():
            (new / name).write_bytes(data)
        # Everything is on disk: only renames are left.
        for name in [*files, *remove]:
            if (path / name).exists() or (path / name).is_symlink():
                os.replace(path / name, old / name)
                moved.append(name)
        for name in files:
            os.replace(new / name, path / name)
            placed.append(name)
    except BaseException:
        for name in placed:
            if name not in moved:
                with contextlib.suppress(OSError):
                    (path / name).unlink()
        for name in moved:
            with contextlib.suppress(OSError):
                os.replace(old / name, path / name)
        shutil.rmtree(stage, ignore_errors=True)
        raise
    shutil.rmtree(stage, ignore_errors=True)


def replace_folder(tmp: PathArg, final: PathArg) -> None:
    """Move the complete folder `tmp` to `final`, replacing an old `final` (a cache entry the
    library made), so that `final` is never half-written."""
    tmp, final = Path(tmp), Path(final)
    old = final.with_name(f"{TEMP_PREFIX}old-{uuid.uuid4().hex[:8]}-{final.name}")
    if final.exists():
        os.replace(final, old)
    try:
        os.replace(tmp, final)
    except OSError:
        # Another process put a folder there in between: keep theirs (or the old one).
        shutil.rmtree(tmp, ignore_errors=True)
        if old.exists() and not final.exists():
            os.replace(old, final)
    shutil.rmtree(old, ignore_errors=True)
