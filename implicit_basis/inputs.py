"""Checking and batching the inputs of a solve, before any solver runs."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from ._checks import check_finite, check_float_tensor, check_same_device, compute_dtype
from .coding.base import Problem

__all__ = ["Batch", "BatchDimensions", "prepare_codes", "prepare_inputs"]


class BatchDimensions:
    """Batch size ``B``, samples ``m``, atoms ``k`` and dictionary sharing, read from ``y`` and ``D``.

    A mixin for records with a ``y`` of shape (B, m) and a ``D`` of shape
    (m, k) shared or (B, m, k) per sample.
    """

    y: torch.Tensor
    D: torch.Tensor

    @property
    def B(self) -> int:
        return self.y.shape[0]

    @property
    def m(self) -> int:
        return self.y.shape[1]

    @property
    def k(self) -> int:
        return self.D.shape[-1]

    @property
    def shared_D(self) -> bool:
        return self.D.dim() == 2


@dataclass
class Batch(BatchDimensions):
    """Checked inputs of one solve, broadcast to a common batch.

    Attributes:
        y: signals in the compute dtype, (B, m).
        D: dictionary in the compute dtype, (m, k) shared or (B, m, k).
        params: the problem's parameters resolved by ``Problem.resolve``.
        batched: whether the caller passed any batched input; if not, B = 1
            and results lose their batch dimension.
        out_dtype: dtype of the results (the input's; half precision is
            computed in float32 and cast back).
    """

    y: torch.Tensor
    D: torch.Tensor
    params: dict
    batched: bool
    out_dtype: torch.dtype

    def unbatch(self, z: torch.Tensor) -> torch.Tensor:
        """Cast a (B, ...) result to the output dtype and drop the batch dim if unbatched."""
        z = z.to(self.out_dtype)
        return z if self.batched else z[0]

    def unbatch_scalar(self, value: torch.Tensor) -> torch.Tensor:
        value = value.to(self.out_dtype)
        return value if self.batched else value[0]


def prepare_inputs(y, D, problem: Problem) -> Batch:
    """Check ``y``, ``D`` and the problem's parameters, and broadcast them to one batch.

    Raises:
        TypeError: a non-tensor, integer or complex input, dtypes of ``y`` and
            ``D`` that differ, or a ``problem`` that is not a ``Problem``.
        ValueError: shapes that do not match or broadcast, NaN or inf entries,
            tensors on different devices, penalties out of their domain.

    Shape:
        y: (m,) or (B, m); D: (m, k) shared or (B, m, k) per sample.
    """
    if not isinstance(problem, Problem):
        raise TypeError(
            f"problem must be an implicit_basis problem (ib.Lasso, ib.GroupLasso, ...); "
            f"got {type(problem).__name__}."
        )
    y = check_float_tensor(y, "y")
    D = check_float_tensor(D, "D")
    if y.dim() not in (1, 2):
        raise ValueError(
            f"y must have shape (m,) or (B, m); got {tuple(y.shape)}. "
            "Flatten extra batch dimensions first, e.g. y.reshape(-1, y.shape[-1])."
        )
    if D.dim() not in (2, 3):
        raise ValueError(
            f"D must have shape (m, k) or (B, m, k) with atoms as columns; got {tuple(D.shape)}."
        )
    if y.dtype != D.dtype:
        raise TypeError(
            f"y is {y.dtype} but D is {D.dtype}; pass both in one dtype, "
            "e.g. D.to(y.dtype)."
        )
    check_same_device({"y": y, "D": D})
    m, k = D.shape[-2], D.shape[-1]
    if y.shape[-1] != m:
        raise ValueError(
            f"y has {y.shape[-1]} samples per signal but D has {m} rows; "
            f"D must be (m, k) with m = {y.shape[-1]} (atoms are columns: transpose D?)."
        )
    if k == 0 or m == 0:
        raise ValueError(f"D must have at least one row and one atom; got shape {tuple(D.shape)}.")

    B, batched = _common_batch_size(y, D, problem)
    check_finite(y, "y", batched=y.dim() == 2)
    check_finite(D, "D", batched=D.dim() == 3)

    out_dtype = y.dtype
    dtype = compute_dtype(y.dtype)
    y = y.to(dtype)
    D = D.to(dtype)
    if y.dim() == 1 or y.shape[0] != B:
        y = y.reshape(1, m).expand(B, m)
    params = problem.resolve(B, k, dtype, y.device)
    return Batch(y=y, D=D, params=params, batched=batched, out_dtype=out_dtype)


def _common_batch_size(y, D, problem: Problem) -> tuple[int, bool]:
    sizes = {}
    if y.dim() == 2:
        sizes["y"] = y.shape[0]
    if D.dim() == 3:
        sizes["D"] = D.shape[0]
    param_size = problem.batch_size()
    if param_size is not None:
        sizes["per-sample parameters"] = param_size
    distinct = set(sizes.values())
    if len(distinct) > 1:
        listing = ", ".join(f"{name}: {size}" for name, size in sizes.items())
        raise ValueError(
            f"batch sizes do not match ({listing}); give every batched input the same "
            "leading dimension, or pass one unbatched to share it."
        )
    if not sizes:
        return 1, False
    return distinct.pop(), True


def prepare_codes(z, batch: Batch, name: str = "z") -> torch.Tensor:
    """Check codes of shape (k,) or (B, k) against a batch; return (B, k).

    ``name`` is the argument the messages name (``"init"`` for a warm start).
    """
    z = check_float_tensor(z, name)
    k, B = batch.k, batch.B
    if z.dim() not in (1, 2) or z.shape[-1] != k:
        raise ValueError(
            f"{name} must have shape ({k},) or (B, {k}); got {tuple(z.shape)}. Give one "
            f"entry per atom of D."
        )
    if z.dim() == 2 and z.shape[0] != B:
        raise ValueError(
            f"{name} has batch size {z.shape[0]} but the signals have {B}; pass {name} of "
            f"shape ({k},) or ({B}, {k})."
        )
    check_same_device({"y": batch.y, name: z})
    check_finite(z, name, batched=z.dim() == 2)
    return z.to(batch.y.dtype).expand(B, k)
