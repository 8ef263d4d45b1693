from __future__ import annotations

import io
import sys
import zipfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from torchvision.datasets import ImageFolder

from torchbricks.lightning.datamodules import ImageFolderDataModule

sys.path.insert(0, str(Path(__file__).parents[2] / "benchmarks"))

import data_skimage
import suite_data


def _png(array: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def _wheel(tmp_path: Path, faces: np.ndarray | None = None) -> Path:
    """A wheel laid out as scikit-image's: faces bright (1.0) then non-faces dark (0.2); textures whose grey value
    is the column // 2, so a crop tells which columns it came from."""
    if faces is None:
        faces = np.concatenate([np.full((100, 25, 25), 1.0), np.full((100, 25, 25), 0.2)])
    columns = np.tile((np.arange(512) // 2).astype(np.uint8), (512, 1))
    wheel = tmp_path / "scikit_image-0.26.0-cp311-cp311-manylinux_2_28_x86_64.whl"
    with zipfile.ZipFile(wheel, "w") as archive:
        buffer = io.BytesIO()
        np.save(buffer, faces)
        archive.writestr("skimage/data/lfw_subset.npy", buffer.getvalue())
        for name in data_skimage.TEXTURES:
            archive.writestr(f"skimage/data/{name}.png", _png(columns))
    return wheel


def test_faces_are_split_60_20_20_per_class_with_the_faces_first(tmp_path: Path) -> None:
    root = data_skimage.write_faces(tmp_path / "faces", _wheel(tmp_path))

    counts = {split: Counter(ImageFolder(str(root / split)).targets) for split in data_skimage.SPLITS}
    assert counts == {"train": {0: 60, 1: 60}, "val": {0: 20, 1: 20}, "test": {0: 20, 1: 20}}
    face = np.asarray(Image.open(next((root / "train" / "face").iterdir())))
    other = np.asarray(Image.open(next((root / "train" / "not_face").iterdir())))
    assert face.shape == (32, 32, 3)
    assert face.min() == 255
    assert other.max() == 51
    names = {split: {path.name for path in (root / split).rglob("*.png")} for split in data_skimage.SPLITS}
    assert sum(len(found) for found in names.values()) == len(set.union(*names.values())) == 200


def test_textures_come_from_disjoint_column_bands(tmp_path: Path) -> None:
    root = data_skimage.write_textures(tmp_path / "textures", _wheel(tmp_path), per_class=(6, 3, 3))

    bands = {"train": (0, 307), "val": (307, 409), "test": (409, 512)}
    for split, (first, last) in bands.items():
        dataset = ImageFolder(str(root / split))
        assert dataset.classes == list(data_skimage.TEXTURES)
        for path, _ in dataset.samples:
            crop = np.asarray(Image.open(path).convert("L")).astype(int)
            assert crop.shape == (32, 32)
            assert first // 2 <= crop.min()
            assert crop.max() <= (last - 1) // 2


def test_another_shape_of_the_faces_file_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"lfw_subset.npy .* shape \(10, 25, 25\)"):
        data_skimage.read_faces(_wheel(tmp_path, faces=np.zeros((10, 25, 25))))


def test_the_suite_writes_both_sets_from_the_wheel_it_is_given(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SKIMAGE_WHEEL", str(_wheel(tmp_path)))

    for name in ("faces", "textures"):
        root = suite_data.write_set(tmp_path / "cache", name)
        module = ImageFolderDataModule(root=root / "classification", batch_size=4, num_workers=0)
        module.setup("fit")
        assert len(module.class_names) == (2 if name == "faces" else 3)
    assert sorted(path.name for path in (tmp_path / "cache").iterdir()) == ["faces", "textures"]


def test_the_script_writes_both_sets_and_replaces_an_earlier_copy_whole(tmp_path: Path) -> None:
    wheel = _wheel(tmp_path)
    stale = tmp_path / "out" / "faces" / "classification" / "stale.png"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"")

    assert data_skimage.main([str(tmp_path / "out"), "--wheel", str(wheel)]) == 0

    assert not stale.exists()
    assert sorted(path.name for path in (tmp_path / "out").iterdir()) == ["faces", "textures"]
    assert len(list((tmp_path / "out" / "textures" / "classification").rglob("*.png"))) == 3 * (60 + 15 + 30)
