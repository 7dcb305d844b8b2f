r"""Accelerated proximal gradient (FISTA) with adaptive restart, batched over samples.

Minimises ``1/2 ||D z - y||^2 + h(z)`` per sample with the proximal operator
of ``h`` (FISTA). The momentum restarts per sample when the step and the
momentum disagree, ``(x - z_new)^T (z_new - z) > 0``: the gradient restart of
O'Donoghue and Candes, "Adaptive restart for accelerated gradient schemes"
(Found. Comput. Math., 2015), which recovers fast linear convergence once
the iterates reach a strongly convex piece (a fixed support).

Each iteration costs two products with ``D`` (``D z`` and ``D^T r``); the
residual of the extrapolated point follows from linearity, ``D x = D z_new +
beta (D z_new - D z)``. Nothing is copied to the host inside ``run``; the
caller checks convergence between calls.
"""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

from .operator import DictionaryOperator

__all__ = ["APGState", "run_apg", "start_apg"]

# Relative slack of the sufficient-decrease test, so that rounding near a
# fixed point does not halve the step.
_DECREASE_RTOL = 1e-12


@dataclass
class APGState:
    """Iterates of the accelerated proximal gradient method, per sample.

    Attributes:
        z: current iterate (B, k), with exact zeros from the proximal step.
        x: extrapolated point (B, k).
        Dz, Dx: ``D z`` and ``D x`` (B, m).
        t: momentum sequence (B, 1).
        step: step size ``1 / L`` (B, 1).
        w, Dw, corr_w: the last point where the gradient was taken, its
            product and ``D^T (y - D w)``: the dual point of the gap check.
    """

    z: torch.Tensor
    x: torch.Tensor
    Dz: torch.Tensor
    Dx: torch.Tensor
    t: torch.Tensor
    step: torch.Tensor
    w: torch.Tensor
    Dw: torch.Tensor
    corr_w: torch.Tensor

    def rows(self, index: torch.Tensor) -> "APGState":
        return APGState(**{f.name: getattr(self, f.name).index_select(0, index) for f in fields(self)})

    def cat(self, other: "APGState") -> "APGState":
        """Return the state of both batches, this one first."""
        return APGState(**{f.name: torch.cat([getattr(self, f.name), getattr(other, f.name)]) for f in fields(self)})

    def put(self, index: torch.Tensor, other: "APGState") -> None:
        """Overwrite the rows ``index`` with the rows of ``other``."""
        for f in fields(self):
            getattr(self, f.name)[index] = getattr(other, f.name)


def start_apg(z: torch.Tensor, y: torch.Tensor, op: DictionaryOperator, step: torch.Tensor) -> APGState:
    """Return the state of a fresh start (no momentum) at ``z``."""
    Dz = op.matvec(z)
    corr = op.rmatvec(y - Dz)
    return APGState(
        z=z, x=z.clone(), Dz=Dz, Dx=Dz.clone(), t=torch.ones_like(step), step=step,
        w=z.clone(), Dw=Dz.clone(), corr_w=corr,
    )


def run_apg(state: APGState, y: torch.Tensor, op: DictionaryOperator, penalty, n: int, backtrack: bool) -> APGState:
    """Run ``n`` iterations in place and return the state.

    With ``backtrack`` the step is halved for a sample whose step fails the
    sufficient-decrease test (the iteration is then discarded for it), which
    guards a step from an estimated Lipschitz constant.
    """
    z, x, Dz, Dx, t, step = state.z, state.x, state.Dz, state.Dx, state.t, state.step
    corr = state.corr_w
    for _ in range(n):
        r_x = y - Dx
        corr = op.rmatvec(r_x)
        w, Dw = x, Dx
        z_new = penalty.prox(torch.addcmul(x, step, corr), step)
        Dz_new = op.matvec(z_new)
        if backtrack:
            difference = z_new - x
            r_new = y - Dz_new
            f_x = 0.5 * (r_x * r_x).sum(-1, keepdim=True)
            f_new = 0.5 * (r_new * r_new).sum(-1, keepdim=True)
            bound = f_x - (corr * difference).sum(-1, keepdim=True)
            bound = bound + (difference * difference).sum(-1, keepdim=True) / (2 * step)
            failed = f_new > bound + _DECREASE_RTOL * f_x
            step = torch.where(failed, 0.5 * step, step)
            z_new = torch.where(failed, z, z_new)
            Dz_new = torch.where(failed, Dz, Dz_new)
        move = z_new - z
        # Restart where the step z_new - x and the move z_new - z point apart.
        restart = torch.linalg.vecdot(move, z_new - x).unsqueeze(-1) < 0
        if backtrack:
            restart = restart | failed
        t_new = 0.5 * (1 + torch.sqrt(1 + 4 * t * t))
        beta = torch.where(restart, torch.zeros_like(t), (t - 1) / t_new)
        t = torch.where(restart, torch.ones_like(t), t_new)
        x = torch.addcmul(z_new, beta, move)
        Dx = torch.addcmul(Dz_new, beta, Dz_new - Dz)
        z, Dz = z_new, Dz_new
    if n > 0:
        state.w, state.Dw, state.corr_w = w, Dw, corr
    state.z, state.x, state.Dz, state.Dx, state.t, state.step = z, x, Dz, Dx, t, step
    return state
