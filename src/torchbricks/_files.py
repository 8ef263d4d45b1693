"""Writing files: every file torchbricks writes goes through `write_atomically`.

A file is written under a temporary name in its target folder, synced, then renamed over the target, so a
reader (or a crash) never meets half a file and a failed write leaves the previous file as it was. The temporary files
a killed process left are removed by a later successful write into their folder (`remove_stale_temporaries`).
"""

from __future__ import annotations

import ctypes
import errno
import functools
import hashlib
import json
import math
import os
import re
import shutil
import sys
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, BinaryIO

__all__ = [
    "STALE_TEMPORARY_SECONDS",
    "file_sha256",
    "json_ready",
    "recover_folder",
    "remove_stale_temporaries",
    "replace_folder",
    "sync_folder",
    "update_with_file",
    "write_all_atomically",
    "write_atomically",
    "write_json",
    "write_text",
    "write_with_side_files_atomically",
]


STALE_TEMPORARY_SECONDS = 300.0
"""How long a temporary file (or folder) of `write_atomically` must have been left unchanged before a later write
removes it as one a killed process left: a writer changes its temporary file as it writes, and one that has not for
five minutes is not writing (a minute may pass without a write reaching a slow network disk)."""

_TEMPORARY_NAME = re.compile(r"\..+\.[0-9a-f]{32}\.tmp")
"""The name of a temporary file or folder of this module: `.<stem>.<uuid4 hex>.tmp`."""

_last_cleaned: dict[Path, float] = {}  # folder -> when this process last removed its stale temporaries
_last_cleaned_lock = threading.Lock()


def write_atomically(target: Path, write: Callable[[Path], object], *, temporary_stem: str | None = None) -> None:
    """Writes through a temporary file in the target's folder, then renames it over the target.

    The writer creates the temporary file itself, so a file gets the permissions its writer gives on its own
    (`torch.save` honours the umask), not `mkstemp`'s owner-only 0600. The temporary file is named
    `.<temporary_stem>.<random>.tmp`, the stem the target's name unless given: a folder whose readers pick files by
    a part of their name (TensorBoard reads every file whose name holds `tfevents`) needs another, so that a file a
    crash left behind is not read.
    """
    write_all_atomically([(target, write)], temporary_stem=temporary_stem)


def write_all_atomically(
    writes: Sequence[tuple[Path, Callable[[Path], object]]],
    *,
    temporary_stem: str | None = None,
    rename_first: Path | None = None,
) -> None:
    """Writes several files as `write_atomically` does, each through a temporary file beside its target, and renames
    them over their targets only once every one is complete and synced, in order (the target `rename_first` first).

    A writer that fails (a full disk, an error in the data) leaves every target as it was and no temporary file: the
    files are not a mix of old and new ones (the brick files of one checkpoint). Only a crash during the renames,
    which write nothing, can leave some renamed and some not: a manifest of the set, written last and renamed first,
    lets its reader tell (`save_bricks`).
    """
    staged: list[tuple[Path, Path]] = []
    try:
        for target, write in writes:
            temporary = target.with_name(f".{temporary_stem or target.name}.{uuid.uuid4().hex}.tmp")
            staged.append((temporary, target))
            write(temporary)
            _sync_file(temporary)
        for temporary, target in sorted(staged, key=lambda pair: pair[1] != rename_first):
            os.replace(temporary, target)
    except BaseException:
        for temporary, _ in staged:
            temporary.unlink(missing_ok=True)
        raise
    for folder in dict.fromkeys(target.parent for _, target in staged):
        _remove_stale_temporaries_now_and_then(folder)


def write_with_side_files_atomically(target: Path, write: Callable[[Path], object]) -> None:
    """Writes `target` and the files its writer puts beside it (an ONNX file's external data, `<name>.data`) through a
    temporary folder beside `target`: the writer gets the path `<temporary folder>/<target's name>`, so the names the
    file refers to are the final ones. The side files are renamed into place first and `target` last, so a failed
    write leaves the old `target` and no temporary file.
    """
    folder = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    folder.mkdir()
    try:
        write(folder / target.name)
        written = sorted(folder.iterdir(), key=lambda path: path.name == target.name)  # target last
        for path in written:
            _sync_file(path)
        for path in written:
            os.replace(path, target.with_name(path.name))
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    _remove_stale_temporaries_now_and_then(target.parent)


def remove_stale_temporaries(folder: Path, *, now: float | None = None) -> list[Path]:
    """Removes from `folder` the temporary files and folders of this module's writes (`.<name>.<hex>.tmp`) that have
    not changed for `STALE_TEMPORARY_SECONDS`: what a write killed midway (the process ended, the machine stopped) left,
    which nothing else removes. A temporary file changed more recently may be another process's write under way, and is
    left. Returns the paths removed; one that cannot be looked at or removed is left as it is.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> (folder / ".last.ckpt.0123456789abcdef0123456789abcdef.tmp").write_bytes(b"half a checkpoint")
        17
        >>> [path.name for path in remove_stale_temporaries(folder, now=time.time() + STALE_TEMPORARY_SECONDS + 1)]
        ['.last.ckpt.0123456789abcdef0123456789abcdef.tmp']
    """
    now = time.time() if now is None else now
    removed: list[Path] = []
    try:
        entries = [entry for entry in os.scandir(folder) if _TEMPORARY_NAME.fullmatch(entry.name)]
    except OSError:
        return removed
    for entry in entries:
        try:
            if now - _last_change(entry) < STALE_TEMPORARY_SECONDS:
                continue
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        except OSError:
            continue  # gone meanwhile (its writer renamed it), or not ours to remove
        removed.append(Path(entry.path))
    return removed


