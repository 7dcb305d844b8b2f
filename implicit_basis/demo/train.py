"""Training a ``WindowCoder`` to predict held-out samples, and reconstructing the record with it."""

from __future__ import annotations

import logging
import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch

from ..errors import ConvergenceWarning
from .data import Windows, split_folds
from .model import WindowCoder

__all__ = ["TrainResult", "held_out_loss", "optimizer_for", "reconstruct_record", "train"]

logger = logging.getLogger(__name__)


@dataclass
class TrainResult:
    """The outcome of ``train``.

    Attributes:
        losses: the held-out loss of every step, before the step's update.
        seconds: wall time of the training loop.
        unconverged: solves during training that raised a ConvergenceWarning.
    """

    losses: list[float] = field(default_factory=list)
    seconds: float = 0.0
    unconverged: int = 0


def held_out_loss(model, windows: Windows, fit: torch.Tensor, held_out: torch.Tensor) -> torch.Tensor:
    """Fit the samples in ``fit`` and return the squared error at the samples in ``held_out``.

    Each pair (window, fold) is one signal of the batch. The loss is the mean
    over windows and folds of the mean squared error on the held-out
    samples (0 for a pair without one). With an equal number of windows per
    process, the average of the processes' losses is the loss of all
    windows, so ``DistributedDataParallel``, which averages gradients,
    trains as one process on the whole batch would.

    Args:
        model: a ``WindowCoder``, or the same wrapped in ``DistributedDataParallel``.
        fit, held_out: masks from ``split_folds``.

    Shape:
        fit, held_out: (B, F, M) bool, F folds; result: ().
    """
    B, F, M = fit.shape
    y = windows.y.unsqueeze(1).expand(B, F, M).reshape(B * F, M)
    t = windows.t.unsqueeze(1).expand(B, F, M).reshape(B * F, M)
    held_out = held_out.reshape(B * F, M)
    predicted = model(y, t, fit.reshape(B * F, M), t)
    squared = torch.where(held_out, (predicted - y) ** 2, torch.zeros_like(predicted))
    counts = held_out.sum(-1).clamp(min=1).to(predicted.dtype)
    return (squared.sum(-1) / counts).mean()


def optimizer_for(model: WindowCoder, lr: float, lr_log: float) -> torch.optim.Adam:
    """Return Adam with step ``lr`` for locations (centres, frequencies) and ``lr_log`` for log-scales.

    Widths and decay rates are stored through softplus, which for the small
    values used here behaves as a logarithm, and ``lam`` and the network's
    steps and thresholds through exp. A step of ``lr_log`` on those changes
    the value by about that fraction.
    """
    located, scaled = [], []
    for name, parameter in model.named_parameters():
        leaf = name.rsplit(".", 1)[-1]
        (located if leaf in ("centres", "freqs") else scaled).append(parameter)
    return torch.optim.Adam([{"params": located, "lr": lr}, {"params": scaled, "lr": lr_log}])


def train(
    model,
    windows: Windows,
    *,
    steps: int,
    lr: float,
    lr_log: float,
    folds: int,
    seed: int,
    progress: bool = True,
    description: str = "training",
    splitter: Callable[[], tuple[torch.Tensor, torch.Tensor]] | None = None,
) -> TrainResult:
    """Train ``model`` in place to predict held-out observed samples.

    Every step assigns the observed samples to ``folds`` folds at random,
    fits each window's code once per fold on the other folds, and takes one
    Adam step on ``held_out_loss``, the K-fold cross-validation error.

    Args:
        model: a ``WindowCoder`` or a ``DistributedDataParallel`` around one.
        windows: the windows to train on.
        steps: Adam steps.
        lr, lr_log: see ``optimizer_for``.
        folds: number of folds, >= 2; each step holds out 1 / folds of the samples.
        seed: seed of the folds, used when ``splitter`` is None.
        progress: show a tqdm progress bar.
        description: the progress bar's label.
        splitter: called once per step, returns the ``(fit, held_out)`` masks of
            the windows; by default ``split_folds(windows.observed, folds,
            generator)`` with a generator seeded by ``seed``. A distributed
            run draws the folds of all windows and keeps its own rows, as
            ``examples/train_ddp.py`` does.

    Returns:
        The losses, the wall time and the number of solves that did not converge.
    """
    from tqdm import tqdm

    module = getattr(model, "module", model)
    optimizer = optimizer_for(module, lr, lr_log)
    if splitter is None:
        generator = torch.Generator().manual_seed(seed)

        def splitter():
            return split_folds(windows.observed, folds, generator)

    result = TrainResult()
    bar = tqdm(range(steps), desc=description, leave=False, disable=not progress)
    start = time.perf_counter()
    for _ in bar:
        fit, held_out = splitter()
        optimizer.zero_grad()
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", ConvergenceWarning)
            loss = held_out_loss(model, windows, fit, held_out)
            loss.backward()
        result.unconverged += _report(caught)
        optimizer.step()
        result.losses.append(loss.item())
        bar.set_postfix(loss=f"{result.losses[-1]:.4f}", lam=f"{module.lam.item():.4f}")
    result.seconds = time.perf_counter() - start
    bar.close()
    return result


def reconstruct_record(model: WindowCoder, windows: Windows) -> tuple[np.ndarray, int]:
    """Fit every observed sample of each window and reconstruct the windows' own samples.

    Returns:
        The reconstruction of the record (windows concatenated), on the CPU,
        and the number of solves that raised a ConvergenceWarning.

    Shape:
        result: (B * W,).
    """
    with torch.no_grad(), warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ConvergenceWarning)
        predicted = model(windows.y, windows.t, windows.observed, windows.t_grid)
    return predicted.reshape(-1).cpu().numpy(), _report(caught)


def _report(caught: list) -> int:
    """Log the caught ConvergenceWarnings, re-issue the others, and count the former."""
    count = 0
    for record in caught:
        if issubclass(record.category, ConvergenceWarning):
            count += 1
            logger.info("%s", record.message)
        else:
            warnings.warn_explicit(record.message, record.category, record.filename, record.lineno)
    return count
