"""Loss balancing for multi-task collections: how the named losses of several heads become one training loss.

Every strategy is an `nn.Module` taking the dict of losses a call produced (`BrickCollection.extract_losses`) and
returning the total, so it works with any collection and any training loop. Losses a batch did not produce (a
`missing_targets="skip"` call on a batch without a head's targets) are simply absent and do not count.

- `FixedWeights`: a constant weight per loss (1 by default): the sum torchbricks always used.
- `UncertaintyWeighting`: Kendall, Gal and Cipolla (2018): one learned log-variance `s` per loss,
  `total = sum(exp(-s) * loss + s)`; at the optimum `exp(-s)` is `1 / loss`, so a loss that stays large is
  weighted down. Its parameters must be given to the optimizer (`parameters()`).
- `DynamicWeightAverage`: Liu, Johns and Davison (2019): the weights follow how fast each loss fell over the last
  two epochs, `w_i = K * softmax(r / T)_i` with `r_i = L_i(t-1) / L_i(t-2)`; a loss that falls slower gets more.
  Call `epoch_end(mean_losses)` after each epoch.
- `PCGrad`: Yu et al. (2020), gradient surgery: each loss's gradient on the shared parameters is projected off
  the gradients it conflicts with (negative dot product) before they are summed. Its `backward(losses, shared)`
  replaces `total.backward()`; under DDP, `backward(..., average=...)` averages each loss's gradient over the
  processes before the surgery (`LightningBrickCollection` does), as the surgery of the averaged gradients is not
  the average of each process's surgery.

`logged_values()` gives what to log per epoch: the weights, or for PCGrad the fraction of conflicting pairs.

Example:
    >>> import torch
    >>> balancer = FixedWeights({"seg/loss": 0.5})
    >>> balancer({"seg/loss": torch.tensor(2.0), "det/loss": torch.tensor(1.0)})
    tensor(2.)
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping, Sequence

import torch
from torch import nn

from torchbricks.errors import BrickError, did_you_mean

__all__ = [
    "BALANCERS",
    "DynamicWeightAverage",
    "FixedWeights",
    "LossBalancer",
    "PCGrad",
    "UncertaintyWeighting",
    "create_loss_balancer",
]


class LossBalancer(nn.Module):
    """Combines named losses into one total. Subclasses set the weights; the base sums them.

    Attributes:
        uses_gradients: The strategy needs `backward(losses, shared_parameters)` instead of `total.backward()`.
    """

    uses_gradients = False

    def __init__(self, loss_names: Sequence[str] = ()) -> None:
        super().__init__()
        self.loss_names = list(loss_names)

    def weight(self, name: str) -> torch.Tensor | float:
        """The weight of the loss `name` in the total."""
        return 1.0

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        """The weighted total of the losses present."""
        if not losses:
            raise BrickError("No loss to balance: the call produced no loss (did a batch lack every head's targets?).")
        total: torch.Tensor = sum(self.weight(name) * loss for name, loss in losses.items())  # type: ignore[assignment]
        return total

    def epoch_end(self, mean_losses: Mapping[str, float]) -> None:
        """Called with each loss's mean over the epoch that ended (strategies that adapt per epoch use it)."""

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        shared_parameters: Sequence[torch.Tensor] | None = None,
        average: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """The backward pass of a strategy that `uses_gradients` (`average`: the mean of a tensor over the processes of
        a data-parallel run); the others weigh the total, which is backpropagated."""
        raise BrickError(f"{type(self).__name__} combines losses, not gradients: call backward() on its total.")

    def logged_values(self) -> dict[str, float]:
        """Name -> value to log per epoch: each loss's weight."""
        names = zip(self.logged_value_names(), self.loss_names, strict=True)
        return {key: float(torch.as_tensor(self.weight(name)).detach()) for key, name in names}

    def logged_value_names(self) -> list[str]:
        """The names `logged_values` returns, known before training and without its side effects."""
        return [f"weights/{name}" for name in self.loss_names]

    def _check_names(self, losses: Mapping[str, torch.Tensor]) -> None:
        unknown = [name for name in losses if name not in self.loss_names]
        if unknown:
            raise BrickError(
                f"{type(self).__name__} balances {self.loss_names}, got the unknown loss {unknown[0]!r}."
                f"{did_you_mean(unknown[0], self.loss_names)}"
            )


