"""Which files are images: the suffixes every reader lists and a folder's files without the hidden ones.

Plain Python (no torch), so both the data readers (`torchbricks.datasets`) and `torchbricks predict --onnx`, which
runs where torch is not installed, list image files by the same rules.

Hidden files are not data: a name starting with "." (the `._*` files macOS writes beside each file on drives and
shares it does not own, `.DS_Store`, folders such as `.ipynb_checkpoints`), the `__MACOSX` folder of a zip made on
a Mac, and the files Windows Explorer leaves in folders of pictures and marks hidden (`Thumbs.db`, `desktop.ini`)
are left out of every listing (`visible_files`, `is_hidden`), as `ls` and file browsers leave them out.

A folder linked into the data (`photos/cat/2019 -> /mnt/archive/2019`) is listed as a folder, as torchvision's
`ImageFolder` and file browsers follow it; a link back to a folder above is followed once.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "FolderListings", "all_visible_files", "is_hidden", "visible_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jpe", ".jfif", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The image files every reader lists (`.jpe` and `.jfif`: JPEG as some cameras and Windows browsers save it), in
any case."""
_WINDOWS_DROPPINGS = frozenset({"thumbs.db", "ehthumbs.db", "desktop.ini"})


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (see the module docstring): not data, never listed.

    Example:
        >>> [is_hidden(name) for name in ("._cat.jpg", ".DS_Store", "__MACOSX", "Thumbs.db", "cat.jpg", "_a.jpg")]
        [True, True, True, True, False, False]
    """
    return name.startswith(".") or name == "__MACOSX" or name.casefold() in _WINDOWS_DROPPINGS


def visible_files(folder: Path | str, suffixes: tuple[str, ...] = IMAGE_EXTENSIONS, recursive: bool = False) -> list[Path]:
    """The files of `folder` (with `recursive`, of its subfolders too, linked ones included: `all_visible_files`)
    whose suffix, in any case, is one of `suffixes`, sorted; hidden files and everything in hidden folders below
    `folder` are left out (`is_hidden`). An empty list when `folder` is no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    paths = all_visible_files(folder) if recursive else (path for path in folder.iterdir() if not is_hidden(path.name))
    return sorted(path for path in paths if path.suffix.lower() in suffixes and path.is_file())


class FolderListings:
    """`visible_files` of each folder, the folder listed once and its files kept: a data module's start-up asks for
    the files of its split folders from several places (the splits' masks for the checks, then each split's reader),
    and a data set of thousands of files costs a listing each time. A folder is listed with its subfolders
    (`all_visible_files`), which also answers the files directly in it; the answers are those of `visible_files`.
    Made for one start-up: files added later are not seen.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> for name in ("b.png", "a.JPG", "notes.txt", ".hidden.png"):
        ...     _ = (folder / name).write_bytes(b"")
        >>> listings = FolderListings()
        >>> [path.name for path in listings.files(folder)], [path.name for path in listings.files(folder, (".png",))]
        (['a.JPG', 'b.png'], ['b.png'])
    """

    def __init__(self) -> None:
        self._listed: dict[Path, list[tuple[Path, str, bool]]] = {}
        """Folder -> its files, sorted, each with its suffix in lower case and whether it lies directly in it."""

    def files(self, folder: Path | str, suffixes: tuple[str, ...] = IMAGE_EXTENSIONS, recursive: bool = False) -> list[Path]:
        """`visible_files(folder, suffixes, recursive)`, from the folder's one listing."""
        folder = Path(folder)
        if folder not in self._listed:
            found = sorted(path for path in all_visible_files(folder) if path.is_file()) if folder.is_dir() else []
            top = os.path.dirname(folder / "_")  # as `Path.parent` compares: "" for the folder "."
            self._listed[folder] = [(path, path.suffix.lower(), os.path.dirname(path) == top) for path in found]
        return [path for path, suffix, direct in self._listed[folder] if suffix in suffixes and (recursive or direct)]


def all_visible_files(folder: Path) -> Iterator[Path]:
    """Every file below `folder` but the hidden ones and those in hidden folders, unsorted. Linked folders are
    followed (`Path.rglob` leaves them out before Python 3.13: the photographs of `cat/2019 -> /mnt/archive/2019`
    were left out of training without a word), each real folder once; a link to `folder` or a folder above it is
    not followed (it would list the data again, or without end)."""
    top = Path(os.path.realpath(folder))
    seen: set[str] = set()
    for parent, folders, files in os.walk(folder, followlinks=True):
        real = os.path.realpath(parent)
        if real in seen or (parent != str(folder) and top.is_relative_to(real)):
            folders.clear()
            continue
        seen.add(real)
        folders[:] = [name for name in folders if not is_hidden(name)]
        yield from (Path(parent) / name for name in files if not is_hidden(name))
