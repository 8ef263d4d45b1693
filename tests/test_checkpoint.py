"""Per-brick checkpoints: layout, formats, safety (weights only, atomic writes) and all-or-nothing loads."""

from __future__ import annotations

import os
import pickle
import shutil
import stat
import sys
import warnings
import zipfile
from pathlib import Path
from typing import Any

import pytest
import safetensors.torch as safetensors_torch
import torch
from torch import nn
from torchmetrics.classification import MulticlassAccuracy

from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickLoss, BrickMetricSingle, BrickNotTrainable, BrickTrainable
from torchbricks.errors import CheckpointError, CheckpointExistsError, CheckpointNotFoundError, MissingExtraError

FORMATS = ["pt", "safetensors"]


def _collection(n_features: int = 4, seed: int = 0) -> BrickCollection:
    torch.manual_seed(seed)
    return BrickCollection(
        {
            "preprocessor": BrickNotTrainable(nn.Identity(), input_names=["raw"], output_names=["normalized"]),
            "backbone": BrickTrainable(
                nn.Sequential(nn.Linear(3, n_features), nn.BatchNorm1d(n_features)),
                input_names=["normalized"],
                output_names=["features"],
            ),
            "head0": {
                "classify": BrickTrainable(nn.Linear(n_features, 2), input_names=["features"], output_names=["./logits"]),
                "accuracy": BrickMetricSingle(MulticlassAccuracy(num_classes=2), input_names=["./logits", "targets"]),
                "loss": BrickLoss(nn.CrossEntropyLoss(), input_names=["./logits", "targets"], output_names=["./loss"]),
            },
        }
    )


def _state(collection: BrickCollection) -> dict[str, torch.Tensor]:
    return {key: value.clone() for key, value in collection.state_dict().items()}


def _assert_same_state(collection: BrickCollection, expected: dict[str, torch.Tensor]) -> None:
    state = collection.state_dict()
    assert list(state) == list(expected)
    for key, value in expected.items():
        assert torch.equal(state[key], value), key


@pytest.mark.parametrize("file_format", FORMATS)
def test_save_writes_one_file_per_brick_with_weights_in_nested_folders(tmp_path: Path, file_format: str) -> None:
    written = _collection().save_bricks(tmp_path / "bricks", file_format=file_format)  # type: ignore[arg-type]
    suffix = "." + file_format
    expected = [tmp_path / "bricks" / f"backbone{suffix}", tmp_path / "bricks" / "head0" / f"classify{suffix}"]
    assert written == expected
    manifest = tmp_path / "bricks" / ".torchbricks_bricks.json"  # hidden: what the save wrote, to tell a mix
    assert sorted(path for path in (tmp_path / "bricks").rglob("*") if path.is_file()) == sorted([*expected, manifest])


@pytest.mark.parametrize("file_format", FORMATS)
def test_load_restores_every_brick_exactly(tmp_path: Path, file_format: str) -> None:
    source = _collection(seed=0)
    source.train()
    source(named_inputs={"raw": torch.rand(4, 3), "targets": torch.tensor([0, 1, 0, 1])})  # moves the batch-norm statistics
    source.save_bricks(tmp_path, exist_ok=True, file_format=file_format)  # type: ignore[arg-type]
    target = _collection(seed=1)

    loaded = target.load_bricks(tmp_path)

    assert loaded == ["backbone", "head0/classify"]
    _assert_same_state(target, _state(source))


def test_spec_layout_bricks_without_weights_get_no_file(tmp_path: Path) -> None:
    collection = _collection()
    collection.save_bricks(tmp_path)
    assert not (tmp_path / "preprocessor.pt").exists()
    assert not (tmp_path / "head0" / "accuracy.pt").exists()
    assert not (tmp_path / "head0" / "loss.pt").exists()


def test_save_over_existing_files_without_exist_ok_raises_before_writing(tmp_path: Path) -> None:
    (tmp_path / "head0").mkdir()
    (tmp_path / "head0" / "classify.pt").write_bytes(b"old")

    with pytest.raises(CheckpointExistsError, match=r"already exist: \['.*head0/classify\.pt'\].*exist_ok=True"):
        _collection().save_bricks(tmp_path)

    assert not (tmp_path / "backbone.pt").exists()
    assert (tmp_path / "head0" / "classify.pt").read_bytes() == b"old"
    with pytest.raises(FileExistsError):
        _collection().save_bricks(tmp_path)