class FixedWeights(LossBalancer):
    """A constant weight per loss; losses without one weigh `default`.

    Args:
        weights: Loss name -> weight (non-negative).
        default: The weight of every other loss.
    """

    def __init__(self, weights: Mapping[str, float] | None = None, default: float = 1.0) -> None:
        weights = dict(weights or {})
        for name, value in weights.items():
            if not isinstance(value, (int, float)) or value < 0 or not math.isfinite(value):
                raise BrickError(f"The weight of loss {name!r} must be a finite number >= 0, got {value!r}.")
        super().__init__(list(weights))
        self.weights = weights
        self.default = default

    def weight(self, name: str) -> float:
        return self.weights.get(name, self.default)


class UncertaintyWeighting(LossBalancer):
    """Learned homoscedastic-uncertainty weights (Kendall et al. 2018): `sum(exp(-s_i) * L_i + s_i)`.

    A loss that is not finite (NaN: a head with nothing to score in the batch) is left out of the sum, as a loss the
    batch did not produce is, so its `s_i` keeps its value; its own logged value stays NaN.

    Args:
        loss_names: The losses balanced; each gets a log-variance `s_i`, starting at 0 (weight 1).
    """

    def __init__(self, loss_names: Sequence[str]) -> None:
        if not loss_names:
            raise BrickError("UncertaintyWeighting needs the names of the losses it balances.")
        super().__init__(loss_names)
        self.log_variances = nn.Parameter(torch.zeros(len(self.loss_names)))
        self._index = {name: index for index, name in enumerate(self.loss_names)}

    def weight(self, name: str) -> torch.Tensor:
        return torch.exp(-self.log_variances[self._index[name]])

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self._check_names(losses)
        if not losses:
            return super().forward(losses)
        terms = []
        for name, loss in losses.items():
            # A loss over nothing (a segmentation head given a batch whose every mask pixel is ignored: 0 / 0) is NaN:
            # its term adds nothing and leaves `s` as it is. Without both `where`s, `s` took a NaN gradient, the
            # optimizer made it NaN, and every later step's total and gradients were NaN: the run was lost.
            finite = torch.isfinite(loss)
            log_variance = self.log_variances[self._index[name]]
            term = torch.exp(-log_variance) * torch.where(finite, loss, torch.zeros_like(loss)) + log_variance
            terms.append(torch.where(finite, term, torch.zeros_like(term)))
        return torch.stack(terms).sum()


class DynamicWeightAverage(LossBalancer):
    """Dynamic weight average (Liu et al. 2019): weights from each loss's rate of descent over the last two epochs.

    The weights are 1 for the first two epochs; then `w_i = K * exp(r_i / T) / sum_j exp(r_j / T)` with
    `r_i = L_i(t-1) / L_i(t-2)` from the epoch means given to `epoch_end`, K the number of losses.

    Args:
        loss_names: The losses balanced.
        temperature: T; larger values flatten the weights towards 1.
    """

    weights: torch.Tensor
    history: torch.Tensor

    def __init__(self, loss_names: Sequence[str], temperature: float = 2.0) -> None:
        if not loss_names:
            raise BrickError("DynamicWeightAverage needs the names of the losses it balances.")
        if temperature <= 0:
            raise BrickError(f"DynamicWeightAverage's temperature must be > 0, got {temperature!r}.")
        super().__init__(loss_names)
        self.temperature = temperature
        self.register_buffer("weights", torch.ones(len(self.loss_names)))
        self.register_buffer("history", torch.full((2, len(self.loss_names)), float("nan")))
        self._index = {name: index for index, name in enumerate(self.loss_names)}

    def weight(self, name: str) -> torch.Tensor:
        return self.weights[self._index[name]]

    def forward(self, losses: Mapping[str, torch.Tensor]) -> torch.Tensor:
        self._check_names(losses)
        return super().forward(losses)

    def epoch_end(self, mean_losses: Mapping[str, float]) -> None:
        latest = torch.tensor([float(mean_losses.get(name, float("nan"))) for name in self.loss_names])
        self.history[0] = self.history[1]
        self.history[1] = latest.to(self.history)
        before, last = self.history[0], self.history[1]
        known = torch.isfinite(before) & torch.isfinite(last) & (before > 0)
        if not bool(known.all()):
            return  # a loss without two epochs of history keeps the current weights
        rates = last / before
        self.weights.copy_(len(self.loss_names) * torch.softmax(rates / self.temperature, dim=0))