def _last_change(entry: os.DirEntry[str]) -> float:
    """When the temporary file `entry` was last written; for a folder (`write_with_side_files_atomically`), the
    latest of it and its files."""
    changed = entry.stat(follow_symlinks=False).st_mtime
    if entry.is_dir(follow_symlinks=False):
        with os.scandir(entry.path) as inside:
            changed = max([changed, *(item.stat(follow_symlinks=False).st_mtime for item in inside)])
    return changed


def _remove_stale_temporaries_now_and_then(folder: Path) -> None:
    """`remove_stale_temporaries` after a successful write into `folder`, at most once per `STALE_TEMPORARY_SECONDS`
    per folder and process: a killed write is left by a process that ended, so the next one's first write in the folder
    looks, and one looking again later removes those still too recent then; a folder written thousands of times
    (predictions) is not listed at each write."""
    now = time.monotonic()
    with _last_cleaned_lock:
        last = _last_cleaned.get(folder)
        if last is not None and now - last < STALE_TEMPORARY_SECONDS:
            return
        _last_cleaned[folder] = now
    remove_stale_temporaries(folder)


def file_sha256(path: Path) -> str:
    """The SHA-256 of a file's contents, as hex, read in blocks of 1 MiB."""
    digest = hashlib.sha256()
    update_with_file(digest, path)
    return digest.hexdigest()


def update_with_file(digest: Any, file: Path | BinaryIO) -> None:
    """Feeds a file's contents to `digest` (a `hashlib` hash), read in blocks of 1 MiB: the file at a path, or the rest
    of an opened binary file."""
    if not isinstance(file, (str, os.PathLike)):
        while block := file.read(1 << 20):
            digest.update(block)
        return
    with open(file, "rb") as opened:
        update_with_file(digest, opened)


def _sync_file(path: Path | str) -> None:
    """Syncs a written file's contents to the disk (before it is renamed into place)."""
    with open(path, "rb") as file:
        os.fsync(file.fileno())


def write_text(path: Path, text: str) -> None:
    """Writes `text` to `path` atomically, creating missing folders."""
    path.parent.mkdir(parents=True, exist_ok=True)

    def write(temporary: Path) -> None:
        temporary.write_text(text, encoding="utf-8")

    write_atomically(path, write)


def write_json(path: Path, value: Any) -> None:
    """Writes `value` as indented JSON, atomically; tensors and arrays become numbers or nested lists.

    Example:
        >>> import tempfile, torch
        >>> folder = Path(tempfile.mkdtemp())
        >>> write_json(folder / "m.json", {"accuracy": torch.tensor(0.5), "curve": (torch.tensor([1, 2]), 3)})
        >>> json.loads((folder / "m.json").read_text())
        {'accuracy': 0.5, 'curve': [[1, 2], 3]}
    """
    write_text(path, json.dumps(json_ready(value), indent=2, allow_nan=False, default=_to_plain) + "\n")


