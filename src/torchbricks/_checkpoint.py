"""Per-brick checkpoints: one weights file per brick, in folders mirroring the collection's nesting.

`backbone.pt`, `head0/classify.pt`, ... Only bricks with a non-empty `state_dict` get a file. Files are
written atomically (each to a temporary file in its folder, renamed with `os.replace` once every file is complete;
a hidden manifest, `MANIFEST_FILE`, renamed first, lets a load refuse the mix a save killed between two renames leaves),
and loading never executes code from a file: `.pt` files are read with `torch.load(weights_only=True)`, `.safetensors` files with
safetensors. A load reads and checks every file before it changes any brick, so a failing load leaves the
collection as it was. Each file is opened once, hashed for the manifest's check and deserialized from that opening, so
the file checked is the file loaded (`_read_once`).
"""

from __future__ import annotations

import copy
import difflib
import hashlib
import json
import warnings
from collections.abc import Callable, Iterable, Mapping
from functools import partial
from pathlib import Path
from typing import Any, Literal

import torch

from torchbricks._extras import require
from torchbricks._files import file_sha256, update_with_file, write_all_atomically
from torchbricks.bricks import BrickInterface
from torchbricks.errors import (
    CheckpointError,
    CheckpointExistsError,
    CheckpointNotADirectoryError,
    CheckpointNotFoundError,
    MissingExtraError,
    did_you_mean,
)

__all__ = ["FileFormat", "MissingFiles", "load_bricks", "read_training_checkpoint", "save_bricks", "unreadable_reason"]

FileFormat = Literal["pt", "safetensors"]
_SUFFIXES: dict[str, str] = {"pt": ".pt", "safetensors": ".safetensors"}


def save_bricks(
    bricks: Iterable[tuple[str, BrickInterface]], path_model_folder: Path | str, exist_ok: bool, file_format: FileFormat
) -> list[Path]:
    """Writes one file per brick with weights; returns the files written.

    Raises:
        CheckpointExistsError: A target file exists and `exist_ok` is False; nothing has been written.
        CheckpointError: The format is safetensors and a brick has state that is not a tensor; nothing has been
            written.
    """
    suffix = _suffix(file_format)
    folder = Path(path_model_folder)
    targets = [(folder / f"{path}{suffix}", path, state) for path, brick in bricks if (state := brick.state_dict())]
    # A brick's file in the other format is part of its checkpoint too: left beside the new one, it would make
    # the folder ambiguous to load.
    other_formats = {
        target: [folder / f"{path}{other}" for other in _SUFFIXES.values() if other != suffix] for target, path, _ in targets
    }
    existing = [str(file) for target, _, _ in targets for file in (target, *other_formats[target]) if file.exists()]
    if existing and not exist_ok:
        raise CheckpointExistsError(
            f"Brick checkpoint files already exist: {existing}. Pass exist_ok=True to overwrite them, or save to another folder."
        )
    if file_format == "safetensors":  # every brick is checked before the first file is written
        for _, path, state in targets:
            _check_tensors_only(path, state)
    write = _writer(file_format)
    for target, _, _ in targets:
        target.parent.mkdir(parents=True, exist_ok=True)
    # Every file is complete before the first replaces its old one: a failed save (a full disk) leaves the old
    # checkpoint whole, not some bricks of the new one beside others of the old. The renames that follow cannot
    # happen at once: the manifest, renamed first, records each file's new and previous contents, so a load after a
    # save killed between two renames refuses the mix (`_check_one_save`) rather than loading old and new bricks.
    entries: dict[str, dict[str, Any]] = {}

    def write_and_record(state: Mapping[str, Any], target: Path, temporary: Path) -> None:
        write(state, temporary)
        name = target.relative_to(folder).as_posix()
        entries[name] = {"sha256": file_sha256(temporary), "previous_sha256": _sha256_if_file(target)}

    def write_manifest(temporary: Path) -> None:
        text = json.dumps({"format": MANIFEST_FORMAT, "files": entries}, indent=2, sort_keys=True) + "\n"
        temporary.write_text(text, encoding="utf-8")

    writes = [(target, partial(write_and_record, state, target)) for target, _, state in targets]
    write_all_atomically([*writes, (folder / MANIFEST_FILE, write_manifest)], rename_first=folder / MANIFEST_FILE)
    for target, _, _ in targets:
        for stale in other_formats[target]:
            stale.unlink(missing_ok=True)  # only once the new files are in place
    return [target for target, _, _ in targets]