def test_save_with_exist_ok_overwrites(tmp_path: Path) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    newer = _collection(seed=1)
    newer.save_bricks(tmp_path, exist_ok=True)
    target = _collection(seed=2)
    target.load_bricks(tmp_path)
    _assert_same_state(target, _state(newer))


class _InterruptedWhileSaved(torch.Tensor):
    """A tensor whose pickling is interrupted, as by Ctrl-C half way through writing a checkpoint."""

    def __reduce_ex__(self, protocol: Any) -> Any:
        raise KeyboardInterrupt


def test_interrupted_save_leaves_the_old_file_and_no_temporary_file(tmp_path: Path) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    old = (tmp_path / "backbone.pt").read_bytes()
    interrupted = _collection(seed=1)
    interrupted["backbone"].model[1].running_mean = torch.zeros(4).as_subclass(_InterruptedWhileSaved)

    with pytest.raises(KeyboardInterrupt):
        interrupted.save_bricks(tmp_path, exist_ok=True)

    assert (tmp_path / "backbone.pt").read_bytes() == old
    assert sorted(path.name for path in tmp_path.rglob("[!.]*") if path.is_file()) == ["backbone.pt", "classify.pt"]
    assert not list(tmp_path.rglob("*.tmp"))


def _files_of(folder: Path) -> dict[str, bytes]:
    return {str(path.relative_to(folder)): path.read_bytes() for path in sorted(folder.rglob("*")) if path.is_file()}


def test_a_save_failing_in_a_later_brick_leaves_every_old_file_and_no_temporary_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    old = _files_of(tmp_path)
    real_save = torch.save

    def disk_full_at_the_last_file(state: Any, file: Any) -> None:
        if "classify" in str(file):  # 'head0/classify' is written after 'backbone'
            Path(file).write_bytes(b"PK\x03\x04 half a file")
            raise OSError(28, "No space left on device")
        real_save(state, file)

    monkeypatch.setattr(torch, "save", disk_full_at_the_last_file)
    with pytest.raises(OSError, match="No space left"):
        _collection(seed=1).save_bricks(tmp_path, exist_ok=True)

    assert _files_of(tmp_path) == old  # backbone.pt is the old one too: the folder is one checkpoint, not two