def json_ready(value: Any) -> Any:
    """`value` with tensors and arrays as numbers or nested lists, and NaN and infinities as None (`null`: JSON has
    neither, and `jq`, JavaScript and most readers refuse the `NaN` Python would write).

    Example:
        >>> json_ready({"loss": float("nan"), "best": (float("inf"), 0.5)})
        {'loss': None, 'best': [None, 0.5]}
    """
    if isinstance(value, dict):
        return {key: json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if hasattr(value, "tolist") and not isinstance(value, (str, bytes)):
        return json_ready(_to_plain(value))
    return value


def _to_plain(value: Any) -> Any:
    if hasattr(value, "tolist"):  # tensors and numpy arrays, without importing either
        return value.tolist()
    raise TypeError(f"Cannot write a {type(value).__name__} as JSON.")


def replace_folder(temporary: Path, target: Path) -> None:
    """Renames the complete folder `temporary` to `target`, so that `target` is always either the old or the new
    folder, never a mix, and neither is lost to a crash.

    The files and folders of `temporary` are synced first (`sync_folder`), so after a power loss `target` is not a
    folder of empty or cut files. On Linux the two folders are swapped in one step (`renameat2` with
    `RENAME_EXCHANGE`) and the old one, now under the temporary name, is deleted: `target` never stops existing.
    Elsewhere (another OS, a file system without the exchange) the old `target` is first renamed aside to
    `.<name>.<hex>.old`; a crash between the two renames leaves no `target`, which the next `recover_folder(target)`
    (called here first, and by `predict` and `make-dataset` before they look at their target) puts back.
    """
    recover_folder(target)
    sync_folder(temporary)
    if target.exists() and _exchange(temporary, target):
        _sync_directory(target.parent)
        shutil.rmtree(temporary, ignore_errors=True)
    elif not target.exists():
        os.replace(temporary, target)
        _sync_directory(target.parent)
    else:
        old = _set_aside(target)
        try:
            os.replace(temporary, target)
        except BaseException:
            os.replace(old, target)
            raise
        _sync_directory(target.parent)
        shutil.rmtree(old, ignore_errors=True)
    _remove_stale_temporaries_now_and_then(target.parent)


def recover_folder(target: Path, *, now: float | None = None) -> Path | None:
    """Undoes what a `replace_folder` killed between its two renames left (where the folders cannot be swapped in one
    step): without `target` and with a `.<name>.<hex>.old` beside it, the old folder (the last complete one) is renamed
    back to `target`, and returned; with `target`, its `.old` folders unchanged for `STALE_TEMPORARY_SECONDS` are
    deleted (a younger one may be another process's swap under way).
    """
    now = time.time() if now is None else now
    pattern = re.compile(re.escape(f".{target.name}.") + r"[0-9a-f]{32}\.old")
    try:
        aside = [Path(entry.path) for entry in os.scandir(target.parent) if pattern.fullmatch(entry.name)]
    except OSError:
        return None
    if not aside:
        return None
    changed = {path: _changed_at(path) for path in aside}
    if not target.exists():
        newest = max(aside, key=lambda path: changed[path])
        try:
            os.replace(newest, target)
        except OSError:
            return None  # put back meanwhile by another process
        _sync_directory(target.parent)
        return target
    for path in aside:
        if now - changed[path] >= STALE_TEMPORARY_SECONDS:
            shutil.rmtree(path, ignore_errors=True)
    return None


def sync_folder(folder: Path) -> None:
    """Syncs every file and folder under `folder`, and `folder` itself, to the disk: renamed into place afterwards, it
    survives a power loss whole (a rename alone is safe against a killed process only: the file system may write the
    rename before the files' contents).

    On Linux one `syncfs` of the file system holding `folder` does it: on make-dataset's default set (2,423 files and
    folders) 0.06-0.13 s, where an `fsync` of each took 6.6-8.4 s (each waits for its own journal commit). Elsewhere,
    or when `syncfs` fails, each file and folder is synced.
    """
    if _syncfs(folder):
        return
    for parent, _, files in os.walk(folder, topdown=False):
        for name in files:
            path = os.path.join(parent, name)
            if not os.path.islink(path):
                _sync_file(path)
        _sync_directory(Path(parent))


def _syncfs(folder: Path) -> bool:
    """Linux's `syncfs` of the file system holding `folder`; False where it is not available or fails."""
    function = _libc_function("syncfs", (ctypes.c_int,))
    if function is None:
        return False
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return False
    try:
        return bool(function(descriptor) == 0)
    finally:
        os.close(descriptor)


def _sync_directory(folder: Path) -> None:
    """Syncs a folder's entries (the names renamed into it); a no-op where folders cannot be opened (Windows)."""
    try:
        descriptor = os.open(folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass  # a file system that cannot sync a folder
    finally:
        os.close(descriptor)


def _set_aside(target: Path) -> Path:
    """The first step of the two-rename swap: `target` renamed to `.<name>.<hex>.old`."""
    old = target.with_name(f".{target.name}.{uuid.uuid4().hex}.old")
    os.replace(target, old)
    return old


def _changed_at(path: Path) -> float:
    """When `path` was last changed or renamed (a rename changes the ctime, not the mtime); 0 when it is gone."""
    try:
        status = path.lstat()
    except OSError:
        return 0.0
    return max(status.st_mtime, status.st_ctime)


_AT_FDCWD = -100
_RENAME_EXCHANGE = 2


@functools.cache
def _libc_function(name: str, argument_types: tuple[Any, ...]) -> Any:
    """The C library's function `name` on Linux (`renameat2` since glibc 2.28, `syncfs`), or None."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        function = getattr(ctypes.CDLL(None, use_errno=True), name)
    except (OSError, AttributeError):
        return None
    function.argtypes = list(argument_types)
    function.restype = ctypes.c_int
    return function


def _exchange(first: Path, second: Path) -> bool:
    """Swaps two existing paths in one step with Linux's `renameat2(RENAME_EXCHANGE)`; False, having changed nothing,
    where the system or the file system does not offer it."""
    function = _libc_function("renameat2", (ctypes.c_int, ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p, ctypes.c_uint))
    if function is None:
        return False
    if function(_AT_FDCWD, os.fsencode(first), _AT_FDCWD, os.fsencode(second), _RENAME_EXCHANGE) == 0:
        return True
    error = ctypes.get_errno()
    if error in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP, errno.ENOTSUP):
        return False  # an old kernel, or a file system without the exchange (some network file systems)
    raise OSError(error, os.strerror(error), str(first), None, str(second))
