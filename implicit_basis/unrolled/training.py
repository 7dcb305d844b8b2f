"""Training of the learned unrolled networks: end-to-end or layer-wise with Adam.

Both schedules are sequences of stages with a fixed number of steps each and
a fresh Adam optimizer per stage. The end-to-end schedule trains all
parameters on the output of the last layer at ``lr``, then fine-tunes them at
``lr * 0.2`` and ``lr * 0.02`` (``lr_decays``).

The layer-wise schedule follows the reference code of Chen, Liu, Wang and Yin
(2018) (``setup_sc_training`` in ``utils/train.py`` of
github.com/VITA-Group/LISTA-CPSS). For each layer t = 1..K, with the loss
taken on the output of layer t:

1. train the parameters of layer t alone at ``lr``;
2. train the parameters of layers 1..t at ``lr * 0.2``, then at ``lr * 0.02``
   (``lr_decays``);
3. multiply the learning rate of every layer trained so far by 0.3
   (``layer_decay``), so that layer j < t trains at
   ``lr * decay * 0.3^(t - j)`` in the stages of layer t.

This differs from that code in two ways. Each stage here runs a fixed number
of steps, while the reference code ends a stage once the validation NMSE has
not improved for 4000 steps (at most 200000 steps). And the 0.3 factor here
scales the learning rate of each parameter group, while the reference code
scales the gradients passed to Adam, which Adam's normalisation largely
cancels.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import torch
from tqdm.auto import tqdm

from .metrics import nmse_per_layer

__all__ = ["TrainHistory", "train"]

logger = logging.getLogger(__name__)

SCHEDULES = ("end_to_end", "layerwise")
LOSSES = ("mse", "nmse")


@dataclass
class TrainHistory:
    """Record of a training run.

    Attributes:
        loss: training loss of every optimizer step, in order.
        stage: label of the stage of every step (same length as ``loss``).
        nmse_db: NMSE in dB of every layer on the validation data after
            training, layer 1 first.
        seconds: wall-clock time of the training loop, validation excluded.
    """

    loss: list[float] = field(default_factory=list)
    stage: list[str] = field(default_factory=list)
    nmse_db: list[float] = field(default_factory=list)
    seconds: float = 0.0


@dataclass
class _Stage:
    label: str
    num_layers: int
    groups: list[dict]


def _trainable(params) -> list[torch.nn.Parameter]:
    return [p for p in params if p.requires_grad]


def _end_to_end_stages(model, lr: float, lr_decays: Sequence[float]) -> list[_Stage]:
    params = _trainable(model.parameters())
    stages = [_Stage("end_to_end", model.num_layers, [{"params": params, "lr": lr}])]
    for decay in lr_decays:
        label = f"end_to_end lr x{decay:g}"
        stages.append(_Stage(label, model.num_layers, [{"params": params, "lr": lr * decay}]))
    return stages


def _layerwise_stages(
    model, lr: float, lr_decays: Sequence[float], layer_decay: float
) -> list[_Stage]:
    stages = []
    for t in range(model.num_layers):
        new = _trainable(model.layer_parameters(t))
        if new:
            stages.append(_Stage(f"layer {t + 1}", t + 1, [{"params": new, "lr": lr}]))
        for decay in lr_decays:
            groups = []
            for j in range(t + 1):
                params = _trainable(model.layer_parameters(j))
                if params:
                    groups.append({"params": params, "lr": lr * decay * layer_decay ** (t - j)})
            if groups:
                stages.append(_Stage(f"layer {t + 1} lr x{decay:g}", t + 1, groups))
    return stages


def _loss(z_hat: torch.Tensor, z: torch.Tensor, kind: str) -> torch.Tensor:
    squared_error = (z_hat - z).pow(2)
    if kind == "mse":
        return squared_error.sum(dim=-1).mean()
    return squared_error.sum() / z.pow(2).sum().clamp_min(torch.finfo(z.dtype).tiny)


def _check_batch(batch, model) -> tuple[torch.Tensor, torch.Tensor]:
    if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
        raise TypeError(
            f"sampler() must return a pair (y, z) of tensors, got {type(batch).__name__}."
        )
    y, z = batch
    if not (isinstance(y, torch.Tensor) and isinstance(z, torch.Tensor)):
        raise TypeError(
            "sampler() must return a pair (y, z) of tensors, got "
            f"({type(y).__name__}, {type(z).__name__})."
        )
    if y.dim() != 2 or z.dim() != 2 or y.shape[0] != z.shape[0] or z.shape[1] != model.n:
        raise ValueError(
            f"sampler() must return y of shape (B, {model.m}) and z of shape (B, {model.n}), "
            f"got {tuple(y.shape)} and {tuple(z.shape)}."
        )
    return y, z


def _check_options(model, schedule, steps, lr, loss, lr_decays, layer_decay, log_every) -> None:
    for method in ("estimates", "layer_parameters"):
        if not callable(getattr(model, method, None)):
            raise TypeError(
                f"model must be an UnrolledNetwork (with estimates() and layer_parameters()), "
                f"got {type(model).__name__} without {method}()."
            )
    if schedule not in SCHEDULES:
        raise ValueError(f"schedule must be one of {SCHEDULES}, got {schedule!r}.")
    if loss not in LOSSES:
        raise ValueError(f"loss must be one of {LOSSES}, got {loss!r}.")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be an int >= 1, got {steps!r}.")
    if not (isinstance(lr, (int, float)) and math.isfinite(lr) and lr > 0):
        raise ValueError(f"lr must be a finite number > 0, got {lr!r}.")
    if not all(
        isinstance(d, (int, float)) and not isinstance(d, bool) and 0 < d <= 1 for d in lr_decays
    ):
        raise ValueError(f"lr_decays must be numbers in (0, 1], got {lr_decays!r}.")
    if not (isinstance(layer_decay, (int, float)) and 0 < layer_decay <= 1):
        raise ValueError(f"layer_decay must be a number in (0, 1], got {layer_decay!r}.")
    if isinstance(log_every, bool) or not isinstance(log_every, int) or log_every < 0:
        raise ValueError(
            f"log_every must be an int >= 0 (0 turns step logging off), got {log_every!r}."
        )


def train(
    model,
    sampler: Callable[[], tuple[torch.Tensor, torch.Tensor]],
    *,
    schedule: str = "end_to_end",
    steps: int = 1000,
    lr: float = 5e-4,
    loss: str = "mse",
    lr_decays: Sequence[float] = (0.2, 0.02),
    layer_decay: float = 0.3,
    validation: tuple[torch.Tensor, torch.Tensor] | None = None,
    progress: bool | None = None,
    log_every: int = 100,
) -> TrainHistory:
    """Train an unrolled network with Adam on samples ``(y, z)`` of signals and true codes.

    Args:
        model: an :class:`~implicit_basis.unrolled.base.UnrolledNetwork`. It is
            trained in place.
        sampler: called with no arguments, returns a fresh batch ``(y, z)``,
            e.g. :func:`implicit_basis.synthetic.chen2018_sampler`.
        schedule: ``"end_to_end"`` trains all parameters on the output of the
            last layer, at ``lr`` and then at ``lr * decay`` for each of
            ``lr_decays``. ``"layerwise"`` follows the schedule of Chen et al.
            (2018) described in the module docstring.
        steps: optimizer steps per stage. The end-to-end schedule has
            ``1 + len(lr_decays)`` stages, the layer-wise one
            ``K * (1 + len(lr_decays))``.
        lr: learning rate of Adam. The default 5e-4 is the initial rate in the
            code of Chen et al. (2018).
        loss: ``"mse"``, the squared error ``||z_hat - z||^2`` averaged over
            the batch, or ``"nmse"``, ``sum ||z_hat - z||^2 / sum ||z||^2`` over
            the batch.
        lr_decays: learning-rate factors of the fine-tuning stages, after the
            stage at ``lr`` (of each layer, in the layer-wise schedule). Pass
            ``()`` for a constant learning rate.
        layer_decay: factor applied to the learning rates of earlier layers
            each time the layer-wise schedule moves to the next layer.
        validation: a fixed batch ``(y, z)`` for the final NMSE per layer; one
            batch is drawn from ``sampler`` when None.
        progress: show a tqdm progress bar; None shows it only when stderr is
            a terminal.
        log_every: log the loss at DEBUG level every this many steps of a
            stage; 0 turns it off.

    Returns:
        The loss of every step and the final NMSE in dB of every layer.

    Raises:
        TypeError: ``model`` is not an unrolled network, or ``sampler``
            returns something other than a pair of tensors.
        ValueError: an invalid option, or batches of the wrong shape.
        FloatingPointError: the loss became NaN or inf; lower ``lr``.
    """
    _check_options(model, schedule, steps, lr, loss, lr_decays, layer_decay, log_every)
    if schedule == "end_to_end":
        stages = _end_to_end_stages(model, lr, lr_decays)
    else:
        stages = _layerwise_stages(model, lr, lr_decays, layer_decay)
    if not any(group["params"] for stage in stages for group in stage.groups):
        raise ValueError(f"{type(model).__name__} has no trainable parameters.")

    history = TrainHistory()
    all_params = list(model.parameters())
    trainable = [p.requires_grad for p in all_params]
    total = steps * len(stages)
    bar = tqdm(total=total, disable=None if progress is None else not progress, leave=False)
    start = time.perf_counter()
    try:
        for stage in stages:
            stage_params = {id(p) for group in stage.groups for p in group["params"]}
            # Freeze every other parameter, so that backward stops at the
            # earliest layer being trained.
            for p in all_params:
                p.requires_grad_(id(p) in stage_params)
            optimizer = torch.optim.Adam(stage.groups)
            logger.info(
                "stage %s: %d steps, loss on layer %d, %d tensors trained",
                stage.label, steps, stage.num_layers, len(stage_params),
            )
            bar.set_description(stage.label)
            for step in range(steps):
                y, z = _check_batch(sampler(), model)
                optimizer.zero_grad(set_to_none=True)
                z_hat = model.estimates(y, stage.num_layers)[-1]
                value = _loss(z_hat, z, loss)
                value.backward()
                optimizer.step()

                value = float(value.detach())
                if not math.isfinite(value):
                    raise FloatingPointError(
                        f"training loss became {value} at step {step} of stage "
                        f"'{stage.label}'; lower lr (now {lr:g})."
                    )
                history.loss.append(value)
                history.stage.append(stage.label)
                if log_every and step % log_every == 0:
                    logger.debug("stage %s step %d: loss %.6g", stage.label, step, value)
                bar.update(1)
    finally:
        for p, flag in zip(all_params, trainable):
            p.requires_grad_(flag)
        bar.close()
    history.seconds = time.perf_counter() - start

    y_val, z_val = _check_batch(sampler() if validation is None else validation, model)
    history.nmse_db = nmse_per_layer(model, y_val, z_val)
    logger.info(
        "trained %s (%s) in %.1f s; NMSE per layer (dB): %s",
        type(model).__name__, schedule, history.seconds,
        ", ".join(f"{v:.1f}" for v in history.nmse_db),
    )
    return history
