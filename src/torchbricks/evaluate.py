"""A trained experiment's metrics on another labelled data set: `torchbricks evaluate EXPERIMENT data.root=DIR`.

The data is read with the experiment's own data config (`resolved_config.yaml`'s `data`, with the overrides
applied, `data.root` typically), so every layout the data modules read works. The experiment's own `data.root`,
when relative, is read from the folder the training command ran in (`load_experiment`; from the current folder when
that one is gone); a `data.root` override from the current folder, and data found in neither is an error saying to
pass `data.root`. The experiment's collection with its
trained weights runs its test stage under Lightning's `trainer.test` (`LightningBrickCollection`), as
`torchbricks train` does for its test split, so on the same data the values equal `metrics.json`'s `test` values.

Per class: each head's `per_class` values as its metrics compute them (precision, recall, IoU and support for
classification and segmentation, AP and AP50 for detection, precision, recall, F1 and support for multilabel and
points; a points head saved before it computed them has its F1 alone, and no per-class values), or,
for a head with only a confusion matrix, precision, recall and support from it. A value with nothing to divide by (a
class without a true sample, never predicted, or without a true box) is NaN, `null` in `evaluation.json` with its
reason in `undefined_metrics`, and `n/a` in the table. `evaluation.json` names the heads and their kinds (`heads`,
from the head registry `torchbricks.heads.find_heads`).
"""

from __future__ import annotations

import copy
import math
import shutil
import sys
import tempfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torchbricks._conventions import CONFUSION_MATRIX, PER_CLASS, SEPARATOR
from torchbricks._experiment import with_home_expanded
from torchbricks._extras import require
from torchbricks._files import write_json
from torchbricks.errors import BrickError, ConfigError, did_you_mean
from torchbricks.trained_experiment import load_experiment, use_trained_memory_order

__all__ = ["EVALUATION_FILE", "SPLITS", "EvaluationResult", "evaluate_experiment", "format_evaluation", "per_class_values"]

EVALUATION_FILE = "evaluation.json"
SPLITS = ("val", "test", "all")
"""The splits `evaluate` reads: the data module's validation split, its test split (the validation split when the
data has no test split), or every labelled sample (the file data modules)."""
VALIDATION_WORDS = ("valid", "validation", "validate")
"""Other words for `val` that `evaluate`'s error answers with it."""
SPLIT_TEXT = {
    "val": "the validation split",
    "test": "the test split (the validation split where the data has no test split of its own)",
    "all": "every labelled image (training, validation and test splits, without augmentation)",
}
"""How `format_evaluation` names each split."""
_LOADERS = {"val": "val_dataloader", "test": "test_dataloader", "all": "all_dataloader"}
EVALUATED_KEYS = ("data", "trainer", "loss_weights", "missing_targets", "channels_last")
"""The top-level keys of the experiment's config whose overrides change an evaluation; the model is the experiment's
trained bricks as they were saved, so an override of `model.*` (or of a training key) would change nothing."""


@dataclass
class EvaluationResult:
    """The metrics of an evaluation, the per-class values and what was evaluated."""

    metrics: dict[str, Any]
    per_class: dict[str, dict[str, dict[str, float]]] = field(default_factory=dict)
    description: dict[str, Any] = field(default_factory=dict)
    worst_images: dict[str, tuple[int, int, list[tuple[str, str]]]] = field(default_factory=dict)
    """With `images`: per head, the samples it got wrong, of how many, and the worst (file, error) (`worst_images`)."""

    def to_json(self) -> dict[str, Any]:
        """What `evaluation.json` holds."""
        return {**self.description, "metrics": self.metrics, "per_class": self.per_class}


