"""The unrolled backend: a fixed number of ISTA or FISTA steps, differentiated by autograd.

Autograd records every step, so memory grows linearly with the number of
steps and the gradient is that of the truncated iteration, not of the
solution. It exists to compare with the implicit backend on the same problem.
"""

from __future__ import annotations

import torch

from ..coding.base import batched_matvec, batched_rmatvec
from ..info import SolveInfo
from .base import Backend, register_backend

__all__ = ["DEFAULT_STEPS", "UnrolledBackend"]

# Steps when max_iter is not given.
DEFAULT_STEPS = 100

# The gap below which a sample counts as converged in ``info`` when tol is None.
_DEFAULT_TOL = 1e-6


@register_backend
class UnrolledBackend(Backend):
    """Run ``max_iter`` proximal-gradient steps with autograd through each one.

    Options: ``algorithm`` = ``"fista"`` (default) or ``"ista"``.

    The step is ``1 / L`` with ``L = ||D||_2^2`` per sample, computed without
    gradient (a fixed step, as in the unrolled-network literature). The
    soft threshold is ``sign(v) max(|v| - t, 0)``, whose derivative at
    ``|v| = t`` is 0, the convention of the implicit backend; block
    shrinkage is NaN-free at a zero group. ``info.converged`` reports
    whether the relative duality gap reached ``tol`` (default 1e-6); a
    truncated iteration is not warned about, since truncation is the point.

    Shape:
        as ``sparse_code``; ``init`` (B, k) replaces the zero start.
    """

    name = "unrolled"
    required = ("prox", "duality_gap_batched")

    def solve(self, problem, batch, *, tol, max_iter, init, algorithm="fista", **options):
        if options:
            raise TypeError(
                f"unknown options for the unrolled backend: {', '.join(sorted(options))}; "
                "it accepts algorithm ('ista' or 'fista')."
            )
        if algorithm not in ("ista", "fista"):
            raise ValueError(f"algorithm must be 'ista' or 'fista'; got {algorithm!r}.")
        steps = DEFAULT_STEPS if max_iter is None else int(max_iter)
        if steps < 1:
            raise ValueError(f"max_iter must be >= 1 for the unrolled backend; got {steps}.")

        y, D, params = batch.y, batch.D, batch.params
        with torch.no_grad():
            lipschitz = torch.linalg.matrix_norm(D.detach(), ord=2) ** 2
        lipschitz = lipschitz.expand(batch.B) if D.dim() == 2 else lipschitz
        step = (1.0 / lipschitz.clamp(min=torch.finfo(y.dtype).tiny)).unsqueeze(-1)

        z = y.new_zeros(batch.B, batch.k) if init is None else init.to(y.dtype)
        # FISTA as in Beck and Teboulle (2009): t_1 = 1, the first step is
        # taken at the start point, and x_k + ((t_k - 1) / t_{k+1}) (x_k - x_{k-1})
        # is the next point. ISTA takes every step at the last iterate.
        point, momentum = z, 1.0
        for _ in range(steps):
            gradient = batched_rmatvec(D, batched_matvec(D, point) - y)
            z_next = problem.prox(point - step * gradient, step, params)
            if algorithm == "fista":
                next_momentum = (1 + (1 + 4 * momentum**2) ** 0.5) / 2
                point = z_next + ((momentum - 1) / next_momentum) * (z_next - z)
                momentum = next_momentum
            else:
                point = z_next
            z = z_next

        with torch.no_grad():
            detached = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in params.items()}
            gap = problem.duality_gap_batched(z.detach(), y.detach(), D.detach(), detached)
        threshold = _DEFAULT_TOL if tol is None else float(tol)
        info = SolveInfo(
            converged=gap <= threshold,
            gap=gap,
            iterations=torch.full((batch.B,), steps, dtype=torch.int64, device=y.device),
            support=z.detach() != 0,
            degenerate=torch.zeros(batch.B, dtype=torch.bool, device=y.device),
            backend=self.name,
        )
        return z, info
