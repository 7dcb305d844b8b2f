"""Timing, memory and accuracy measurements of one method on one batch.

Times are wall-clock medians over repeated runs after warm-up runs, with
``torch.cuda.synchronize`` around every timed section on CUDA. Every run
starts from fresh leaf copies of ``y`` and ``D``. The forward includes
building the autograd graph. The backward is ``loss.backward()`` for
``loss = sum(weights * z)`` with fixed random weights.

Memory, measured on one untimed run (the last warm-up run, or an extra run):

- ``saved_bytes``: bytes of the distinct tensor storages that autograd saves
  for the backward during the forward (``torch.autograd.graph.saved_tensors_hooks``),
  inputs included. Data that a custom ``autograd.Function`` keeps as Python
  attributes of its context (cvxpylayers keeps diffcp's derivative that way)
  is not seen.
- ``cuda_peak_bytes`` (CUDA only): ``torch.cuda.max_memory_allocated`` during
  forward and backward, minus the memory allocated before.
- ``host_peak_bytes``: peak of the Python allocations traced by
  ``tracemalloc`` during forward and backward. NumPy arrays are traced;
  torch's CPU tensors and the conic solvers' own C allocations are not.
"""

from __future__ import annotations

import statistics
import time
import tracemalloc
from dataclasses import dataclass, field

import torch

from .methods import Batch, Method

__all__ = ["Timing", "run_timed", "support_scores"]


@dataclass
class Timing:
    """Measurements of one method on one batch.

    Attributes:
        forward_times, backward_times: seconds of every timed run.
        z: the codes of the last run, detached.
        grad_y, grad_D: the gradients of the last run, or None.
        extra: what the method reported (``backend_gap``).
        saved_bytes, cuda_peak_bytes, host_peak_bytes: see the module docstring.
        stopped_early: the time budget ended the repeats before ``repeats`` runs.
    """

    forward_times: list = field(default_factory=list)
    backward_times: list = field(default_factory=list)
    z: torch.Tensor | None = None
    grad_y: torch.Tensor | None = None
    grad_D: torch.Tensor | None = None
    extra: dict = field(default_factory=dict)
    saved_bytes: int | None = None
    cuda_peak_bytes: int | None = None
    host_peak_bytes: int | None = None
    stopped_early: bool = False

    @property
    def forward_median(self):
        return statistics.median(self.forward_times) if self.forward_times else None

    @property
    def backward_median(self):
        return statistics.median(self.backward_times) if self.backward_times else None


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _leaves(inst, method: Method) -> Batch:
    y = inst.y.detach().clone().requires_grad_(method.differentiable)
    D = inst.D.detach().clone().requires_grad_(method.differentiable and method.grad_D)
    return Batch(y=y, D=D, problem=inst.problem, penalties=inst.penalties)


def _one_run(inst, method: Method, weights: torch.Tensor, timing: Timing | None):
    """Run forward (and backward for differentiable methods); record times if ``timing``."""
    batch = _leaves(inst, method)
    device = batch.y.device
    _synchronize(device)
    start = time.perf_counter()
    if method.differentiable:
        z, extra = method.forward(batch)
    else:
        with torch.no_grad():
            z, extra = method.forward(batch)
    _synchronize(device)
    middle = time.perf_counter()
    if method.differentiable:
        (weights.to(z.dtype) * z).sum().backward()
        _synchronize(device)
    end = time.perf_counter()
    if timing is not None:
        timing.forward_times.append(middle - start)
        if method.differentiable:
            timing.backward_times.append(end - middle)
    return batch, z, extra


def _measure_memory(inst, method: Method, weights: torch.Tensor, timing: Timing) -> None:
    storages: dict = {}

    def pack(tensor):
        storage = tensor.untyped_storage()
        storages[(tensor.device, storage.data_ptr())] = storage.nbytes()
        return tensor

    def unpack(tensor):
        return tensor

    device = inst.y.device
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
        base = torch.cuda.memory_allocated(device)
    tracing = tracemalloc.is_tracing()
    if not tracing:
        tracemalloc.start()
    tracemalloc.reset_peak()
    host_base = tracemalloc.get_traced_memory()[0]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, unpack):
            if method.differentiable:
                batch = _leaves(inst, method)
                z, _ = method.forward(batch)
            else:
                with torch.no_grad():
                    z, _ = method.forward(_leaves(inst, method))
        if method.differentiable:
            (weights.to(z.dtype) * z).sum().backward()
        timing.host_peak_bytes = tracemalloc.get_traced_memory()[1] - host_base
    finally:
        if not tracing:
            tracemalloc.stop()
    timing.saved_bytes = sum(storages.values())
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        timing.cuda_peak_bytes = torch.cuda.max_memory_allocated(device) - base


def run_timed(inst, method: Method, weights: torch.Tensor, *, warmup: int, repeats: int,
              budget: float | None = None) -> Timing:
    """Warm up, measure memory once, then time ``repeats`` runs (fewer if ``budget`` runs out).

    Args:
        inst: the instance (already cut to the batch to run).
        method: the method, after ``setup`` and ``prepare``.
        weights: the loss weights (B, k).
        warmup: untimed runs first; the last one measures memory.
        repeats: timed runs, at least 1.
        budget: seconds for all runs of this method; once spent, no further
            repeat starts (the first timed run always completes).
    """
    timing = Timing()
    start = time.perf_counter()
    for index in range(warmup):
        if index == warmup - 1:
            _measure_memory(inst, method, weights, timing)
        else:
            _one_run(inst, method, weights, None)
    if warmup == 0:
        _measure_memory(inst, method, weights, timing)

    for index in range(repeats):
        if index > 0 and budget is not None and time.perf_counter() - start > budget:
            timing.stopped_early = True
            break
        batch, z, extra = _one_run(inst, method, weights, timing)
        timing.z = z.detach()
        timing.extra = extra
        timing.grad_y = batch.y.grad
        timing.grad_D = batch.D.grad
    return timing


def support_scores(z: torch.Tensor, z_true: torch.Tensor, threshold: float) -> tuple[float, float]:
    """Return (precision, recall) of the estimated supports, pooled over the batch.

    An entry counts as nonzero above ``threshold`` times its sample's largest
    magnitude. Precision is 1 when nothing is estimated, recall 1 when the
    true codes are all zero.
    """
    magnitude = z.abs()
    estimated = magnitude > threshold * magnitude.amax(-1, keepdim=True)
    estimated = estimated & (magnitude > 0)
    true = z_true != 0
    hits = float((estimated & true).sum())
    n_estimated = float(estimated.sum())
    n_true = float(true.sum())
    precision = hits / n_estimated if n_estimated else 1.0
    recall = hits / n_true if n_true else 1.0
    return precision, recall