def evaluate_experiment(
    folder: Path | str,
    overrides: Sequence[str] = (),
    split: str | None = None,
    out: Path | str | None = None,
    images: Path | str | None = None,
) -> EvaluationResult:
    """Evaluates the trained experiment in `folder` on the data its config reads, after `overrides`.

    Args:
        folder: A trained experiment folder.
        overrides: `key=value` changes of the experiment's resolved config, e.g. `data.root=DIR`,
            `data.batch_size=8`; a key must exist in the config and be one of `EVALUATED_KEYS` (or under one).
        split: `val`, `test` or `all` (every labelled image once: training, validation and a test split of its own,
            read without augmentation); a data module whose loader of the split is a list of several is evaluated on
            their samples together, one value per metric. None: `all` for labelled data other than the experiment's
            own that has no validation split of its own (a folder of class folders, a labelling tool's export without splits: its
            "test split" would be a random fifth of it), else `test`. `evaluation.json` says which split, why the
            default chose `all` when it did (`split_chosen`) and how many samples (with `data.tile_size`, tiles,
            and `tiled_images`: of how many images; the metrics are then per tile).
        out: Where `evaluation.json` is written; `folder/evaluation.json` by default.
        images: Also write one CSV row per evaluated sample here: its file and how wrong each head was on it
            (`torchbricks._evaluation_images`); the model predicts the split a second time for it. None: no such file.

    Raises:
        ConfigError: `folder` is not a trained experiment, an override names a key the config lacks or one that
            does not change an evaluation (`model.*`), or the data's classes differ from the experiment's (class
            folders, and the classes of box and mask data, may be some of its classes: they are numbered by name,
            and `evaluation.json`'s `classes_without_folder` (box and mask data: `classes_not_in_data`) lists the
            others; with `data.sources`, each source's classes against its head's, and `head_classes_without_folder`
            lists each head's others).
        BrickError: `split` is not one of `SPLITS`.
        DataError: Files of the evaluated split cannot be read (each named, the first five; found before anything is
            computed, `torchbricks.lightning.image_datamodules.check_dataset_files`).
    """
    pl = require("pytorch_lightning", "lightning")
    omegaconf = require("omegaconf", "hydra").OmegaConf

    from torchbricks.configuration import instantiate_config
    from torchbricks.heads import find_heads
    from torchbricks.lightning.main_job import quiet_third_party_notices
    from torchbricks.lightning.module import LightningBrickCollection, to_json
    from torchbricks.tags import Stage

    if split is not None and split not in SPLITS:
        # the data folders name it `valid` or `validation` as often as `val`, which spelling finds no close match for
        hint = " Did you mean 'val'?" if split.lower() in VALIDATION_WORDS else did_you_mean(split, SPLITS)
        raise BrickError(f"split must be one of {list(SPLITS)}, got {split!r}.{hint}")
    experiment = load_experiment(folder)
    config = with_home_expanded(_with_overrides(copy.deepcopy(experiment.config), overrides))
    unlocated = experiment.unlocated_data_root
    if unlocated and config.data.get("root") == experiment.config.data.get("root"):  # not overridden
        raise ConfigError(f"No data to evaluate on: {unlocated}; pass data.root=<the data folder>.")
    quiet_third_party_notices()
    data_module = instantiate_config(config, "data")
    absent = _absent_classes(_classes_without_folder(experiment, data_module, config), data_module)
    collection = experiment.collection
    heads = find_heads(list(collection.plan(tags=Stage.TEST).produced))  # head path -> kind, as the report draws them
    use_trained_memory_order(collection, config)  # as the main job ran it: the same kernels, the same numbers
    chosen = ""
    if split is None:
        split = "all" if _new_data_without_own_validation(data_module, config, experiment.config) else "test"
        if split == "all":
            chosen = (
                "not the experiment's training data, and without a validation split of its own: every image is "
                "evaluated; if it holds images the model was trained on, evaluate split=test"
            )
    loader = _split_loader(data_module, split)
    parts = loader if isinstance(loader, list) else [loader]
    _check_files(data_module, config, parts)
    scratch = Path(tempfile.mkdtemp(prefix="torchbricks-evaluate-"))  # the module's graph and metrics_test.json
    try:
        module = LightningBrickCollection(
            path_experiments=scratch,
            experiment_name="evaluation",
            brick_collection=collection,
            create_optimizers_func=_no_optimizer,
            loss_weights=omegaconf.to_container(config.get("loss_weights", {})) or {},
            missing_targets=str(config.get("missing_targets", "error")),  # skip: heads of data sets of their own
            separate_loaders=False,  # the split is every loader's samples together, as `samples` counts them
        )
        trainer = instantiate_config(  # one process, whatever the training ran on (a DDP run's loaders would pad)
            config,
            "trainer",
            logger=False,
            enable_checkpointing=False,
            callbacks=_progress_callbacks(config),
            max_epochs=1,
            devices=1,
            num_nodes=1,
            strategy="auto",
        )
        trainer.test(module, dataloaders=loader, verbose=False)
        if not trainer.is_global_zero:
            return EvaluationResult({})
        metrics = to_json(module.epoch_metrics.get("test", {}))
        kept = module.undefined_metrics.get("test", {})
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    del pl
    per_class = per_class_values(metrics, experiment.class_names)
    description = {
        "experiment": str(experiment.folder),
        "data_root": str(config.data.get("root")) if "root" in config.data else None,
        "split": split,
        "split_chosen": chosen,
        "samples": sum(len(part.dataset) for part in parts),
        **_tiled_images(parts),
        "overrides": list(overrides),
        "class_names": experiment.class_names,
        **absent,
        "heads": heads,
        **_undefined_reasons(kept, metrics, per_class),  # why a null value is null
    }
    result = EvaluationResult(metrics, per_class, description)
    if images is not None:
        _add_image_errors(result, Path(images), module, parts, experiment)
    write_json(Path(out) if out is not None else experiment.folder / EVALUATION_FILE, result.to_json())
    return result