MissingFiles = Literal["warn", "error"]
_MISSING_FILES: tuple[str, ...] = ("warn", "error")


def load_bricks(
    bricks: Iterable[tuple[str, BrickInterface]],
    path_model_folder: Path | str,
    file_format: FileFormat | None = None,
    missing: MissingFiles = "warn",
) -> list[str]:
    """Loads every brick that has weights from its file; returns the paths of the bricks loaded.

    A brick with weights but no file keeps its weights, with a warning naming it (`missing="warn"`), or the load
    fails before any brick changes (`missing="error"`). The format is read from each file's suffix; with
    `file_format` only files of that format are read.

    Raises:
        CheckpointNotFoundError: The folder does not exist.
        CheckpointNotADirectoryError: The path is a file.
        CheckpointError: A file does not match its brick (missing or unexpected tensors, other shapes), a
            brick has files in two formats, a file cannot be read, or (`missing="error"`) a brick with weights has
            no file. No brick has been changed.
        MissingExtraError: A file is in safetensors format and safetensors is not installed.
    """
    if missing not in _MISSING_FILES:
        raise CheckpointError(f"load_bricks got missing={missing!r}; expected one of {list(_MISSING_FILES)}.")
    folder = _checkpoint_folder(Path(path_model_folder))
    suffixes = list(_SUFFIXES.values()) if file_format is None else [_suffix(file_format)]
    manifest = _read_manifest(folder)
    staged: list[tuple[str, Path, BrickInterface, Mapping[str, torch.Tensor]]] = []
    digests: dict[str, str] = {}  # file (relative to the folder) -> SHA-256 of the bytes read
    unreadable: list[CheckpointError] = []
    without_file: list[str] = []
    expected_files: set[Path] = set()
    for path, brick in bricks:
        current = brick.state_dict()
        files = [folder / f"{path}{suffix}" for suffix in suffixes]
        expected_files.update(files)
        present = [file for file in files if file.is_file()]
        if not current:
            continue
        if not present:
            without_file.append(path)
            continue
        if len(present) > 1:
            raise CheckpointError(f"Brick {path!r} has checkpoint files in two formats: {[str(f) for f in present]}; keep one.")
        try:
            staged.append((path, present[0], brick, _read_once(folder, present[0], _device_of(current), digests)))
        except CheckpointError as error:  # said after a mix of two saves, which needs every file's digest
            unreadable.append(error)
    if manifest is not None:
        _check_one_save(folder, manifest, digests)
    if unreadable:
        raise unreadable[0]
    for path, file, brick, state in staged:
        _check(path, file, state, brick.state_dict(), _filled_on_load(brick))
    loaded = [path for path, _, _, _ in staged]
    if without_file and missing == "error":
        raise CheckpointError(_without_file_message(folder, without_file, expected_files, suffixes))
    for path in without_file:
        warnings.warn(
            f"Brick {path!r} has weights but no checkpoint file in {str(folder)!r}; it keeps its current weights. "
            'Pass missing="error" to make this an error.',
            stacklevel=3,
        )
    _warn_about_unused_files(folder, expected_files, suffixes)
    _load_all_or_nothing(staged)
    return loaded


def _checkpoint_folder(folder: Path) -> Path:
    if folder.exists() and not folder.is_dir():
        raise CheckpointNotADirectoryError(
            f"The brick checkpoint path {str(folder)!r} is a file; load_bricks needs the folder save_bricks wrote."
        )
    if not folder.is_dir():
        raise CheckpointNotFoundError(f"The brick checkpoint folder {str(folder)!r} does not exist.")
    return folder


