"""Which files are images: the suffixes every reader lists and a folder's files without the hidden ones.

Plain Python (no torch), so both the data readers (`torchbricks.datasets`) and `torchbricks predict --onnx`, which
runs where torch is not installed, list image files by the same rules.

Hidden files are not data: a name starting with "." (the `._*` files macOS writes beside each file on drives and
shares it does not own, `.DS_Store`, folders such as `.ipynb_checkpoints`) or the `__MACOSX` folder of a zip made on
a Mac is left out of every listing (`visible_files`, `is_hidden`), as `ls` and file browsers leave them out.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["IMAGE_EXTENSIONS", "is_hidden", "visible_files"]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".jfif", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")
"""The image files every reader lists (`.jfif`: JPEG as Windows browsers save it), in any case."""


def is_hidden(name: str) -> bool:
    """Whether a file or folder name is hidden (see the module docstring): not data, never listed.

    Example:
        >>> [is_hidden(name) for name in ("._cat.jpg", ".DS_Store", "__MACOSX", ".ipynb_checkpoints", "cat.jpg", "_a.jpg")]
        [True, True, True, True, False, False]
    """
    return name.startswith(".") or name == "__MACOSX"


def visible_files(folder: Path | str, suffixes: tuple[str, ...] = IMAGE_EXTENSIONS, recursive: bool = False) -> list[Path]:
    """The files of `folder` (with `recursive`, of its subfolders too) whose suffix, in any case, is one of `suffixes`,
    sorted; hidden files and everything in hidden folders below `folder` are left out (`is_hidden`). An empty list
    when `folder` is no folder."""
    folder = Path(folder)
    if not folder.is_dir():
        return []
    paths = folder.rglob("*") if recursive else folder.iterdir()
    return sorted(
        path
        for path in paths
        if path.suffix.lower() in suffixes
        and not any(is_hidden(part) for part in path.relative_to(folder).parts)
        and path.is_file()
    )
