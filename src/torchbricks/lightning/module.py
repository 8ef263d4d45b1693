"""`LightningBrickCollection`: a LightningModule into which any brick collection is injected.

The collection carries the model, the losses and the metrics; this module only maps Lightning's hooks onto model
stages. Nothing about a task lives here, so a new task is a new collection, never a subclass.

Metric state per stage: a metric brick holds one torchmetrics state, so training, validation and test each get a
*stage view* of the collection: a `BrickCollection` holding the very same model and loss bricks (parameters are
shared, not copied) and its own deep copies of the metric bricks. Training metrics therefore never mix with
validation metrics, and a validation run in the middle of a training epoch does not reset the training metrics.
The injected collection's own metric bricks are left untouched.
"""

from __future__ import annotations

import copy
import datetime
import fnmatch
import warnings
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from torchbricks._conventions import LOSS_PARTS, SEPARATOR, TOTAL_LOSS, logged_name
from torchbricks._extras import require
from torchbricks.brick_collection import BrickCollection
from torchbricks.bricks import BrickInterface, BrickMetrics
from torchbricks.configuration.settings import AVERAGED_METRICS_NAME
from torchbricks.errors import BrickError, DataError, UnknownMetricError, did_you_mean, did_you_mean_key
from torchbricks.lightning._epoch_values import (
    UNSCORED_REASON,
    LossMeans,
    boxless_heads,
    metric_value_names,
    summarize_metrics,
    summarizes_itself,
    undefined_class_values,
    undefined_values,
    unscored_heads,
)
from torchbricks.lightning.experiment_files import create_experiment_file_callbacks, to_json
from torchbricks.lightning.optimizers import bind_training_budget
from torchbricks.lightning.samplers import check_evaluation_loaders
from torchbricks.loss_balancing import FixedWeights, LossBalancer
from torchbricks.tags import VISUALIZATION, Stage, TagsLike

require("pytorch_lightning", "lightning")
import pytorch_lightning as pl  # noqa: E402 (after `require`, so a missing extra names what to install)

__all__ = ["LightningBrickCollection", "create_experiment_name", "to_json"]

CreateOptimizersFunc = Callable[[list[nn.Parameter]], Any]

_METRIC_STAGES = (Stage.TRAIN, Stage.VALIDATION, Stage.TEST)


def create_experiment_name() -> str:
    """A name for an experiment from the current time: `2026-11-24_13-37-00_123`."""
    now = datetime.datetime.now()
    return f"{now:%Y-%m-%d_%H-%M-%S}_{now.microsecond // 1000:03d}"


EPOCH_METRICS_KEY = "torchbricks_epoch_metrics"
"""The checkpoint entry holding `LightningBrickCollection.epoch_metrics` and the epochs that computed them."""


