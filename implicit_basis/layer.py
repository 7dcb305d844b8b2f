"""``sparse_code``, the standalone solve, and ``SparseCoding``, the layer."""

from __future__ import annotations

import torch
from torch import nn

from .coding.base import Problem
from .diff.base import get_backend
from .info import SolveInfo
from .inputs import prepare_inputs

__all__ = ["SparseCoding", "sparse_code"]


def sparse_code(
    y: torch.Tensor,
    D: torch.Tensor,
    problem: Problem,
    backend: str = "auto",
    tol: float | None = None,
    max_iter: int | None = None,
    return_info: bool = False,
    init: torch.Tensor | None = None,
    **options,
):
    """Solve a batch of coding problems; the result is differentiable.

    Gradients flow to ``y``, ``D`` and the problem's tensor parameters
    (``lam``, ``sigma``, ``l2``, ``l1_ratio``, weights).

    Args:
        y: signals.
        D: dictionary with atoms as columns, shared by the batch or per sample.
        problem: the coding problem (``ib.Lasso``, ``ib.GroupLasso``, ...).
        backend: ``"auto"``, ``"implicit"``, ``"cvxpylayers"`` or ``"unrolled"``.
        tol: stopping tolerance of the backend (a relative duality gap for the
            implicit backend, the conic solver's tolerance for cvxpylayers);
            None keeps the backend's default.
        max_iter: iteration limit of the backend; None keeps its default.
        return_info: also return a ``SolveInfo`` with per-sample outcomes.
        init: optional warm start (k,) or (B, k); it may change the time
            taken, never the answer.
        **options: backend-specific settings (see each backend).

    Returns:
        ``z``, or ``(z, info)`` when ``return_info`` is True. ``z`` has the
        dtype and device of ``y``.

    Raises:
        TypeError, ValueError: invalid inputs, before anything is solved.
        InfeasibleProblemError: basis pursuit (denoising) without a feasible
            point on some samples; the error names them and carries the
            others' results.
        SolverFailedError: the backend failed on some samples, likewise.

    Shape:
        y: (m,) or (B, m); D: (m, k) or (B, m, k); parameters () or (B,);
        z: (k,) if no input is batched, else (B, k).
    """
    batch = prepare_inputs(y, D, problem)
    solver = get_backend(backend, problem)
    if init is not None:
        from .inputs import prepare_codes

        init = prepare_codes(init, batch).detach()

    if batch.B == 0:
        z = batch.y.new_zeros(0, batch.k)
        if batch.y.requires_grad:
            z = z + 0 * batch.y.sum()
        info = SolveInfo.empty(batch.k, batch.y.dtype, batch.y.device, solver.name)
    else:
        z, info = solver.solve(problem, batch, tol=tol, max_iter=max_iter, init=init, **options)

    z = batch.unbatch(z)
    if not return_info:
        return z
    return z, info if batch.batched else info.unbatched()


class SparseCoding(nn.Module):
    """A sparse-coding layer over a parametric frame.

    ``forward(y, t, mask=None)`` evaluates the frame at the sample points
    ``t``, solves ``problem`` for each signal and returns the codes.
    Gradients reach ``y``, the frame's parameters and the problem's tensor
    parameters. ``reconstruct(z, t_new)`` evaluates the expansion
    ``frame(t_new) z`` anywhere, which interpolates the signal.

    Args:
        frame: an ``ib.frames`` frame (an ``nn.Module`` mapping points to atoms).
        problem: the coding problem.
        backend: see ``sparse_code``.
        **options: passed to ``sparse_code`` (``tol``, ``max_iter``, backend
            settings).

    Shape:
        y: (m,) or (B, m); t: (m,) or (B, m); mask: (m,) or (B, m) bool;
        z: (k,) or (B, k).
    """

    def __init__(self, frame: nn.Module, problem: Problem, backend: str = "auto", **options) -> None:
        super().__init__()
        if not isinstance(frame, nn.Module) or not callable(frame):
            raise TypeError(f"frame must be an ib.frames frame; got {type(frame).__name__}.")
        if not isinstance(problem, Problem):
            raise TypeError(
                f"problem must be an implicit_basis problem (ib.Lasso, ...); "
                f"got {type(problem).__name__}."
            )
        get_backend(backend, problem)
        self.frame = frame
        self.problem = problem
        self.backend = backend
        self.options = dict(options)

    def dictionary(self, t: torch.Tensor, mask: torch.Tensor | None = None) -> torch.Tensor:
        """Return the frame evaluated at ``t`` (with masked rows zero), (m, k) or (B, m, k)."""
        return self.frame(t, mask=mask)

    def forward(
        self,
        y: torch.Tensor,
        t: torch.Tensor,
        mask: torch.Tensor | None = None,
        return_info: bool = False,
    ):
        """Return the codes of ``y`` sampled at ``t``; masked samples are ignored."""
        D = self.dictionary(t, mask)
        if mask is not None:
            y = _masked_signal(y, mask)
        return sparse_code(
            y, D, self.problem, backend=self.backend, return_info=return_info, **self.options
        )

    def reconstruct(
        self,
        z: torch.Tensor,
        t_new: torch.Tensor,
        t: torch.Tensor | None = None,
        mask: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Evaluate the expansion of codes ``z`` at new points ``t_new``.

        A frame that normalises its atoms scales them by their norms on the
        fitting samples, so such a frame needs the fitting points ``t`` (and
        ``mask``) to reproduce that scaling at ``t_new``.

        Shape:
            z: (k,) or (B, k); t_new: (n,) or (B, n); result (n,) or (B, n).
        """
        norms = None
        if getattr(self.frame, "normalize", False):
            if t is None:
                raise ValueError(
                    "this frame normalises its atoms on the fitting samples, so reconstruct "
                    "needs them: call reconstruct(z, t_new, t=t, mask=mask)."
                )
            norms = self.frame.atom_norms(t, mask=mask)
        atoms = self.frame.evaluate(t_new, norms=norms)
        if atoms.dim() == 2:
            return z @ atoms.T
        if z.dim() == 1:
            z = z.expand(atoms.shape[0], -1)
        return torch.bmm(atoms, z.unsqueeze(-1)).squeeze(-1)

    def extra_repr(self) -> str:
        return f"backend={self.backend!r}"


def _masked_signal(y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Zero the masked samples of ``y`` (their dictionary rows are zero too)."""
    if not isinstance(mask, torch.Tensor) or mask.dtype != torch.bool:
        raise TypeError("mask must be a bool tensor (True = observed sample).")
    if mask.shape[-1] != y.shape[-1]:
        raise ValueError(
            f"mask has {mask.shape[-1]} samples per signal but y has {y.shape[-1]}."
        )
    return torch.where(mask, y, torch.zeros_like(y))