def _load_all_or_nothing(staged: list[tuple[str, Path, BrickInterface, Mapping[str, torch.Tensor]]]) -> None:
    """Loads each brick its checked state. A brick can still refuse a value as it loads (its `set_extra_state` or a
    load hook); then every brick gets back the state it had, from a copy kept on the CPU, and the error names the file."""
    kept = [{key: _copy_of(value) for key, value in brick.state_dict().items()} for _, _, brick, _ in staged]
    for index, (path, file, brick, state) in enumerate(staged):
        try:
            brick.load_state_dict(state, strict=True)
        except Exception as error:
            for (_, _, changed, _), before in zip(staged[: index + 1], kept, strict=False):
                changed.load_state_dict(before, strict=True)
            raise CheckpointError(
                f"Brick {path!r} refused its checkpoint {str(file)!r} as it loaded: {type(error).__name__}: "
                f"{str(error).rstrip('.')}. No brick has been changed."
            ) from error


def _copy_of(value: object) -> object:
    if isinstance(value, torch.Tensor):
        return value.detach().to("cpu", copy=True)
    return copy.deepcopy(value)  # a module's extra state


def _suffix(file_format: str) -> str:
    if file_format not in _SUFFIXES:
        raise CheckpointError(f"Unknown checkpoint format {file_format!r}. Available: {list(_SUFFIXES)}.")
    return _SUFFIXES[file_format]


def _writer(file_format: str) -> Callable[[Mapping[str, Any], Path], None]:
    if file_format == "safetensors":
        return _write_safetensors
    return _write_pt


def _write_pt(state: Mapping[str, Any], file: Path) -> None:
    torch.save(state, file)  # the state dict itself, so its version metadata survives


MANIFEST_FILE = ".torchbricks_bricks.json"
"""What the last `save_bricks` into a folder wrote: each file's SHA-256, and that of the file it replaced (null: none).
Hidden, so a folder's brick files are what they were (`trained_weights_digest` and the unused-file warning skip it)."""
MANIFEST_FORMAT = "torchbricks-bricks/1"


def _sha256_if_file(path: Path) -> str | None:
    return file_sha256(path) if path.is_file() else None


def _read_manifest(folder: Path) -> dict[str, dict[str, Any]] | None:
    """The files of the last save into `folder` by name (`MANIFEST_FILE`), each with its SHA-256 and that of the file
    it replaced; None for a folder without a manifest (saved before torchbricks wrote one).

    Raises:
        CheckpointError: The manifest is not the JSON `save_bricks` writes.
    """
    path = folder / MANIFEST_FILE
    if not path.is_file():
        return None
    try:
        manifest = json.loads(path.read_text(encoding="utf-8"))
        return {str(name): dict(entry) for name, entry in manifest["files"].items()}
    except (UnicodeDecodeError, json.JSONDecodeError, KeyError, TypeError, AttributeError, ValueError) as error:
        raise CheckpointError(
            f"The manifest {str(path)!r} of the brick checkpoint is not the JSON save_bricks writes ({type(error).__name__}: "
            f"{error}); save the bricks again, or delete it to load the files as they are."
        ) from error