class LightningBrickCollection(pl.LightningModule):
    """Trains, validates, tests and predicts with a brick collection under any `pl.Trainer`.

    Each Lightning stage runs the collection with the tags of its model stage: `training_step` runs
    `Stage.TRAIN`, `validation_step` `Stage.VALIDATION`, `test_step` `Stage.TEST` and `predict_step`
    `Stage.INFERENCE` (returning the inference outputs). The loss is the (optionally weighted) sum of the loss
    outputs; each loss and the total are logged per stage (`train/loss`, `train/losses/head0/loss_ce`), per step
    while training (under DDP, of the step's batches on every process together) and per epoch: the batch-size
    weighted mean of the epoch's losses, except for a loss whose brick hands over its numerator and denominator (an
    output `loss_parts`, `torchbricks._conventions.LOSS_PARTS`, as the packaged heads' losses do), which is the sum of
    the numerators over the sum of the denominators, the whole split's loss whatever the batch size and the number of
    processes, in training epochs too (see `LossMeans`). The epoch's total is the balancer's total of the epoch's
    losses, except in a training epoch of a balancer that learns its weights in its steps (uncertainty weighting):
    there the batch-size weighted mean of the steps' totals. Epoch values and metrics are computed at the
    end of each epoch, on every process and in the same order on each (see `torchbricks.lightning._epoch_values`:
    collectives started at rank-dependent moments deadlock), so under DDP they cover the data of every process;
    scalars are logged (`validation/head0/accuracy`), and every value, confusion matrices included, is kept in
    `epoch_metrics`.

    The module writes no file itself. Its `configure_callbacks` adds the writers of
    `torchbricks.lightning.experiment_files` to whatever Trainer runs it, so the experiment folder
    `path_experiments / experiment_name` receives the mermaid graph of the collection (`brick_graph.md`) when
    fitting or testing starts, `metrics_<stage>.json` after each epoch and the per-brick checkpoints (`bricks/`)
    when fitting ends, from the global-zero process only. `write_files=False` leaves them out; a writer of the
    same kind given to the Trainer is used instead of the module's.

    Args:
        path_experiments: The folder holding experiment folders.
        experiment_name: The experiment's folder name; a timestamp when None.
        brick_collection: The collection to train; it is used, never copied (its metric bricks are copied per
            stage, see the module docstring).
        create_optimizers_func: Called with the list of trainable parameters; returns what
            `LightningModule.configure_optimizers` may return (an optimizer, or a dict with a scheduler...).
        input_names: The names given to the items of tuple batches, e.g. `(images, labels)` becomes
            `{"raw": images, "targets": labels}`. Dict batches are used as they are.
        loss_weights: Loss name -> weight of that loss in the total; unlisted losses weigh 1.
        loss_balancer: How the losses become the total instead (`torchbricks.loss_balancing`: uncertainty
            weighting, dynamic weight average, PCGrad); it is a submodule, so learned weights are trained and saved.
            Its per-epoch values (the weights) are logged as `train/balancing/...`. Not with `loss_weights`.
        missing_targets: `"skip"` runs each batch's model and only the losses and metrics whose targets the batch
            carries (batches from separately labelled data sets, see `BrickCollection.forward`); `"error"` (the
            default) needs every target in every batch. With `"skip"`, an input that no training batch carried since
            the fit started (on any process) is an error at the end of the epoch, naming the bricks that never ran
            and the close batch name: a misspelt target name would otherwise switch a head off without a word. A
            batch that is a dict of named batches (Lightning's `CombinedLoader`, one batch per data source) runs
            each of them and sums their losses.
        compile_stages: Run the training, validation and test steps through `torch.compile(stage, fullgraph=True)`
            (one compiled graph per stage; the first step of each stage pays the compilation). A stage that runs
            VISUALIZATION bricks (the test stage of a collection that draws), metric bricks with
            `return_metrics=True` or bricks written for torchbricks 0.4.2 that run their own `forward(named_inputs)`
            stays eager: drawing, per-batch metric values and such a forward are not known to be traceable.
        averaged_metrics: Metric values logged in validation (`detection/map_50`, `segmentation/mean_iou`) whose
            mean is also logged, as `validation/monitored_mean` and `test/monitored_mean`: one value for a
            checkpoint or early stopping to follow several heads. Each name is checked against the logged values.
        write_files: Add the writers of the experiment folder's files to the Trainer (`configure_callbacks`).
        separate_loaders: With several validation or test loaders, whether each gets its own values (logged as
            `<name>/dataloader_idx_<i>`; `trainer.validate` returns one dict per loader) or all are pooled into one.
            None (the default): separate, except with `missing_targets="skip"`, where the loaders are the sources of
            different heads (`MultiSourceDataModule`) and each head's values come from the loaders carrying its
            targets.

    Example:
        >>> import torch
        >>> from torchbricks import BrickCollection, BrickLoss, BrickTrainable
        >>> collection = BrickCollection({
        ...     "head": BrickTrainable(torch.nn.Linear(4, 2), input_names=["raw"], output_names=["logits"]),
        ...     "loss": BrickLoss(torch.nn.CrossEntropyLoss(), input_names=["logits", "targets"], output_names=["ce"]),
        ... })
        >>> module = LightningBrickCollection("build", "doctest", collection, lambda params: torch.optim.SGD(params, lr=0.1))
        >>> sorted(module.training_step((torch.rand(3, 4), torch.tensor([0, 1, 1])), batch_idx=0))
        ['ce', 'loss']
    """

    def __init__(
        self,
        path_experiments: Path | str,
        experiment_name: str | None,
        brick_collection: BrickCollection,
        create_optimizers_func: CreateOptimizersFunc,
        input_names: Sequence[str] = ("raw", "targets"),
        loss_weights: Mapping[str, float] | None = None,
        compile_stages: bool = False,
        loss_balancer: LossBalancer | None = None,
        missing_targets: str = "error",
        averaged_metrics: Sequence[str] = (),
        write_files: bool = True,
        separate_loaders: bool | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(brick_collection, BrickCollection):
            raise BrickError(f"LightningBrickCollection needs a BrickCollection, got {type(brick_collection).__name__}.")
        if isinstance(input_names, str) or not all(isinstance(name, str) for name in input_names):
            raise BrickError(f"input_names must be a sequence of names such as ('raw', 'targets'), got {input_names!r}.")
        self.path_experiments = Path(path_experiments)
        self._name_generated = experiment_name is None
        self.experiment_name = create_experiment_name() if experiment_name is None else experiment_name
        self.brick_collection = brick_collection
        self.create_optimizers_func = create_optimizers_func
        self.input_names = tuple(input_names)
        self.loss_weights = _check_loss_weights(dict(loss_weights or {}), brick_collection.loss_names())
        if loss_balancer is not None and self.loss_weights:
            raise BrickError("Give either loss_weights or a loss_balancer (FixedWeights holds fixed weights), not both.")
        self.loss_balancer = loss_balancer if loss_balancer is not None else FixedWeights(self.loss_weights)
        if missing_targets not in ("error", "skip"):
            raise BrickError(f"missing_targets must be 'error' or 'skip', got {missing_targets!r}.")
        self.missing_targets = missing_targets
        self.separate_loaders = missing_targets != "skip" if separate_loaders is None else bool(separate_loaders)
        self.write_files = write_files
        self.averaged_metrics: tuple[str, ...] = ()
        self._train_losses: dict[str, torch.Tensor] = {}
        self._train_total = torch.zeros(())  # the total of `_train_losses`, which Lightning scales before backward
        self._epoch_loss_means: dict[str, torch.Tensor] = {}
        self.compile_stages = compile_stages
        self._compiled_stages: dict[Stage, Callable[..., dict[str, Any]]] = {}

        self._stage_collections: dict[Stage, BrickCollection] = {}
        self._loss_means = {stage: LossMeans() for stage in _METRIC_STAGES}
        self._loss_parts: dict[Stage, dict[str, tuple[str, ...]]] = {}
        self._loaders_done = 0  # validation or test loaders whose values were logged after their last batch
        self._batch_names: set[str] = set()  # the names the training batches of this fit carried (missing_targets="skip")
        self._summarized_loader: int | None = None  # the loader whose values are being logged (several loaders)
        self.stage_metric_bricks = nn.ModuleDict()
        self._create_stage_views()
        self.averaged_metrics = _check_averaged_metrics(averaged_metrics, self)
        """Validation metric values (`detection/map_50`) whose mean each validation and test epoch logs as
        `<stage>/monitored_mean`, for a checkpoint that monitors several heads at once."""
        self.epoch_metrics: dict[str, dict[str, Any]] = {}
        """Stage name -> the metric values computed at the end of its last epoch (on the CPU)."""
        self.epoch_metrics_epoch: dict[str, int] = {}
        """Stage name -> the training epoch (counted from 1) whose end computed its `epoch_metrics`: with
        `check_val_every_n_epoch` above 1 the validation values are older than the training ones."""
        self.undefined_metrics: dict[str, dict[str, str]] = {}
        """Stage name (as in `epoch_metrics`) -> its values of the last epoch that are NaN -> why (`undefined_values`):
        a test split whose every mask pixel is ignored has no mean IoU, and says so."""
        self._said_undefined: set[tuple[str, str]] = set()

    @property
    def path_experiment(self) -> Path:
        """The experiment folder, `path_experiments / experiment_name`."""
        return self.path_experiments / self.experiment_name

    def stage_collection(self, stage: Stage) -> BrickCollection:
        """The collection a stage runs: the injected one, with the stage's own metric bricks for train/validation/test."""
        return self._stage_collections.get(stage, self.brick_collection)

    # --- Lightning hooks -----------------------------------------------------------------------------------------

    def forward(self, named_inputs: dict[str, Any], tags: TagsLike | None = Stage.INFERENCE) -> dict[str, Any]:
        """Runs the collection; the inference stage by default."""
        return self.brick_collection(named_inputs=named_inputs, tags=tags)

    def setup(self, stage: str) -> None:
        self._create_stage_views()  # the collection may have changed since __init__ (a brick added, a head swapped)
        if stage == "fit":
            _check_gradient_balancer_strategy(self.loss_balancer, self.trainer)
        if self._name_generated and self.trainer.world_size > 1:
            # Each process made up its own timestamp; all of them must write to (and read from) the same folder.
            self.experiment_name = self.trainer.strategy.broadcast(self.experiment_name, src=0)

    def configure_optimizers(self) -> Any:
        modules = (self.brick_collection, self.loss_balancer)
        parameters = [parameter for module in modules for parameter in module.parameters() if parameter.requires_grad]
        optimizers = self.create_optimizers_func(parameters)
        if self._trainer is not None:  # schedules that follow the trainer's steps and max_time
            bind_training_budget(optimizers, self.trainer)
        return optimizers

    def backward(self, loss: torch.Tensor, *args: Any, **kwargs: Any) -> None:
        if self.loss_balancer.uses_gradients and self._train_losses:
            # Lightning hands over the step's total divided by accumulate_grad_batches (and times the mixed-precision
            # loss scale); the balancer backpropagates the losses themselves, so they are scaled alike, or the
            # accumulated gradients came out accumulate_grad_batches times too large.
            total = self._train_total.detach()
            scale = loss.detach() / total if bool(total != 0) and bool(torch.isfinite(total)) else None
            if scale is None and self._trainer is not None:
                scale = torch.tensor(1.0 / self.trainer.accumulate_grad_batches)
            losses = self._train_losses if scale is None else {name: value * scale for name, value in self._train_losses.items()}
            # Under DDP the balancer averages each loss's gradient over the processes itself: the surgery on the
            # whole step's gradients, as one process does (DDP's reducer averages only the sum's).
            several = self._trainer is not None and self.trainer.world_size > 1
            average = partial(self.trainer.strategy.reduce, reduce_op="mean") if several else None
            self.loss_balancer.backward(losses, average=average)
            return
        super().backward(loss, *args, **kwargs)

    def training_step(self, batch: Any, batch_idx: int) -> dict[str, Any]:
        return self._losses_step(batch, Stage.TRAIN)

    def validation_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return self._losses_step(batch, Stage.VALIDATION)

    def test_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        return self._losses_step(batch, Stage.TEST)

    def on_validation_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._end_of_loader(Stage.VALIDATION, batch_idx, dataloader_idx)

    def on_test_batch_end(self, outputs: Any, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> None:
        self._end_of_loader(Stage.TEST, batch_idx, dataloader_idx)

    def _loader_batches(self, stage: Stage) -> list[int | float]:
        """The number of batches of each validation or test loader of this run (one entry per loader)."""
        if stage is Stage.VALIDATION:
            return list(self.trainer.num_sanity_val_batches if self.trainer.sanity_checking else self.trainer.num_val_batches)
        return list(self.trainer.num_test_batches)

    def _end_of_loader(self, stage: Stage, batch_idx: int, dataloader_idx: int) -> None:
        """With several validation or test loaders (Lightning runs them one after the other), each loader's values
        are computed, logged and reset after its last batch: Lightning names them `<name>/dataloader_idx_<i>` and
        `trainer.validate` returns one dict per loader. (Computed once at the epoch's end, they were the values of
        every loader pooled, reported for each.)"""
        batches = self._loader_batches(stage)
        if not self.separate_loaders or len(batches) < 2 or batch_idx + 1 != batches[dataloader_idx]:
            return
        self._summarized_loader = dataloader_idx
        try:
            self._summarize_epoch(stage)
        finally:
            self._summarized_loader = None
        self.stage_collection(stage).reset_metrics()
        self._loss_means[stage].reset()
        self._loaders_done += 1

    def predict_step(self, batch: Any, batch_idx: int, dataloader_idx: int = 0) -> dict[str, Any]:
        named_inputs = self.named_inputs_from_batch(batch)
        return self.brick_collection(named_inputs=named_inputs, tags=Stage.INFERENCE, return_inputs=False)

    def on_train_start(self) -> None:
        self._batch_names.clear()

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Keeps the last epochs' metric values (`epoch_metrics`) in the checkpoint: a run stopped after its last
        epoch's checkpoint (in its test or export) and resumed trains no epoch, and would otherwise report no train or
        validation values."""
        checkpoint[EPOCH_METRICS_KEY] = {"values": self.epoch_metrics, "epochs": self.epoch_metrics_epoch}

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """Takes the checkpoint's `epoch_metrics` back when fitting resumes from it, not when a test loads the best
        epoch's weights (the values reported stay the last epoch's)."""
        saved = checkpoint.get(EPOCH_METRICS_KEY)
        trainer = self._trainer
        if saved is not None and trainer is not None and trainer.state.fn == "fit":
            self.epoch_metrics = dict(saved["values"])
            self.epoch_metrics_epoch = dict(saved["epochs"])

    def on_train_epoch_start(self) -> None:
        self.stage_collection(Stage.TRAIN).reset_metrics()
        self._loss_means[Stage.TRAIN].reset()

    def on_validation_epoch_start(self) -> None:
        if self.trainer.world_size > 1:  # the same decision on every process: all raise, none waits for the others
            check_evaluation_loaders(self.trainer.val_dataloaders, "validation")
        self.stage_collection(Stage.VALIDATION).reset_metrics()
        self._loss_means[Stage.VALIDATION].reset()
        self._loaders_done = 0

    def on_test_epoch_start(self) -> None:
        if self.trainer.world_size > 1:
            check_evaluation_loaders(self.trainer.test_dataloaders, "test")
        self.stage_collection(Stage.TEST).reset_metrics()
        self._loss_means[Stage.TEST].reset()
        self._loaders_done = 0

    def on_train_epoch_end(self) -> None:
        if self.missing_targets == "skip":
            self._check_inputs_were_given()
        self._summarize_epoch(Stage.TRAIN)
        means = {name: float(loss) for name, loss in self._epoch_loss_means.items()}
        self.loss_balancer.epoch_end(means)  # the means are reduced over processes: every process moves alike
        if not self.trainer.sanity_checking:
            for name, value in self.loss_balancer.logged_values().items():
                key = logged_name("train", f"balancing/{name}")
                self.log(key, value, on_step=False, on_epoch=True, sync_dist=True, rank_zero_only=True)

    def on_validation_epoch_end(self) -> None:
        if self._loaders_done == 0 or self._loss_means[Stage.VALIDATION].updated:  # one loader, or one of unknown length
            self._summarize_epoch(Stage.VALIDATION)

    def on_test_epoch_end(self) -> None:
        if self._loaders_done == 0 or self._loss_means[Stage.TEST].updated:
            self._summarize_epoch(Stage.TEST)

    def configure_callbacks(self) -> list[pl.Callback]:
        """The writers of the experiment folder's files (`torchbricks.lightning.experiment_files`), unless
        `write_files` is False; a writer the Trainer holds already (the user's own, or one added for an earlier
        `fit`) is kept instead."""
        if not self.write_files:
            return []
        present = getattr(self.trainer, "callbacks", [])
        return [
            writer
            for writer in create_experiment_file_callbacks()
            if not any(isinstance(callback, type(writer)) for callback in present)
        ]

    # --- the work ---------------------------------------------------------------------------------------------

    def _create_stage_views(self) -> None:
        _warn_shared_summaries(self.brick_collection)
        views = {stage: _stage_view(self.brick_collection) for stage in _METRIC_STAGES}
        self._stage_collections = views
        self._loss_parts = {stage: _loss_parts_outputs(view, stage) for stage, view in views.items()}
        if self.compile_stages:
            self._compiled_stages = {
                stage: torch.compile(view, fullgraph=True) for stage, view in views.items() if _traceable(view, stage)
            }
        # The views are not submodules (that would repeat every shared parameter in the state_dict); their metric
        # bricks are, so `.to(device)` moves the metric states along with the model.
        # The copies of bricks with their own summarize sit under keys of their own, so the metric bricks keep the
        # state_dict keys of checkpoints written before they were copied.
        owned = {f"{stage.value}_stage": nn.ModuleList(_metric_bricks(view)) for stage, view in views.items()}
        originals = dict(self.brick_collection.iter_bricks())
        for stage, view in views.items():
            copies = [brick for path, brick in view.iter_bricks() if summarizes_itself(brick) and brick is not originals[path]]
            if copies:
                owned[f"{stage.value}_stage_own_summaries"] = nn.ModuleList(copies)
        self.stage_metric_bricks = nn.ModuleDict(owned)

    def logged_names(self, stage: Stage) -> list[str]:
        """The epoch (and, while training, step) values this module logs for `stage`, as callbacks read them.

        Known before any batch, from the bricks the stage runs: the total loss and each loss (`train/loss`,
        `train/losses/head/loss_ce`, with `_epoch` and `_step` forms while training) and each metric value
        (`validation/head/accuracy`), and while training the loss balancer's per-epoch values
        (`train/balancing/weights/head/loss_ce`). A metric brick whose names are only known once it computes (a dict-valued
        metric that does not declare them, see `metric_value_names`) appears as `<stage>/<its collection path>/*`.
        """
        collection = self.stage_collection(stage)
        plan = collection.plan(tags=stage)
        planned = {node.path for node in plan.bricks}
        forms = ("", "_epoch", "_step") if stage is Stage.TRAIN else ("",)
        losses = [TOTAL_LOSS] + [name for node in plan.bricks for name in node.losses]
        names = [logged_name(stage.value, loss, loss=True) + form for loss in losses for form in forms]
        for path, brick in collection.iter_bricks():
            if path not in planned or not (isinstance(brick, BrickMetrics) or summarizes_itself(brick)):
                continue
            scope = SEPARATOR.join(path.split(SEPARATOR)[:-1])
            values = metric_value_names(brick) if isinstance(brick, BrickMetrics) else None  # a brick's own: known once run
            names += [
                logged_name(stage.value, SEPARATOR.join(filter(None, (scope, value))))
                for value in (["*"] if values is None else values)
            ]
        if stage is Stage.TRAIN:  # the balancer's values (weights, ...) per epoch
            names += [logged_name(stage.value, f"balancing/{name}") for name in self.loss_balancer.logged_value_names()]
        if self.averaged_metrics and stage is not Stage.TRAIN:
            names.append(logged_name(stage.value, AVERAGED_METRICS_NAME))
        return names

    def _named_batches(self, batch: Any) -> list[dict[str, Any]]:
        """The named batches of one step: one, or one per source when the batch is a dict of named batches."""
        if isinstance(batch, Mapping) and batch and all(isinstance(value, Mapping) for value in batch.values()):
            return [dict(value) for value in batch.values()]
        return [self.named_inputs_from_batch(batch)]

    def named_inputs_from_batch(self, batch: Any) -> dict[str, Any]:
        """A batch as named inputs: a dict is used as is; a tuple or list is named by `input_names`."""
        if isinstance(batch, Mapping):
            return dict(batch)
        if isinstance(batch, (tuple, list)):
            if len(batch) != len(self.input_names):
                raise BrickError(
                    f"A batch of {len(batch)} items cannot be named by input_names {list(self.input_names)}; "
                    "pass LightningBrickCollection(input_names=[...]) with one name per item, or yield dict batches."
                )
            return dict(zip(self.input_names, batch, strict=True))
        raise BrickError(
            f"A batch must be a dict of named inputs or a tuple named by input_names {list(self.input_names)}, "
            f"got {type(batch).__name__}."
        )

    def _losses_step(self, batch: Any, stage: Stage) -> dict[str, Any]:
        run = self._compiled_stages.get(stage) or self.stage_collection(stage)
        losses: dict[str, Any] = {}
        batch_size = 0
        # each named batch's losses, its size and the losses' numerators and denominators, for the epoch values
        per_source: list[tuple[dict[str, Any], int, dict[str, Any]]] = []
        parts_outputs = self._loss_parts.get(stage, {})
        for named_inputs in self._named_batches(batch):
            if stage is Stage.TRAIN and self.missing_targets == "skip":
                self._batch_names.update(named_inputs)
            named_outputs = run(named_inputs=named_inputs, tags=stage, missing_targets=self.missing_targets)
            source_losses = self.brick_collection.extract_losses(named_outputs)
            for name, loss in source_losses.items():
                losses[name] = losses[name] + loss if name in losses else loss
            source_size = _batch_size(named_inputs) or 1
            per_source.append((source_losses, source_size, _parts_of(named_outputs, parts_outputs)))
            batch_size += source_size
        if not losses:
            raise BrickError(
                f"No loss brick ran in stage {stage.value!r}; loss outputs of the collection: "
                f"{self.brick_collection.loss_names()}. Add a BrickLoss (tag LOSS) to train with it"
                + (_lacked_by(run, stage, named_inputs) if self.missing_targets == "skip" else ".")
            )
        total = self.loss_balancer(losses)
        if stage is Stage.TRAIN:
            self._train_losses = losses if self.loss_balancer.uses_gradients else {}
            self._train_total = total
        if self._trainer is None:
            return {"loss": total, **losses}  # called outside a Trainer (a notebook, a test): nothing to log to
        # A head's loss is the mean over the samples of the batches that carried its targets: weighed by the whole
        # step's size (every source of a combined batch), a head's epoch mean leaned towards the steps where the
        # other sources' batches were larger (a source's last, partial batch, or a cycled shorter source).
        # A loss over nothing (a segmentation head whose every mask pixel of the step is 255: 0 / 0) is NaN, and the
        # step's total lacks it (NaN with fixed weights; a learned balancer leaves the term out, which gave a smaller
        # total): the total of a step is undefined as soon as one loss is, as a split's is, and is left out of the
        # epoch's mean (`LossMeans`), so is the loss itself.
        lacking = torch.stack([loss.detach().isnan().any() for loss in losses.values()]).any()
        step_total = torch.where(lacking, torch.full_like(total.detach(), float("nan")), total.detach())
        self._loss_means[stage].update({"loss": step_total}, batch_size)
        for source_losses, source_size, parts in per_source:
            self._loss_means[stage].update(source_losses, source_size, parts)
        if stage is Stage.TRAIN:
            log = partial(self.log, on_step=True, on_epoch=False, batch_size=batch_size)
            # an undefined step value is logged NaN, as an undefined epoch value is: left out, Lightning would log the
            # previous step's value again for it
            for name, loss in self._step_losses(step_total, losses, per_source, batch_size).items():
                log(logged_name("train", name, loss=True) + "_step", loss, prog_bar=name == TOTAL_LOSS)
        return {"loss": total, **losses}

    def _step_losses(
        self,
        total: torch.Tensor,
        losses: Mapping[str, torch.Tensor],
        per_source: Sequence[tuple[Mapping[str, torch.Tensor], int, Mapping[str, torch.Tensor]]],
        batch_size: int,
    ) -> dict[str, torch.Tensor]:
        """The total and each loss of a training step, as logged per step: under DDP the step's batch of every
        process, as one process given their batches together computes them (each process's own were rank 0's half
        alone in the log), with one collective on every process in every step."""
        if self.trainer.world_size < 2:
            return {TOTAL_LOSS: total, **losses}
        step = LossMeans()
        step.update({TOTAL_LOSS: total}, batch_size)
        for source_losses, source_size, _ in per_source:
            step.update(source_losses, source_size)
        names = [TOTAL_LOSS, *self.brick_collection.loss_names()]
        return step.compute(names, self.device, partial(self.trainer.strategy.reduce, reduce_op="sum"))

    def _check_averaged_values(self, values: Mapping[str, Any]) -> None:
        """Raises when a name of `averaged_metrics` is not among the values the epoch computed: the mean (what the
        checkpoint and early stopping follow) would never be logged, and they would never act. Names are checked
        against the logged names when the module is built, but a metric that names its values only once it computes
        (`<stage>/<path>/*`) lets any name under its path through."""
        missing = [name for name in self.averaged_metrics if name not in values]
        if not missing:
            return
        scalars = [name for name, value in values.items() if isinstance(value, torch.Tensor) and value.numel() == 1]
        sanity = self._trainer is not None and self.trainer.sanity_checking
        when = (
            f" at the end of {'the sanity check' if sanity else f'epoch {int(self.current_epoch) + 1}'}: the mean of "
            f"averaged_metrics ({AVERAGED_METRICS_NAME}), which checkpoints and early stopping follow, cannot be computed"
            + (f" (also missing: {missing[1:]})" if len(missing) > 1 else "")
        )
        raise UnknownMetricError(missing[0], scalars, did_you_mean_key(missing[0], scalars), when=when)

    def _check_inputs_were_given(self) -> None:
        """With `missing_targets="skip"`: raises when an input the training stage needs came in no training batch
        since the fit started, on any process (decided from all processes at once, so that all raise or none)."""
        plan = self.stage_collection(Stage.TRAIN).plan(tags=Stage.TRAIN)
        needed = list(plan.required_inputs)
        seen = torch.tensor([name in self._batch_names for name in needed], dtype=torch.float32, device=self.device)
        if self._trainer is not None and self.trainer.world_size > 1:
            seen = self.trainer.strategy.reduce(seen, reduce_op="sum")
        never = [name for name, count in zip(needed, seen.tolist(), strict=True) if count == 0]
        if not never:
            return
        batch_names = sorted(self._batch_names)
        name = never[0]
        skipped = [node.path for node in plan.bricks if name in node.inputs]
        raise BrickError(
            f"No training batch up to epoch {self.current_epoch} carried {name!r}, which brick {plan.first_consumer[name]!r} "
            f"needs: with missing_targets='skip' the bricks {skipped} (and those after them) never ran. The batches "
            f"carried {batch_names}.{did_you_mean(name, batch_names)} Name the targets as the bricks read them, or "
            "leave the bricks that do not train on this data out of the training stage (their tags)."
            + (f" Other inputs no batch carried: {never[1:]}." if len(never) > 1 else "")
        )

    def _summarize_epoch(self, stage: Stage) -> None:
        # Every process runs the same collectives here, in the same order, whatever the callbacks do.
        reduce = partial(self.trainer.strategy.reduce, reduce_op="sum")
        loss_names = ["loss", *self.brick_collection.loss_names()]
        losses = self._loss_means[stage].compute(loss_names, self.device, reduce)
        if len(losses) > 1 and (stage is not Stage.TRAIN or not _learns_weights(self.loss_balancer)):
            # the balancer's weights stay put over an evaluation epoch (and over a training epoch unless it learns them
            # in its steps), and its total is affine in each loss: the total of the epoch's losses is the whole
            # split's, as they are (a mean of the batches' totals was not)
            with torch.no_grad():
                losses[TOTAL_LOSS] = self.loss_balancer({name: loss for name, loss in losses.items() if name != TOTAL_LOSS})
        if stage is Stage.TRAIN:
            self._epoch_loss_means = {name: loss for name, loss in losses.items() if name != "loss"}
        collection = self.stage_collection(stage)
        running = set(collection.execution_order(tags=stage))
        values = summarize_metrics(collection, self.device, reduce, running)
        if stage is not Stage.TRAIN and self._summarized_loader is None:
            self._check_averaged_values(values)  # in the sanity check too: before the first epoch trains
        if self.trainer.sanity_checking:
            return
        loader = self._summarized_loader
        kept_as = stage.value if loader is None else f"{stage.value}/dataloader_idx_{loader}"  # in epoch_metrics
        unscored = self._check_scored(stage, kept_as, "" if loader is None else f"/dataloader_idx_{loader}", values, losses)
        for name in unscored:  # 0, a sum over no pixel, would read as a perfect loss; NaN as the mean IoU beside it
            losses[name] = torch.full_like(losses[name], float("nan"))
        # The values are reduced already. `sync_dist=True, rank_zero_only=True` is how Lightning is told to log
        # them as they are: its own reduction would be a collective started whenever a callback first reads the
        # value (on rank 0 alone for the progress bar), and without sync_dist it warns on every epoch-level log.
        log = partial(self.log, on_step=False, on_epoch=True, sync_dist=True, rank_zero_only=True)
        suffix = "_epoch" if stage is Stage.TRAIN else ""  # the names Lightning gives values logged per step and epoch
        for name, loss in losses.items():
            key = logged_name(stage.value, name, loss=True)
            log(key + suffix, loss, prog_bar=name == "loss")
            if suffix:
                log(key, loss, logger=False)  # callbacks may monitor `train/loss` as before
        for name, value in values.items():
            if isinstance(value, torch.Tensor) and value.numel() == 1:
                # Logged from the metric's device, not a CPU copy, as Lightning expects.
                log(logged_name(stage.value, name), value.float(), prog_bar=stage is Stage.VALIDATION)
        if stage is not Stage.TRAIN and self.averaged_metrics and all(name in values for name in self.averaged_metrics):
            mean = torch.stack([values[name].float().reshape(()) for name in self.averaged_metrics]).mean()
            log(logged_name(stage.value, AVERAGED_METRICS_NAME), mean, prog_bar=stage is Stage.VALIDATION)
            missing = [name for name in self.averaged_metrics if name in self.undefined_metrics.get(kept_as, {})]
            if missing:  # a mean with an undefined term is undefined (NaN), not the mean of the others
                self.undefined_metrics[kept_as][AVERAGED_METRICS_NAME] = (
                    f"the mean of {list(self.averaged_metrics)}, and {missing} are undefined"
                )
        if values:  # the experiment files' writer reads them (no metric brick ran in this stage: nothing to keep)
            self.epoch_metrics[kept_as] = {name: _to_cpu(value) for name, value in values.items()}
            self.epoch_metrics_epoch[kept_as] = int(self.current_epoch) + 1

    def _check_scored(
        self, stage: Stage, key: str, suffix: str, values: Mapping[str, Any], losses: Mapping[str, Any]
    ) -> list[str]:
        """Refuses a training or validation epoch in which a head scored no target (`unscored_heads`: every mask pixel
        of its batches 255), whose values would be undefined (a NaN mean IoU, a loss of 0) and followed by the best
        checkpoint and early stopping; keeps why a value of the epoch is undefined (`undefined_metrics`) and says it
        once per stage and value (a test split without a scored pixel: the run's other results stand).

        Returns:
            The names in `losses` that are undefined (the losses of a head that scored nothing, and the total, a sum
            over every head, whenever one head's is): they are logged as NaN, as the head's mean IoU is, not as the 0
            they sum to. Each undefined per-class value (`undefined_class_values`) is kept with its reason too.

        Raises:
            DataError: A training or validation epoch scored no target of a head, or had no true box for a box head
                (`boxless_heads`: its mAP, the default monitor, is undefined); the message names the split and the heads.
        """
        unscored = unscored_heads(values)
        if unscored and stage is not Stage.TEST:
            follows = {
                Stage.TRAIN: "nothing would be learned from it",
                Stage.VALIDATION: "the best checkpoint and early stopping would follow nothing",
            }[stage]
            named = [logged_name(stage.value, name) for name in undefined_values(values)]
            raise DataError(
                f"The {stage.value} split gave head(s) {unscored} no pixel to score in epoch {self.current_epoch + 1}: "
                f"every mask pixel of its batches is 255 (ignored), so {named or 'its metrics'} would be undefined "
                f"(NaN) and its loss 0: {follows}. Save the split's masks with class indices (255 only where a "
                "pixel's class is unknown); `torchbricks check-data DIR` names such splits."
            )
        boxless = boxless_heads(values)
        if boxless and stage is not Stage.TEST:
            # the monitor (validation/detection/map_50) would be NaN: early stopping ends the run on a NaN and the best
            # checkpoint never improves on one, so the run stops here, before any value of the epoch is logged
            follows = {
                Stage.TRAIN: "no box would be learned from it",
                Stage.VALIDATION: "the best checkpoint and early stopping would follow nothing",
            }[stage]
            named = [logged_name(stage.value, name) for name, value in values.items() if name.rpartition("/")[0] in boxless]
            scalars = [name for name in named if not name.endswith("per_class")]
            raise DataError(
                f"The {stage.value} split has no true box for head(s) {boxless} in epoch {self.current_epoch + 1} (no "
                f"object, or only ignored ones: VOC difficult, COCO crowd), so {scalars} would be undefined (NaN; "
                f"pycocotools' -1): {follows}. Give the split labelled objects; `torchbricks check-data DIR` counts the "
                "objects of each split."
            )
        undefined = undefined_values(values)
        # The losses of a head that scored nothing are 0 (a sum of no pixel), and so is their share of the total: the
        # total of the other heads' losses alone is no total of every head, comparable with another split's or run's,
        # so it is undefined as soon as one head's loss is (each defined head's loss stays a number of its own).
        unscored_losses = [name for name in losses if name.rpartition("/")[0] in unscored]
        if unscored_losses and TOTAL_LOSS in losses:
            unscored_losses.append(TOTAL_LOSS)
        for name in unscored_losses:
            loss = logged_name(stage.value, name, loss=True).removeprefix(logged_name(stage.value, ""))
            undefined[loss] = UNSCORED_REASON
        if TOTAL_LOSS in unscored_losses and len(unscored_losses) < len(losses):
            undefined[TOTAL_LOSS] = (
                f"the sum of every head's loss, and head(s) {unscored} have none: {UNSCORED_REASON}; the other heads' "
                "losses are each a number (losses/<head>/<loss>)"
            )
        said = [f"{logged_name(stage.value, name)}{suffix}" for name in undefined if (key, name) not in self._said_undefined]
        # a class absent from the split (or never predicted) has per-class values without a denominator: kept with
        # their reasons beside the whole metrics', not warned of (they are neither logged nor printed as numbers)
        self.undefined_metrics[key] = {**undefined, **undefined_class_values(values)}
        if said:
            self._said_undefined.update((key, name) for name in undefined)
            because = f"head(s) {unscored} scored no pixel: every mask pixel of the split is 255 (ignored)" if unscored else ""
            if boxless:
                because = "; ".join(filter(None, [because, f"head(s) {boxless} had no true box to find"]))
            pl.utilities.rank_zero_warn(
                f"The {key} values {said} are undefined, NaN in the CSV and TensorBoard logs and null in the JSON files "
                f"(their undefined_metrics says why): {because or 'a metric had nothing to measure on the split'}.",
                category=UserWarning,
            )
        return unscored_losses


def _learns_weights(balancer: LossBalancer) -> bool:
    """Whether the balancer's weights change within a training epoch (learned in its steps, as uncertainty weighting's
    log-variances), rather than only at the epoch's end (dynamic weight average) or never (fixed weights, PCGrad)."""
    return any(parameter.requires_grad for parameter in balancer.parameters())


def _loss_parts_outputs(collection: BrickCollection, stage: Stage) -> dict[str, tuple[str, ...]]:
    """The output `LOSS_PARTS` of each loss brick the stage runs -> the losses whose numerators and denominators are
    its rows (the brick's loss outputs, in order)."""
    return {
        output: node.losses
        for node in collection.plan(tags=stage).bricks
        if node.losses
        for output in node.outputs
        if output.rpartition(SEPARATOR)[2] == LOSS_PARTS and output not in node.losses
    }


def _parts_of(named_outputs: Mapping[str, Any], parts_outputs: Mapping[str, tuple[str, ...]]) -> dict[str, torch.Tensor]:
    """Each loss's (numerator, denominator) among `named_outputs`, read from the `LOSS_PARTS` outputs that ran."""
    parts: dict[str, torch.Tensor] = {}
    for output, names in parts_outputs.items():
        if output not in named_outputs:
            continue
        value = named_outputs[output]
        if not isinstance(value, torch.Tensor) or tuple(value.shape) != (len(names), 2):
            shape = tuple(value.shape) if isinstance(value, torch.Tensor) else type(value).__name__
            raise BrickError(
                f"Output {output!r} must hold the numerator and denominator of each of the losses {list(names)}, "
                f"a tensor of shape {(len(names), 2)}; got {shape}. Name it otherwise if it is something else."
            )
        parts.update(zip(names, value, strict=True))
    return parts


def _check_gradient_balancer_strategy(balancer: LossBalancer, trainer: pl.Trainer) -> None:
    """Raises when a balancer that combines gradients (PCGrad) would train under several processes of another
    strategy than DDP: it averages each loss's gradient over the processes itself, next to DDP's reducer, which
    sharded (FSDP) or engine-driven (DeepSpeed) training does not have, and would train on wrong gradients."""
    if not balancer.uses_gradients or trainer.world_size < 2:
        return
    strategy = trainer.strategy
    if isinstance(strategy, pl.strategies.DDPStrategy) and "deepspeed" not in type(strategy).__name__.lower():
        return
    raise BrickError(
        f"Loss balancing {type(balancer).__name__} (loss_balancing=pcgrad) combines each loss's gradient itself, which on "
        f"{trainer.world_size} processes works with DDP only (trainer.strategy=ddp), not with {type(strategy).__name__} "
        "(trainer.strategy). Use trainer.strategy=ddp, or loss_balancing=uncertainty or dwa."
    )


def _lacked_by(collection: Any, stage: Stage, named_inputs: Mapping[str, Any]) -> str:
    """The end of the "no loss brick ran" error with `missing_targets="skip"`: the names the batch lacked, and the
    close name it carried (a misspelt target name)."""
    plan = getattr(collection, "plan", None)
    needed = list(plan(tags=stage).required_inputs) if plan is not None else []
    lacked = [name for name in needed if name not in named_inputs]
    carried = sorted(named_inputs)
    close = "".join(f" For {name!r}:{hint}" for name in lacked if (hint := did_you_mean(name, carried)))
    return f", or give each batch the targets of at least one head. This batch carried {carried} and lacked {lacked}.{close}"


def _stage_view(collection: BrickCollection) -> BrickCollection:
    """A collection sharing every brick of `collection` except the metric bricks, which are fresh copies, and the
    bricks with their own `summarize` and no parameters (0.4.2's metric-like bricks), which are copies.

    A brick with its own `summarize` and parameters is shared, as its parameters must be (`_warn_shared_summaries`)."""

    def copy_metrics(path: str, brick: BrickInterface) -> BrickInterface:
        if isinstance(brick, BrickMetrics):
            fresh = copy.deepcopy(brick)
            fresh.reset()
            return fresh
        if summarizes_itself(brick) and next(brick.parameters(), None) is None:
            return copy.deepcopy(brick)
        return brick

    return collection.map_bricks(copy_metrics)


def _warn_shared_summaries(collection: BrickCollection) -> None:
    """Warns of each brick with its own `summarize` that the stage views share (it has parameters)."""
    for path, brick in collection.iter_bricks():
        if summarizes_itself(brick) and next(brick.parameters(), None) is not None:
            warnings.warn(
                f"Brick {path!r} has its own summarize() and parameters, so the training, validation and test stages "
                "share it: what it summarizes at the end of a stage's epoch holds the batches of every stage since its "
                "last summary. Keep its values in a metric brick (BrickMetrics) to get them per stage.",
                UserWarning,
                stacklevel=3,
            )


def _traceable(collection: BrickCollection, stage: Stage) -> bool:
    """Whether the bricks a stage runs can be compiled whole: none of them draws (VISUALIZATION), computes its
    metrics on every batch (`return_metrics=True`) or runs its own Python `forward(named_inputs)` (a brick written
    for torchbricks 0.4.2, whose forward may do anything: update torchmetrics, move values to the CPU, ...)."""
    running = set(collection.execution_order(tags=stage))
    return not any(
        VISUALIZATION in brick.tags or getattr(brick, "return_metrics", False) or _runs_own_forward(brick)
        for path, brick in collection.iter_bricks()
        if path in running
    )


def _runs_own_forward(brick: BrickInterface) -> bool:
    """Whether a collection runs `brick` through its own `forward(named_inputs)` (see `BrickInterface.step_function`)."""
    kind = type(brick)
    return kind.step_function is BrickInterface.step_function and kind.forward is not BrickInterface.forward


def _metric_bricks(collection: BrickCollection) -> list[BrickMetrics]:
    return [brick for _, brick in collection.iter_bricks() if isinstance(brick, BrickMetrics)]


def _to_cpu(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return value.detach().cpu()
    if isinstance(value, Mapping):
        return {key: _to_cpu(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_to_cpu(item) for item in value)
    return value


def _check_averaged_metrics(averaged_metrics: Sequence[str], module: LightningBrickCollection) -> tuple[str, ...]:
    if isinstance(averaged_metrics, str):
        raise BrickError(f"averaged_metrics must be a sequence of metric names, got the string {averaged_metrics!r}.")
    logged = [name.removeprefix("validation/") for name in module.logged_names(Stage.VALIDATION)]
    for name in averaged_metrics:
        if not any(fnmatch.fnmatchcase(name, pattern) for pattern in logged):
            values = [item for item in logged if not item.startswith(("loss", "losses/"))]
            raise UnknownMetricError(name, values, did_you_mean_key(name, logged))
    return tuple(averaged_metrics)


def _check_loss_weights(loss_weights: dict[str, float], loss_names: list[str]) -> dict[str, float]:
    for name in loss_weights:
        if name not in loss_names:
            raise BrickError(
                f"loss_weights names loss {name!r}, which no loss brick produces. Loss names: {loss_names}."
                f"{did_you_mean(name, loss_names)}"
            )
    return loss_weights


def _batch_size(named_inputs: Mapping[str, Any]) -> int | None:
    for value in named_inputs.values():
        if isinstance(value, torch.Tensor) and value.ndim > 0:
            return int(value.shape[0])
    return None
