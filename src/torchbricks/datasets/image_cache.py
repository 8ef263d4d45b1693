"""Images decoded once, resized to the input size and kept in memory for the next epochs (`ResizedImageCache`).

A 12-megapixel phone photograph takes about 0.2 s to decode and resize on one CPU core, while the compact packaged
models train on a 512 px image in a fraction of that: on a folder of photographs the loader, not the model, set the
pace, every epoch again, and validation decoded its photographs again after every epoch. The data modules give their
training and validation datasets a `ResizedImageCache` (`data.cache_megabytes`): the first read of an image decodes it
and resizes it to the input size, as the transform's first step (`v2.Resize`, antialiased) would, and keeps the
result; later reads copy it. The transform's own resize then finds the image at its size and leaves it as it is, so
the samples are the same, pixel for pixel, as without the cache (`tests/datasets/test_image_cache.py`); masks are
resized by nearest neighbour as the transform resizes them (`torchbricks.datasets.augmentations.resize_mask_centred`).
The multitask masks that the box readers draw from COCO polygons are kept the same way (`drawn_mask`), keyed by what
they are drawn from, so a mask is drawn once rather than at every epoch.
A JPEG at least twice the input size is decoded reduced (`torchbricks._pictures.reduce_jpeg_decoding`), kept or not
(`data.cache_megabytes=0` still reads through a cache that keeps nothing). Every stage decodes so
(`torchbricks._pictures.rgb_for_input`): the test split and `torchbricks evaluate` read through a cache that keeps
nothing, and `predict` (bricks and `--onnx`) and `torchbricks.deploy` decode the same way, so a model is given the
pixels it trained on.

A kept image or mask file is served only while the file's modification time and size are those it had when read;
a file changed since is read again, as without the cache. Each loader process keeps its own images (a share of the
budget: `megabytes / processes`); once its share is full it keeps no more, rather than dropping images it will need
again (in a shuffled epoch every image is needed once, so dropping the oldest would drop every image before its next
use).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Hashable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from torchbricks._pictures import read_rgb_for_input
from torchbricks.datasets._reading import to_image, torchvision_parts
from torchbricks.errors import ConfigError

__all__ = ["ResizedImageCache", "check_megabytes"]


def check_megabytes(megabytes: Any) -> float:
    """`megabytes` as a float, when it is a number >= 0.

    Raises:
        ConfigError: It is not (the message names the key `data.cache_megabytes`).
    """
    if isinstance(megabytes, bool) or not isinstance(megabytes, int | float) or not megabytes >= 0:
        raise ConfigError(
            "Config key 'data.cache_megabytes' must be the memory in megabytes kept for decoded images between "
            f"epochs, a number >= 0 (0 keeps none), got {type(megabytes).__name__} {megabytes!r}."
        )
    return float(megabytes)


class ResizedImageCache:
    """Images (and masks) read at `size`, the first time from their files and afterwards from memory.

    Example:
        >>> import tempfile
        >>> from PIL import Image
        >>> path = Path(tempfile.mkdtemp()) / "photo.png"
        >>> Image.new("RGB", (64, 48), "red").save(path)
        >>> cache = ResizedImageCache((24, 32), megabytes=1)
        >>> image, decoded = cache.image(path)
        >>> tuple(image.shape), decoded, cache.cached_images
        ((3, 24, 32), (64, 48), 1)

    Args:
        size: `(height, width)` the images are resized to: the size the transform's first step resizes to.
        megabytes: The memory all loader processes of one split may use for it together; each keeps its share
            (`megabytes / processes`). 0 keeps nothing: images are still read at `size`.

    Raises:
        ConfigError: `megabytes` is not a number >= 0 (the key `data.cache_megabytes`).
    """

    def __init__(self, size: tuple[int, int], megabytes: float) -> None:
        self.size = (int(size[0]), int(size[1]))
        self.megabytes = check_megabytes(megabytes)
        # key -> (the pixels at `size`, the decoded size, the file's stamp when read: `_file_stamp`)
        self._entries: dict[tuple[str, Hashable], tuple[torch.Tensor, tuple[int, int], Hashable]] = {}
        self._bytes = 0
        self._budget: int | None = None
        self._process: int | None = None  # the process the budget was reckoned in (forked loader processes reckon again)

    @property
    def cached_images(self) -> int:
        """Images and masks this process keeps."""
        return len(self._entries)

    def image(self, path: Path) -> tuple[Any, tuple[int, int]]:
        """The upright RGB image of `path` (`load_rgb`) resized to `size`, a uint8 `tv_tensors.Image` [3, H, W]
        of its own (changing it changes nothing kept), and the `(width, height)` of the whole image as shown (what
        its boxes refer to). A large JPEG is decoded reduced by 2, 4 or 8 where that still leaves `size`
        (`torchbricks._pictures.rgb_for_input`: a phone photograph read at 512 x 384 decodes 5 times faster)."""
        tv_tensors, functional = torchvision_parts()
        stamp = _file_stamp(path)
        kept = self._entries.get(("image", str(path)))
        if kept is not None and stamp is not None and kept[2] == stamp:
            return tv_tensors.Image(kept[0].clone()), kept[1]
        picture, shown = read_rgb_for_input(path, self.size)
        image = functional.resize(to_image(picture), list(self.size), antialias=True)  # as v2.Resize(size, antialias=True)
        self._keep(("image", str(path)), image.as_subclass(torch.Tensor), shown, stamp)
        return image, shown

    def mask(self, path: Path, read: Callable[[Path], np.ndarray]) -> Any:
        """The class mask `read(path)` (int64 [H, W]) resized to `size` by nearest neighbour (the pixel under each
        output pixel's centre, `resize_mask_centred`, as the transform resizes masks), an int64
        `tv_tensors.Mask` of its own; kept as 8 bits when its values allow."""
        return self._resized_mask(("mask", str(path)), lambda: read(path), _file_stamp(path))

    def drawn_mask(self, source: Hashable, draw: Callable[[], np.ndarray]) -> Any:
        """The class mask `draw()` (int64 [H, W]) resized to `size` as `mask` resizes it, drawn only when no mask
        of the same `source` is kept: `source` holds everything the drawing reads (the image's size and its
        objects' classes and outlines), so two images share a mask only when they would draw the same one.

        Example:
            >>> import numpy as np
            >>> cache = ResizedImageCache((2, 2), megabytes=1)
            >>> drawn = []
            >>> draw = lambda: drawn.append(1) or np.eye(4, dtype=np.int64)
            >>> for _ in range(3):
            ...     mask = cache.drawn_mask(((4, 4), ("diagonal",)), draw)
            >>> mask.tolist(), len(drawn)
            ([[1, 0], [0, 1]], 1)
        """
        return self._resized_mask(("drawn mask", source), draw, "drawn")

    def _resized_mask(self, key: tuple[str, Hashable], values: Callable[[], np.ndarray], stamp: Hashable) -> Any:
        tv_tensors, _ = torchvision_parts()
        kept = self._entries.get(key)
        if kept is not None and stamp is not None and kept[2] == stamp:
            return tv_tensors.Mask(kept[0].long())
        from torchbricks.datasets.augmentations import resize_mask_centred

        read = values()
        plain = resize_mask_centred(torch.from_numpy(read), self.size)  # as the transform's first step
        small = plain.to(torch.uint8) if plain.numel() and int(plain.min()) >= 0 and int(plain.max()) <= 255 else plain
        self._keep(key, small, (read.shape[1], read.shape[0]), stamp)
        return tv_tensors.Mask(plain.long())

    def _keep(self, key: tuple[str, Hashable], value: torch.Tensor, decoded: tuple[int, int], stamp: Hashable) -> None:
        """Keeps `value` under `key` while the budget allows (what a changed file left under it is let go first)."""
        if self._process != os.getpid():
            info = torch.utils.data.get_worker_info()
            self._budget = int(self.megabytes * 2**20 / (info.num_workers if info is not None else 1))
            self._process = os.getpid()
        stale = self._entries.pop(key, None)
        if stale is not None:
            self._bytes -= stale[0].numel() * stale[0].element_size()
        size = value.numel() * value.element_size()
        if stamp is not None and self._bytes + size <= (self._budget or 0):
            self._entries[key] = (value.clone(), decoded, stamp)
            self._bytes += size

    def __getstate__(self) -> dict[str, Any]:
        """Loader processes start empty, each with its own share (not a copy of what this process kept)."""
        return {**self.__dict__, "_entries": {}, "_bytes": 0, "_budget": None, "_process": None}


def _file_stamp(path: Path) -> tuple[int, int] | None:
    """When `path` was last written and its size, `(st_mtime_ns, st_size)`: a file changed since it was kept is read
    again, as it would be without the cache. None when it cannot be read (the reader then says why)."""
    try:
        status = os.stat(path)
    except OSError:
        return None
    return (status.st_mtime_ns, status.st_size)