def _split_loader(data_module: Any, split: str) -> Any:
    """The data module's loader (or list of loaders) of `split`, set up as `trainer.test` sets it up."""
    if split == "all" and not hasattr(data_module, "all_dataloader"):
        raise BrickError(
            f"split=all reads every split of a torchbricks data module; {type(data_module).__name__} has only its own "
            "loaders: evaluate split=val or split=test."
        )
    if split != "all":
        data_module.setup("validate" if split == "val" else "test")  # as trainer.test does (data.sources renames there)
    return getattr(data_module, _LOADERS[split])()


def _add_image_errors(result: EvaluationResult, path: Path, module: Any, parts: Sequence[Any], experiment: Any) -> None:
    """Writes the rows of `evaluate --images` over the loaders `parts` (in their order, the collection in eval mode)
    to `path`, and adds the file and the worst images to `result`."""
    from torchbricks._evaluation_images import evaluate_images, sample_sources, worst_images, write_image_errors

    collection = module.brick_collection
    was_training = collection.training
    collection.eval()
    try:
        sources = [source for part in parts for source in sample_sources(part.dataset)]
        batches = (module.named_inputs_from_batch(batch) for part in parts for batch in part)
        errors = evaluate_images(collection, batches, sources, experiment.head_class_names)
    finally:
        collection.train(was_training)
    write_image_errors(path, errors)
    result.description["images_file"] = str(path)
    result.worst_images = worst_images(errors)


def _classes_without_folder(experiment: Any, data_module: Any, config: Any) -> list[str] | dict[str, list[str]]:
    """The experiment's classes the data has no folder of, once the data module numbers its classes as the
    experiment does; [] when the data has the experiment's classes. With several sources (`data.sources`), each
    source against its head's classes: head -> its classes without a folder, for the heads that have such classes.

    Raises:
        ConfigError: Classes other than the experiment's (a head's): a folder of a class it was not trained on, or a
            class list (masks, boxes) other than its own.
    """
    data_classes = getattr(data_module, "class_names", None)
    if isinstance(data_classes, Mapping):  # several sources: no classes of the experiment's own, each head its source's
        sources = getattr(data_module, "sources", {})
        absent = {
            head: _renumbered(experiment, source, experiment.head_class_names(head), head) for head, source in sources.items()
        }
        return {head: classes for head, classes in absent.items() if classes}
    root = config.data.get("root", "the data")
    return _renumbered(experiment, data_module, experiment.class_names, None, root)


def _absent_classes(absent: list[str] | dict[str, list[str]], data_module: Any) -> dict[str, Any]:
    """The description's keys of the experiment's classes the data lacks (`_classes_without_folder`):
    `classes_without_folder`, with `head_classes_without_folder` for several sources, or `classes_not_in_data` for
    box and mask data (whose classes are listed in their files, not folders)."""
    from torchbricks.lightning.image_datamodules import DetectionDataModule, SegmentationFolderDataModule

    if isinstance(absent, dict):
        return {"classes_without_folder": [], "head_classes_without_folder": absent}
    if isinstance(data_module, (DetectionDataModule, SegmentationFolderDataModule)):
        return {"classes_without_folder": [], "classes_not_in_data": absent}
    return {"classes_without_folder": absent}