class PCGrad(LossBalancer):
    """Projecting conflicting gradients (Yu et al. 2020) on the shared parameters.

    `backward(losses, shared_parameters)` sets `.grad`: for the shared parameters the sum of each loss's gradient
    projected off every other loss's gradient it conflicts with (in a random order per step), for the others the
    plain gradient of the summed loss. `forward` gives the plain sum (for logging).

    Args:
        loss_names: The losses balanced (for logging).
        seed: Seed of the projection order.
    """

    uses_gradients = True

    def __init__(self, loss_names: Sequence[str] = (), seed: int = 0) -> None:
        super().__init__(loss_names)
        self._random = random.Random(seed)
        self._pairs = 0
        self._conflicts = 0

    def backward(
        self,
        losses: Mapping[str, torch.Tensor],
        shared_parameters: Sequence[torch.Tensor] | None = None,
        average: Callable[[torch.Tensor], torch.Tensor] | None = None,
    ) -> torch.Tensor:
        """Accumulates the surgically combined gradients into `.grad`; returns the plain sum of the losses.

        Args:
            losses: Loss name -> loss of this step.
            shared_parameters: The parameters the surgery acts on; None: those more than one loss depends on (found
                in the autograd graph).
            average: Under data parallelism (DDP), the mean of a tensor over the processes (an all-reduce), which
                every process calls at the same points. Each loss's gradient is then averaged before the surgery, so
                every process projects the gradients of the whole step's batch, as one process given that batch
                does (the surgery is not linear: projecting each process's own gradients and averaging the results
                differs). The other parameters' gradients come from one `backward()` of the total, whose gradient
                hooks DDP's reducer counts on to average them, and the shared parameters' gradient from that pass
                is replaced by the surgery's.
        """
        if not losses:
            raise BrickError("PCGrad: no loss to balance: the call produced no loss.")
        if average is not None:
            self._check_same_losses_on_every_process(losses, average)
        if shared_parameters is None:
            shared_parameters = _shared_leaves(list(losses.values()))
        shared = [parameter for parameter in shared_parameters if parameter.requires_grad]
        total: torch.Tensor = sum(losses.values())  # type: ignore[assignment]
        if not shared:  # no parameter more than one loss depends on (one loss, or heads apart): nothing to project
            total.backward()
            return total.detach()
        gradients = _loss_gradients(losses, shared)
        combined = self._surgery(gradients if average is None else average(gradients))
        sizes = [parameter.numel() for parameter in shared]
        pieces = [piece.view_as(parameter) for piece, parameter in zip(combined.split(sizes), shared, strict=True)]
        if average is None:
            shared_ids = {id(parameter) for parameter in shared}
            # The other parameters (the heads) get the plain gradient of the summed loss.
            rest = [p for p in _parameters_of(total) if id(p) not in shared_ids]
            if rest:
                torch.autograd.backward(total, inputs=rest)
            for parameter, piece in zip(shared, pieces, strict=True):
                parameter.grad = piece.clone() if parameter.grad is None else parameter.grad + piece
            return total.detach()
        before = [None if parameter.grad is None else parameter.grad.detach().clone() for parameter in shared]
        total.backward()
        with torch.no_grad():
            for parameter, earlier, piece in zip(shared, before, pieces, strict=True):
                value = piece if earlier is None else earlier + piece
                if parameter.grad is None:
                    parameter.grad = value.clone()
                else:  # in place: DDP may keep the gradient as a view of its bucket
                    parameter.grad.copy_(value)
        return total.detach()

    def _surgery(self, gradients: torch.Tensor) -> torch.Tensor:
        """The sum of each loss's gradient (a row of `gradients`) projected off the others it conflicts with."""
        projected = []
        for index, gradient in enumerate(gradients):
            others = [other for position, other in enumerate(gradients) if position != index]
            self._random.shuffle(others)
            result = gradient.clone()
            for other in others:
                dot = torch.dot(result, other)
                self._pairs += 1
                if dot < 0:
                    self._conflicts += 1
                    result -= dot / other.dot(other).clamp_min(1e-12) * other
            projected.append(result)
        return torch.stack(projected).sum(dim=0)

    def _check_same_losses_on_every_process(
        self, losses: Mapping[str, torch.Tensor], average: Callable[[torch.Tensor], torch.Tensor]
    ) -> None:
        """Raises on every process alike when the processes' steps produced different losses: their gradients could
        not be averaged loss by loss (the collective would pair different losses, or wait forever)."""
        if not self.loss_names:
            raise BrickError(
                "PCGrad under several processes needs the names of the losses it balances (PCGrad(loss_names=[...]), "
                f"here {sorted(losses)}), to average each loss's gradient over the processes."
            )
        self._check_names(losses)
        device = next(iter(losses.values())).device
        present = average(torch.tensor([float(name in losses) for name in self.loss_names], device=device))
        uneven = [name for name, share in zip(self.loss_names, present.tolist(), strict=True) if share not in (0.0, 1.0)]
        if uneven:
            raise BrickError(
                f"PCGrad: the loss {uneven[0]!r} was computed on some processes and not on others in this step "
                f"(on a share of {present[self.loss_names.index(uneven[0])].item():.2f} of them); the processes must "
                "train the same heads at every step (a data schedule that is the same on every process) for their "
                "gradients to be averaged loss by loss."
            )

    def logged_values(self) -> dict[str, float]:
        """The fraction of gradient pairs that conflicted since the last call (then reset)."""
        fraction = self._conflicts / self._pairs if self._pairs else 0.0
        self._pairs = self._conflicts = 0
        return {"pcgrad/conflicting_fraction": fraction}

    def logged_value_names(self) -> list[str]:
        """The names `logged_values` returns, known before training and without its side effects."""
        return ["pcgrad/conflicting_fraction"]