class _RefusingMode(nn.Module):
    """A module whose extra state is checked only as it loads, after its weights (torch loads the extra state last)."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 2)
        self.mode = "sum"

    def get_extra_state(self) -> dict[str, str]:
        return {"mode": self.mode}

    def set_extra_state(self, state: dict[str, str]) -> None:
        if state["mode"] not in ("sum", "mean"):
            raise ValueError(f"unknown mode {state['mode']!r}")
        self.mode = state["mode"]


def test_a_brick_refusing_its_state_as_it_loads_leaves_every_brick_as_it_was_and_names_its_file(tmp_path: Path) -> None:
    def collection(seed: int) -> BrickCollection:
        built = _collection(seed=seed)
        built["head0"]["classify"] = BrickTrainable(_RefusingMode(), input_names=["features"], output_names=["./logits"])
        return built

    collection(seed=0).save_bricks(tmp_path)
    file = tmp_path / "head0" / "classify.pt"
    state = torch.load(file, weights_only=True)
    torch.save({**state, "model._extra_state": {"mode": "median"}}, file)
    target = collection(seed=1)
    before = {key: value.clone() for key, value in target.state_dict().items() if not key.endswith("_extra_state")}

    with pytest.raises(
        CheckpointError,
        match=r"Brick 'head0/classify' refused its checkpoint .*classify.pt' as it loaded: "
        r"ValueError: unknown mode 'median'\. No brick has been changed",
    ):
        target.load_bricks(tmp_path)

    after = {key: value for key, value in target.state_dict().items() if not key.endswith("_extra_state")}
    assert list(after) == list(before)
    for key, value in before.items():  # 'backbone', loaded first, and the refusing brick's weights are as they were
        assert torch.equal(after[key], value), key
    assert target["head0"]["classify"].model.mode == "sum"


@pytest.mark.parametrize("file_format", FORMATS)
@pytest.mark.parametrize("kept", [0.9, 0.01])
def test_a_file_cut_short_is_refused_saying_so(tmp_path: Path, file_format: str, kept: float) -> None:
    _collection().save_bricks(tmp_path, file_format=file_format)  # type: ignore[arg-type]
    file = tmp_path / "head0" / f"classify.{file_format}"
    file.write_bytes(file.read_bytes()[: max(1, int(file.stat().st_size * kept))])  # a copy that did not finish

    with pytest.raises(
        CheckpointError, match=rf"Cannot read the brick checkpoint .*classify.{file_format}': the file is cut short"
    ):
        _collection().load_bricks(tmp_path)


@pytest.mark.parametrize("file_format", FORMATS)
def test_saved_files_get_the_permissions_the_format_writer_gives(tmp_path: Path, file_format: str) -> None:
    plain = tmp_path / f"plain.{file_format}"
    if file_format == "pt":
        torch.save({}, plain)
    else:
        safetensors_torch.save_file({"x": torch.zeros(1)}, str(plain))
    written = _collection().save_bricks(tmp_path / "bricks", file_format=file_format)  # type: ignore[arg-type]
    assert {stat.S_IMODE(file.stat().st_mode) for file in written} == {stat.S_IMODE(plain.stat().st_mode)}


def test_load_from_a_missing_folder_raises_file_not_found(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="does not exist"):
        _collection().load_bricks(tmp_path / "nowhere")
    with pytest.raises(CheckpointNotFoundError):
        _collection().load_bricks(tmp_path / "nowhere")


def test_brick_without_a_file_warns_naming_it_and_keeps_its_weights(tmp_path: Path) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    (tmp_path / "head0" / "classify.pt").unlink()
    target = _collection(seed=1)
    before = target["head0"]["classify"].model.weight.clone()

    with pytest.warns(UserWarning, match=r"Brick 'head0/classify' has weights but no checkpoint file"):
        assert target.load_bricks(tmp_path) == ["backbone"]

    assert torch.equal(target["head0"]["classify"].model.weight, before)


@pytest.mark.parametrize("file_format", FORMATS)
def test_missing_error_names_every_brick_without_a_file_and_changes_nothing(tmp_path: Path, file_format: str) -> None:
    _collection(seed=0).save_bricks(tmp_path, file_format=file_format)  # type: ignore[arg-type]
    (tmp_path / f"head0/classify.{file_format}").rename(tmp_path / f"head0/clasify.{file_format}")
    target = _collection(seed=1)
    before = _state(target)

    with pytest.raises(CheckpointError, match=r"Bricks \['head0/classify'\] have weights but no checkpoint file") as raised:
        target.load_bricks(tmp_path, missing="error")

    assert f"Is 'head0/clasify.{file_format}' the file of 'head0/classify' under another name?" in str(raised.value)
    _assert_same_state(target, before)  # the backbone, which has its file, was not loaded either


def test_missing_error_loads_as_warn_does_when_every_brick_has_its_file(tmp_path: Path) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    target = _collection(seed=1)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert target.load_bricks(tmp_path, missing="error") == ["backbone", "head0/classify"]
    _assert_same_state(target, _state(_collection(seed=0)))


def test_an_unknown_missing_mode_is_refused_naming_the_choices(tmp_path: Path) -> None:
    _collection().save_bricks(tmp_path)
    with pytest.raises(CheckpointError, match=r"missing='raise'; expected one of \['warn', 'error'\]"):
        _collection().load_bricks(tmp_path, missing="raise")  # type: ignore[arg-type]


def test_files_matching_no_brick_are_reported(tmp_path: Path) -> None:
    _collection().save_bricks(tmp_path)
    torch.save({}, tmp_path / "neck.pt")
    with pytest.warns(UserWarning, match=r"match no brick and were not loaded: \['neck.pt'\]"):
        _collection().load_bricks(tmp_path)


def test_shape_mismatch_names_brick_and_tensor_and_changes_nothing(tmp_path: Path) -> None:
    _collection(n_features=4).save_bricks(tmp_path)
    target = _collection(n_features=5, seed=3)
    before = _state(target)

    with pytest.raises(
        CheckpointError,
        match=r"Brick 'backbone': tensor 'model.0.weight' in .* has shape \[4, 3\], but the brick expects shape \[5, 3\]",
    ):
        target.load_bricks(tmp_path)

    _assert_same_state(target, before)


def test_failure_in_a_later_brick_leaves_earlier_bricks_unchanged(tmp_path: Path) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    torch.save({"model.weight": torch.zeros(2, 4)}, tmp_path / "head0" / "classify.pt")  # lacks the bias
    target = _collection(seed=1)
    before = _state(target)

    with pytest.raises(CheckpointError, match=r"Brick 'head0/classify' does not match .*missing tensors \['model.bias'\]"):
        target.load_bricks(tmp_path)

    _assert_same_state(target, before)  # 'backbone' comes first and is not half-loaded


def test_loading_never_executes_code_from_a_file(tmp_path: Path) -> None:
    _collection().save_bricks(tmp_path)

    marker = tmp_path / "pwned"

    class Exploit:
        def __reduce__(self) -> tuple[object, tuple[str]]:
            return (os.system, (f"touch {marker}",))

    with open(tmp_path / "backbone.pt", "wb") as file:
        pickle.dump({"model.0.weight": Exploit()}, file, protocol=2)

    with pytest.raises(CheckpointError, match=r"Cannot read the brick checkpoint .*backbone\.pt"):
        _collection().load_bricks(tmp_path)
    assert not marker.exists()


def _as_if_saved_on_gpu(file: Path) -> None:
    """Rewrites a `torch.save` file so its tensors claim to live on 'cuda:0', as a file saved on a GPU does."""
    cpu, cuda = b"X\x03\x00\x00\x00cpu", b"X\x06\x00\x00\x00cuda:0"  # the pickled storage location
    with zipfile.ZipFile(file) as source:
        entries = [(info.filename, source.read(info.filename)) for info in source.infolist()]
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_STORED) as target:
        for name, data in entries:
            if name.endswith("data.pkl"):
                assert cpu in data
            target.writestr(name, data.replace(cpu, cuda) if name.endswith("data.pkl") else data)


def test_weights_saved_on_a_gpu_load_on_a_cpu_only_machine(tmp_path: Path) -> None:
    source = _collection(seed=0)
    source.save_bricks(tmp_path)
    for file in tmp_path.rglob("*.pt"):
        _as_if_saved_on_gpu(file)
    if not torch.cuda.is_available():
        with pytest.raises(RuntimeError, match="CUDA"):
            torch.load(tmp_path / "backbone.pt", weights_only=True)  # the files really are GPU files

    target = _collection(seed=1)
    target.load_bricks(tmp_path)

    _assert_same_state(target, _state(source))
    assert all(value.device.type == "cpu" for value in target.state_dict().values())


def test_unknown_file_format_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match=r"Unknown checkpoint format 'onnx'. Available: \['pt', 'safetensors'\]"):
        _collection().save_bricks(tmp_path, file_format="onnx")  # type: ignore[arg-type]


class _LinearWithExtraState(nn.Linear):
    def get_extra_state(self) -> dict[str, str]:
        return {"note": "not a tensor"}

    def set_extra_state(self, state: object) -> None:
        pass


def test_safetensors_save_of_state_that_is_not_a_tensor_names_it_and_writes_nothing(tmp_path: Path) -> None:
    collection = _collection()
    collection["head0"]["classify"] = BrickTrainable(_LinearWithExtraState(4, 2), ["features"], ["./logits"])

    with pytest.raises(
        CheckpointError, match=r"Brick 'head0/classify' has state that is not a tensor \(\['model\._extra_state'\]\)"
    ):
        collection.save_bricks(tmp_path, file_format="safetensors")

    assert list(tmp_path.iterdir()) == []  # 'backbone' comes first and is not written either


def test_loading_safetensors_without_the_extra_names_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _collection().save_bricks(tmp_path, file_format="safetensors")
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)  # as if not installed

    with pytest.raises(MissingExtraError, match=r'pip install "torchbricks\[safetensors\]"'):
        _collection().load_bricks(tmp_path)


def test_brick_with_files_in_two_formats_is_ambiguous(tmp_path: Path) -> None:
    collection = _collection()
    collection.save_bricks(tmp_path / "pt")
    collection.save_bricks(tmp_path / "safetensors", file_format="safetensors")
    shutil.copytree(tmp_path / "pt", tmp_path / "safetensors", dirs_exist_ok=True)  # files moved around by hand
    with pytest.raises(CheckpointError, match=r"Brick 'backbone' has checkpoint files in two formats"):
        collection.load_bricks(tmp_path / "safetensors")


def test_saving_in_another_format_counts_the_old_format_as_existing(tmp_path: Path) -> None:
    collection = _collection()
    collection.save_bricks(tmp_path)
    with pytest.raises(CheckpointExistsError, match=r"already exist: \['.*backbone.pt'"):
        collection.save_bricks(tmp_path, file_format="safetensors")
    assert not list(tmp_path.rglob("*.safetensors"))


def test_overwriting_in_another_format_replaces_the_old_files(tmp_path: Path) -> None:
    collection = _collection()
    collection.save_bricks(tmp_path)
    collection.save_bricks(tmp_path, exist_ok=True, file_format="safetensors")
    assert not list(tmp_path.rglob("*.pt"))
    assert collection.load_bricks(tmp_path) == ["backbone", "head0/classify"]


def test_spec_flow_loads_a_nested_save_into_a_flat_collection(tmp_path: Path) -> None:
    nested = _collection(seed=0)
    nested.save_bricks(tmp_path)
    flat = BrickCollection({"backbone": nested["backbone"], "head": BrickTrainable(nn.Linear(4, 2), ["features"], ["logits"])})
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert flat.load_bricks(tmp_path) == ["backbone"]
    messages = [str(warning.message) for warning in caught]
    assert any("Brick 'head' has weights but no checkpoint file" in message for message in messages)
    assert any("['head0/classify.pt']" in message for message in messages)


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_file_saved_before_a_module_kept_state_it_fills_in_loads_and_the_module_fills_it(
    tmp_path: Path, file_format: str
) -> None:
    from torchbricks.bag_of_bricks.object_detection import BoxDetectionHead

    def detector() -> BrickCollection:
        head = BoxDetectionHead(in_channels=4, num_classes=2, hidden_channels=4)
        return BrickCollection({"detect": BrickTrainable(head, input_names=["features"], output_names=["heat", "sides"])})

    torch.manual_seed(0)
    saved = detector()
    saved.save_bricks(tmp_path, exist_ok=False, file_format=file_format)
    file = tmp_path / f"detect.{file_format}"
    older = {key: value for key, value in saved["detect"].state_dict().items() if not key.endswith("min_distance")}
    if file_format == "pt":
        torch.save(older, file)
    else:
        safetensors_torch.save_file({key: value.contiguous() for key, value in older.items()}, str(file))
    loaded = detector()

    loaded.load_bricks(tmp_path, missing="error")

    assert loaded["detect"].model.min_distance.item() == 0.0  # the positive distances the older weights were trained with
    assert torch.equal(loaded["detect"].model.distances.weight, saved["detect"].model.distances.weight)


def _save_killed_after_renaming(count: int, folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A save into `folder` killed after `count` of its renames (the manifest's first)."""
    real_replace = os.replace
    renamed: list[str] = []

    def replace(source: Any, target: Any) -> None:
        if len(renamed) == count:
            raise SystemExit("killed")  # what a kill leaves of the renames (the temporaries left do not matter)
        renamed.append(Path(target).name)
        real_replace(source, target)

    monkeypatch.setattr(os, "replace", replace)
    with pytest.raises(SystemExit):
        _collection(seed=1).save_bricks(folder, exist_ok=True)
    monkeypatch.undo()