def _renumbered(experiment: Any, data_module: Any, trained: list[str] | None, head: str | None, root: Any = None) -> list[str]:
    """Numbers the classes of `data_module` (of `head`'s source, when given) as `trained` numbers them; returns the
    classes without a folder there. Raises `ConfigError` for classes listed in a file other than `trained`."""
    data_classes = getattr(data_module, "class_names", None)
    if not trained or not data_classes or list(data_classes) == list(trained):
        return []
    renumber = getattr(data_module, "use_class_names", None)
    if renumber is None:  # classes listed in a file (masks, boxes): numbered by it, so another list is other data
        if root is None:
            root = getattr(getattr(data_module, "data_module", data_module), "root", "the data")
        where = f"{str(root)!r}" + (f" (source {head!r})" if head else "")
        whose = f"head {head!r} of experiment" if head else "experiment"
        raise ConfigError(
            f"The data in {where} has classes {list(data_classes)}; {whose} {str(experiment.folder)!r} was trained on "
            f"{list(trained)}. Evaluate on data with the same classes."
        )
    try:
        return list(renumber(trained))  # by name: some of the classes will do
    except ConfigError as error:
        if head is None:
            raise
        raise ConfigError(f"Source {head!r} (head {head!r} of experiment {str(experiment.folder)!r}): {error}") from None


def _tiled_images(loaders: list[Any]) -> dict[str, int]:
    """`{"tiled_images": N}` when the loaders read tiles (`data.tile_size`) of N images, else nothing: the samples
    are then tiles, and the metrics are per tile, an object or pixel in an overlap counted in each tile."""
    counts: list[list[int]] = [getattr(loader.dataset, "tile_counts", None) or [] for loader in loaders]
    if not all(counts):
        return {}
    return {"tiled_images": sum(len(count) for count in counts)}


def _check_files(data_module: Any, config: Any, loaders: list[Any]) -> None:
    """Every file the `loaders` read looked at before anything is computed: one error naming each bad file
    (`check_dataset_files`) rather than the first a loader reaches, after the samples before it were evaluated."""
    from torchbricks.lightning.image_datamodules import check_dataset_files

    root = getattr(data_module, "root", None) or config.data.get("root", "the data")
    check_dataset_files(Path(root), [loader.dataset for loader in loaders], "evaluation")


def _new_data_without_own_validation(data_module: Any, config: Any, trained: Any) -> bool:
    """Whether the data evaluated is not the data the experiment trained on and has no validation split of its own."""
    root, trained_root = config.data.get("root"), trained.data.get("root")
    if root is None or trained_root is None or Path(str(root)).resolve() == Path(str(trained_root)).resolve():
        return False
    drawn = getattr(data_module, "validation_drawn", None)
    return bool(drawn()) if callable(drawn) else False


def _no_optimizer(parameters: list[Any]) -> Any:
    raise BrickError("Evaluation does not train; it has no optimizer.")


def _progress_callbacks(config: Any) -> list[Any]:
    if not config.trainer.get("enable_progress_bar", True):
        return []
    from torchbricks.lightning.callbacks import LineProgressBar, TerminalProgressBar

    return [TerminalProgressBar() if sys.stdout.isatty() else LineProgressBar()]  # no redrawn bar in a log


def _with_overrides(config: Any, overrides: Sequence[str]) -> Any:
    omegaconf = require("omegaconf", "hydra").OmegaConf
    for override in overrides:
        key, separator, text = override.partition("=")
        if not separator or not key:
            raise ConfigError(f"An override is key=value, e.g. data.root=DIR; got {override!r}.")
        if omegaconf.select(config, key, default=_MISSING) is _MISSING:
            parts = key.split(".")  # the first missing part is the misspelt one (`dat.root`: `dat`, not `root`)
            depth = next(
                depth
                for depth in range(1, len(parts) + 1)
                if omegaconf.select(config, ".".join(parts[:depth]), default=_MISSING) is _MISSING
            )
            parent, leaf = ".".join(parts[: depth - 1]), parts[depth - 1]
            node = omegaconf.select(config, parent) if parent else config
            keys = [str(name) for name in node] if hasattr(node, "keys") else []
            raise ConfigError(
                f"Override {override!r}: the experiment's config has no key {key!r}"
                + (f"; {parent or 'the top level'} has {keys}.{did_you_mean(leaf, keys)}" if keys else ".")
            )
        section = key.split(".", 1)[0]
        if section not in EVALUATED_KEYS:
            raise ConfigError(
                f"Override {override!r} would change nothing: evaluate runs the experiment's trained bricks as they were "
                "saved on the data; it takes overrides of data.*, trainer.*, loss_weights, missing_targets and channels_last. "
                "Another model is another experiment: train it with the override."
            )
        omegaconf.update(config, key, _parse_value(text), merge=False)
    return config