def _loss_gradients(losses: Mapping[str, torch.Tensor], shared: Sequence[torch.Tensor]) -> torch.Tensor:
    """One row per loss: its gradient on `shared`, flattened (zero where it does not depend on a parameter)."""
    rows = []
    for loss in losses.values():
        grads = torch.autograd.grad(loss, shared, retain_graph=True, allow_unused=True)
        flat = [(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, shared, strict=True)]
        rows.append(torch.cat(flat))
    return torch.stack(rows)


def _shared_leaves(losses: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """The leaf tensors requiring gradients that more than one of `losses` depends on, in a stable order."""
    seen: dict[int, tuple[torch.Tensor, int]] = {}
    for loss in losses:
        for leaf in _parameters_of(loss):
            known = seen.get(id(leaf))
            seen[id(leaf)] = (leaf, (known[1] if known else 0) + 1)
    return [leaf for leaf, count in seen.values() if count > 1]


def _parameters_of(tensor: torch.Tensor) -> list[torch.Tensor]:
    """The leaf tensors requiring gradients that `tensor` depends on (walking its autograd graph)."""
    leaves: dict[int, torch.Tensor] = {}
    seen: set[int] = set()
    stack = [tensor.grad_fn]
    while stack:
        function = stack.pop()
        if function is None or id(function) in seen:
            continue
        seen.add(id(function))
        variable = getattr(function, "variable", None)
        if variable is not None and variable.requires_grad:
            leaves[id(variable)] = variable
        stack.extend(next_function for next_function, _ in function.next_functions)
    return list(leaves.values())


BALANCERS = {
    "fixed": FixedWeights,
    "uncertainty": UncertaintyWeighting,
    "dwa": DynamicWeightAverage,
    "pcgrad": PCGrad,
}
"""Strategy name (as configs spell it) -> class."""


def create_loss_balancer(strategy: str, loss_names: Sequence[str], weights: Mapping[str, float] | None = None) -> LossBalancer:
    """The balancer `strategy` (a key of `BALANCERS`) for `loss_names`; `weights` only for `fixed`.

    Raises:
        BrickError: An unknown strategy (with the close match), or weights for a learned strategy.
    """
    if strategy not in BALANCERS:
        raise BrickError(f"Unknown loss balancing {strategy!r}. Available: {list(BALANCERS)}.{did_you_mean(strategy, BALANCERS)}")
    if strategy == "fixed":
        return FixedWeights(weights)
    if weights:
        raise BrickError(
            f"Loss balancing {strategy!r} sets its own weights; fixed weights {dict(weights)} apply only to 'fixed'."
        )
    return BALANCERS[strategy](loss_names)