@pytest.mark.parametrize("renames", [1, 2])
def test_a_load_refuses_the_mix_of_old_and_new_files_a_save_killed_between_its_renames_left(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, renames: int
) -> None:
    # The brick files of one save are renamed into place one after the other: killed in between, the folder held new
    # and old bricks, loaded without a word as one model
    _collection(seed=0).save_bricks(tmp_path)
    old = _files_of(tmp_path)
    _save_killed_after_renaming(renames, tmp_path, monkeypatch)  # the manifest, then backbone.pt (with 2)
    target = _collection(seed=2)
    before = _state(target)

    if renames == 1:  # the manifest of the new save, every brick file still the old one: the old set loads
        assert target.load_bricks(tmp_path, missing="error") == ["backbone", "head0/classify"]
        assert {name: data for name, data in _files_of(tmp_path).items() if not name.startswith(".")} == {
            name: data for name, data in old.items() if not name.startswith(".")
        }
        return
    with pytest.raises(
        CheckpointError,
        match=r"mixes two saves: \['backbone.pt'\] are of the last save, but \['head0/classify.pt'\] are still the files",
    ) as raised:
        target.load_bricks(tmp_path)
    assert "No brick has been changed" in str(raised.value)
    assert all(torch.equal(_state(target)[key], value) for key, value in before.items())