def _check_one_save(folder: Path, files: Mapping[str, Mapping[str, Any]], digests: Mapping[str, str]) -> None:
    """Refuses a folder whose brick files are partly those of the last save and partly those it replaced: a save killed
    between its renames (`MANIFEST_FILE`, read as `files`). `digests` are the SHA-256 of the files the load read (by
    name); a file of the manifest no brick read is hashed here. Files of neither save (replaced by hand) are not judged,
    and a missing file is left to the missing-file rule of `load_bricks`.

    Raises:
        CheckpointError: Naming the files of each save.
    """
    new, previous = [], []
    for name, entry in sorted(files.items()):
        current = digests[name] if name in digests else _sha256_if_file(folder / name)
        if current is None:
            continue  # deleted (or not written yet): the brick has no file, which load_bricks warns or errs about
        if current == entry.get("sha256") and current != entry.get("previous_sha256"):
            new.append(name)
        elif current == entry.get("previous_sha256") and current != entry.get("sha256"):
            previous.append(name)
    if new and previous:
        raise CheckpointError(
            f"The brick checkpoint {str(folder)!r} mixes two saves: {new} are of the last save, but {previous} are still "
            "the files it replaced (a save stopped between its renames). Loading it would give bricks of two trainings; "
            "save the bricks again. No brick has been changed."
        )


def _check_tensors_only(brick_path: str, state: Mapping[str, object]) -> None:
    not_tensors = [key for key, value in state.items() if not isinstance(value, torch.Tensor)]
    if not_tensors:
        raise CheckpointError(
            f"Brick {brick_path!r} has state that is not a tensor ({not_tensors}); safetensors stores tensors only. "
            'Use file_format="pt".'
        )


def _write_safetensors(state: Mapping[str, Any], file: Path) -> None:
    safetensors_torch = require("safetensors.torch", "safetensors")
    # Copies: safetensors refuses tensors sharing storage (tied weights) and non-contiguous ones.
    copies = {key: value.detach().to("cpu", copy=True).contiguous() for key, value in state.items()}
    safetensors_torch.save_file(copies, str(file))


def _device_of(state: Mapping[str, object]) -> torch.device:
    for value in state.values():
        if isinstance(value, torch.Tensor):
            return value.device
    return torch.device("cpu")


def _read_once(folder: Path, file: Path, device: torch.device, digests: dict[str, str]) -> Mapping[str, torch.Tensor]:
    """The state dict in the brick checkpoint `file`, on `device`, from one opening of the file, whose SHA-256 goes into
    `digests` (by its name in `folder`) for the manifest's check: the file checked is the file loaded, even when a save
    replaces it meanwhile. A `.pt` file is hashed through the opened file and deserialized from it (a second pass
    served by the page cache: reading its bytes into memory first cost 0.1 s more per 100 MB, and as much memory,
    `benchmarks/bench_load_bricks.py`); safetensors reads from a path or from bytes only, so a `.safetensors` file is
    read into memory once, hashed and deserialized from those bytes."""
    name = file.relative_to(folder).as_posix()
    try:
        with open(file, "rb") as opened:
            if file.suffix == ".safetensors":
                data = opened.read()
                digests[name] = hashlib.sha256(data).hexdigest()
                safetensors_torch = require("safetensors.torch", "safetensors")
                return {key: value.to(device) for key, value in safetensors_torch.load(data).items()}
            digest = hashlib.sha256()
            update_with_file(digest, opened)
            digests[name] = digest.hexdigest()
            opened.seek(0)
            state = torch.load(opened, map_location=device, weights_only=True)
    except MissingExtraError:
        raise
    except Exception as error:
        raise CheckpointError(f"Cannot read the brick checkpoint {str(file)!r}: {unreadable_reason(error, file)}") from error
    if not isinstance(state, Mapping):
        raise CheckpointError(f"The brick checkpoint {str(file)!r} holds a {type(state).__name__}, not a state dict.")
    return state


def read_training_checkpoint(file: Path, mmap: bool = False) -> dict[str, Any]:
    """A checkpoint Lightning wrote (`checkpoints/last.ckpt`, `best.ckpt`), on the CPU, read without executing code.

    Raises:
        CheckpointError: The file cannot be read (empty, cut short, not a PyTorch file) or holds no dict; the error
            names it.
    """
    try:
        saved = torch.load(file, map_location="cpu", mmap=mmap, weights_only=True)
    except Exception as error:
        raise CheckpointError(f"Cannot read the training checkpoint {str(file)!r}: {unreadable_reason(error, file)}") from error
    if not isinstance(saved, dict):
        raise CheckpointError(
            f"The training checkpoint {str(file)!r} holds a {type(saved).__name__}; expected the dict Lightning writes."
        )
    return saved