_MISSING = object()


def _parse_value(text: str) -> Any:
    yaml = require("yaml", "hydra")
    try:
        return yaml.safe_load(text) if text else ""
    except yaml.YAMLError:
        return text


def per_class_values(metrics: dict[str, Any], class_names: Sequence[str] | None = None) -> dict[str, dict[str, dict[str, float]]]:
    """Each head's values per class: the `<head>/per_class` its metrics compute (precision, recall, IoU and support
    for classification and segmentation, AP and AP50 for boxes, precision, recall, F1 and support for multilabel and
    points), or else
    precision, recall and support from a `<head>/confusion_matrix` (rows: true classes).

    Example:
        >>> per_class_values({"head/confusion_matrix": [[3, 1], [0, 2]]}, ["cat", "dog"])["head"]["cat"]
        {'precision': 1.0, 'recall': 0.75, 'support': 4}
    """
    values: dict[str, dict[str, dict[str, float]]] = {
        name.rpartition(SEPARATOR)[0]: dict(value)
        for name, value in metrics.items()
        if name.endswith(SEPARATOR + PER_CLASS) and isinstance(value, dict)
    }
    for name, matrix in metrics.items():
        head = name.rpartition(SEPARATOR)[0] or name
        if head in values or not name.endswith(CONFUSION_MATRIX) or not isinstance(matrix, list) or not matrix:
            continue
        if len(matrix) != len(matrix[0]):
            continue
        import torch

        from torchbricks.bag_of_bricks.custom_metrics import class_scores

        scores = class_scores(torch.tensor(matrix))
        values[head] = {
            (class_names[index] if class_names and index < len(class_names) else str(index)): {
                "precision": float(scores["precision"][index]),
                "recall": float(scores["recall"][index]),
                "support": int(scores["support"][index]),
            }
            for index in range(len(matrix))
        }
    return values


def _undefined_reasons(
    kept: Mapping[str, str], metrics: Mapping[str, Any], per_class: dict[str, dict[str, dict[str, float]]]
) -> dict[str, dict[str, str]]:
    """`{"undefined_metrics": {name: reason}}`, why each undefined value of an evaluation is: the metrics' and the
    per-class values' reasons the module `kept` (not the losses', which evaluate does not report), and those of the
    per-class values computed here from a confusion matrix alone, by `<head>/per_class/<class>/<score>`; an empty
    dict when every value is a number."""
    from torchbricks.bag_of_bricks.custom_metrics import undefined_class_scores

    reasons = {name: reason for name, reason in kept.items() if name in metrics or f"{SEPARATOR}{PER_CLASS}{SEPARATOR}" in name}
    computed = undefined_class_scores({f"{head}{SEPARATOR}{PER_CLASS}": classes for head, classes in per_class.items()})
    undefined = {**computed, **reasons}
    return {"undefined_metrics": undefined} if undefined else {}


def format_evaluation(result: EvaluationResult) -> str:
    """What was evaluated (data, split, samples), the metrics as a table (scalars), then the per-class values of each
    head that has them."""
    scalars = {name: value for name, value in result.metrics.items() if isinstance(value, (int, float))}
    width = max([len("metric"), *(len(name) for name in scalars)])
    reasons = result.description.get("undefined_metrics", {})
    rows = (
        f"{name:<{width}}  undefined ({reasons.get(name, 'NaN')})"
        if math.isnan(value)  # null in the JSON file
        else f"{name:<{width}}  {value:.4f}{_undefined(name, value)}"
        for name, value in scalars.items()
    )
    lines = [f"{'metric':<{width}}  value", *rows]
    if "split" in result.description:
        described = SPLIT_TEXT.get(result.description["split"], result.description["split"])
        where = result.description.get("data_root") or "the data"
        samples = f"{result.description.get('samples', '?')} samples"
        if "tiled_images" in result.description:  # the metrics of tiles are not those of the whole images
            samples = (
                f"{result.description.get('samples', '?')} tiles of {result.description['tiled_images']} images "
                "(the metrics are per tile: an object or pixel where tiles overlap counts in each)"
            )
        header = [f"{where}: {described}, {samples}"]
        if result.description.get("split_chosen"):
            header.append(f"({result.description['split_chosen']})")
        absent_of = {None: result.description.get("classes_without_folder") or []}
        absent_of.update(result.description.get("head_classes_without_folder") or {})
        for head, classes in absent_of.items():
            if classes:
                named = ", ".join(map(repr, classes)) + ("" if head is None else f" for head {head!r}")
                header.append(f"(no folder of {named}: the other classes' images evaluated, numbered as in training)")
        if result.description.get("classes_not_in_data"):
            named = ", ".join(map(repr, result.description["classes_not_in_data"]))
            header.append(f"(the data has no class {named}: its classes evaluated, numbered as in training)")
        lines = [*header, "", *lines]
    for head, per_class in result.per_class.items():
        if not per_class:
            continue
        columns = list(dict.fromkeys(key for entry in per_class.values() for key in entry))
        name_width = max(len("class"), *(len(name) for name in per_class))
        lines += ["", f"{head}: per class", f"{'class':<{name_width}}  " + "  ".join(f"{column:>9}" for column in columns)]
        for name, entry in per_class.items():
            cells = [_cell(column, entry.get(column), column in entry) for column in columns]
            lines.append(f"{name:<{name_width}}  " + "  ".join(cells))
        lines += _undefined_notes(head, per_class, reasons)
    return "\n".join([*lines, *_worst_image_lines(result)])