def test_a_brick_file_replaced_by_hand_after_a_save_is_loaded_not_taken_for_a_mix(tmp_path: Path) -> None:
    # Copying in another run's backbone.pt is the user's choice; a mix is a file of the save beside one it replaced
    folder, other = tmp_path / "run", tmp_path / "other"
    _collection(seed=0).save_bricks(folder)
    _collection(seed=1).save_bricks(folder, exist_ok=True)
    _collection(seed=3).save_bricks(other)
    shutil.copyfile(other / "backbone.pt", folder / "backbone.pt")

    target = _collection(seed=2)
    assert target.load_bricks(folder) == ["backbone", "head0/classify"]
    assert all(
        torch.equal(target["backbone"].state_dict()[key], value)
        for key, value in _collection(seed=3)["backbone"].state_dict().items()
    )


def test_a_manifest_that_is_not_json_is_an_error_naming_it(tmp_path: Path) -> None:
    _collection(seed=0).save_bricks(tmp_path)
    (tmp_path / ".torchbricks_bricks.json").write_text('{"files": {"backbone.pt": ', encoding="utf-8")  # cut short

    with pytest.raises(CheckpointError, match=r"manifest '.*\.torchbricks_bricks\.json' of the brick checkpoint is not the JSON"):
        _collection(seed=1).load_bricks(tmp_path)