_CUT_SHORT = ("central directory", "not fully covered", "header too small")
"""What torch's zip reader and safetensors say of a file whose end is missing."""


def unreadable_reason(error: Exception, file: Path) -> str:
    """Why `torch.load` (or safetensors) could not read `file`, in words a user can act on."""
    text = str(error).strip()
    if file.stat().st_size == 0 or isinstance(error, EOFError):
        return "the file is empty or cut short."
    if any(sign in text for sign in _CUT_SHORT):
        return "the file is cut short (a copy or a write that did not finish) or is not a PyTorch file."
    if "weights_only" in text:  # torch's advice to load it unsafely does not fit a file that should be a state dict
        return (
            "it is not a state dict that torch.load reads safely (tensors only): not a PyTorch file, or one holding "
            "other objects. Save the weights with torch.save(model.state_dict(), PATH)."
        )
    return text.splitlines()[0] if text else type(error).__name__


def _filled_on_load(brick: BrickInterface) -> set[str]:
    """The state entries of `brick` that a checkpoint may lack: those its modules name in `state_filled_on_load` and
    fill in themselves as they load (an older file, saved before the module kept them)."""
    return {
        f"{name}.{key}" if name else key
        for name, module in brick.named_modules()
        for key in getattr(module, "state_filled_on_load", ())
    }


def _check(path: str, file: Path, state: Mapping[str, object], current: Mapping[str, object], filled_on_load: set[str]) -> None:
    missing = [key for key in current if key not in state and key not in filled_on_load]
    unexpected = [key for key in state if key not in current]
    if missing or unexpected:
        hint = did_you_mean(unexpected[0], missing) if unexpected and missing else ""
        raise CheckpointError(
            f"Brick {path!r} does not match its checkpoint {str(file)!r}: missing tensors {missing}, unexpected "
            f"tensors {unexpected}.{hint}"
        )
    for key, value in current.items():
        if key not in state:
            continue
        saved = state[key]
        if isinstance(value, torch.Tensor) and (not isinstance(saved, torch.Tensor) or saved.shape != value.shape):
            got = f"shape {list(saved.shape)}" if isinstance(saved, torch.Tensor) else f"a {type(saved).__name__}"
            raise CheckpointError(
                f"Brick {path!r}: tensor {key!r} in {str(file)!r} has {got}, but the brick expects shape {list(value.shape)}."
            )


def _without_file_message(folder: Path, without_file: list[str], expected: set[Path], suffixes: list[str]) -> str:
    unused = _unused_files(folder, expected, suffixes)
    by_brick_path = {name.rsplit(".", 1)[0]: name for name in unused}
    close = difflib.get_close_matches(without_file[0], list(by_brick_path), n=1, cutoff=0.6)
    hint = f" Is {by_brick_path[close[0]]!r} the file of {without_file[0]!r} under another name?" if close else ""
    return (
        f"Bricks {without_file} have weights but no checkpoint file ({' or '.join(suffixes)}) in {str(folder)!r}; "
        f"they would keep their current weights. Files matching no brick: {unused}.{hint} No brick has been changed."
    )


def _unused_files(folder: Path, expected: set[Path], suffixes: list[str]) -> list[str]:
    return sorted(
        str(file.relative_to(folder))
        for suffix in suffixes
        for file in folder.rglob(f"*{suffix}")
        if file not in expected and not file.name.startswith(".")
    )


def _warn_about_unused_files(folder: Path, expected: set[Path], suffixes: list[str]) -> None:
    unused = _unused_files(folder, expected, suffixes)
    if unused:
        warnings.warn(f"Checkpoint files in {str(folder)!r} match no brick and were not loaded: {unused}.", stacklevel=4)