def _worst_image_lines(result: EvaluationResult) -> list[str]:
    """What `evaluate --images` adds to the table: the file, and per head how many samples it got wrong and the
    worst."""
    if not result.worst_images:
        return []
    lines = ["", f"Per image: {result.description.get('images_file')}"]
    kinds = result.description.get("heads", {})
    for head, (wrong, scored, worst) in result.worst_images.items():
        shown = "; ".join(f"{file} ({error})" for file, error in worst)
        if kinds.get(head) == "segmentation":  # nearly every mask has a wrong pixel: the count says nothing
            lines.append(f"{head}: the most pixels wrong (of those scored): {shown or 'none'}")
        else:
            lines.append(f"{head}: {wrong} of {scored} wrong" + (f"; the worst: {shown}" if worst else ""))
    return lines


def _undefined(name: str, value: float) -> str:
    """What the table adds after a box metric of -1: pycocotools' mark of a split without any true box."""
    last = name.rpartition(SEPARATOR)[2]
    return "  (undefined: no true box in this split)" if value == -1 and last.startswith(("map", "mar")) else ""


def _undefined_notes(head: str, per_class: dict[str, dict[str, Any]], reasons: Mapping[str, str]) -> list[str]:
    """What the table of a head says under it of its `n/a` cells: each undefined value's class and why (the reasons
    of `undefined_metrics`, `<head>/per_class/<class>/<score>`), one line per class. A value with nothing to divide
    by (a class without a true sample, or never predicted) is undefined, not 0."""
    from torchbricks.bag_of_bricks.custom_metrics import UNDEFINED_SCORE_REASONS

    notes = []
    for name, entry in per_class.items():
        undefined = [column for column, value in entry.items() if _is_undefined(column, value)]
        if not undefined:
            continue
        said: dict[str, list[str]] = {}  # reason -> the scores it explains
        for column in undefined:
            key = f"{head}{SEPARATOR}{PER_CLASS}{SEPARATOR}{name}{SEPARATOR}{column}"
            reason = reasons.get(key) or UNDEFINED_SCORE_REASONS.get(column, "nothing to divide by")
            said.setdefault(reason, []).append(column)
        notes.append(f"n/a (undefined) for {name!r}: " + "; ".join(f"{', '.join(scores)}: {why}" for why, scores in said.items()))
    return notes


def _is_undefined(column: str, value: Any) -> bool:
    """Whether a per-class value is undefined: NaN (or `null` read back from a JSON file), or pycocotools' -1 of a
    box AP (as torchbricks wrote it before it wrote NaN)."""
    if value is None:
        return True
    if column == "support" or isinstance(value, bool) or not isinstance(value, (int, float)):
        return False
    return math.isnan(value) or (column.startswith("ap") and value == -1)


def _cell(column: str, value: Any, present: bool = True) -> str:
    if not present:
        return f"{'':>9}"
    if _is_undefined(column, None if value is None else float(value)):
        return f"{'n/a':>9}"
    if column == "support":
        return f"{int(value):9d}"
    return f"{float(value):9.4f}"