@pytest.mark.parametrize("file_format", FORMATS)
def test_a_load_opens_each_brick_file_once_for_the_manifests_check_and_the_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, file_format: str
) -> None:
    # Each file was opened twice, hashed for the manifest's check and then opened again to load: a file replaced
    # between the two was loaded unchecked
    from helpers import count_reads

    _collection(seed=0).save_bricks(tmp_path, file_format=file_format)  # type: ignore[arg-type]
    _collection(seed=1).save_bricks(tmp_path, exist_ok=True, file_format=file_format)  # type: ignore[arg-type]
    opened, _ = count_reads(monkeypatch)
    load_file = safetensors_torch.load_file  # opens the file in Rust, which `open()` does not see

    def counted_load_file(filename: str | os.PathLike[str], *arguments: Any, **keywords: Any) -> Any:
        opened[str(filename)] += 1
        return load_file(filename, *arguments, **keywords)

    monkeypatch.setattr(safetensors_torch, "load_file", counted_load_file)
    target = _collection(seed=2)

    assert target.load_bricks(tmp_path) == ["backbone", "head0/classify"]
    monkeypatch.undo()

    files = [str(tmp_path / f"{name}.{file_format}") for name in ("backbone", "head0/classify")]
    assert {file: opened[file] for file in files} == dict.fromkeys(files, 1)
    _assert_same_state(target, _state(_collection(seed=1)))
