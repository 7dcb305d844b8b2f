"""ISTA and FISTA on the lasso, as pure differentiable functions of tensors.

Both solve

    minimize_z  1/2 ||D z - y||_2^2 + lam ||z||_1

with the fixed step ``1/L``, ``L = ||D||_2^2`` (the largest eigenvalue of
``D^T D``, the Lipschitz constant of the gradient of the smooth part). They run
a fixed number of iterations from ``z = 0`` without stopping tests or host
synchronisation inside the loop, use no in-place operations, and so let
autograd differentiate through every iteration with respect to ``y``, ``D``
and ``lam``. They are the baselines of the learned networks and the core of the
unrolled differentiation mode.
"""

from __future__ import annotations

import math

import torch

from ._checks import check_depth, check_dictionary, check_penalty, check_signal
from .shrinkage import soft_threshold

__all__ = ["fista", "ista", "lipschitz_constant"]


def lipschitz_constant(D: torch.Tensor) -> torch.Tensor:
    """Return ``L = ||D||_2^2``, the squared largest singular value of ``D``.

    Differentiable with respect to ``D`` (through the singular value
    decomposition) as long as the largest singular value is simple.

    Shape:
        D: (m, n) or (B, m, n); result: () or (B,).
    """
    return torch.linalg.matrix_norm(D, ord=2) ** 2


def _matvec(D: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    # D z per sample, for a shared (m, n) or per-sample (B, m, n) dictionary.
    if D.dim() == 2:
        return z @ D.mT
    return torch.bmm(D, z.unsqueeze(-1)).squeeze(-1)


def _rmatvec(D: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
    # D^T r per sample.
    if D.dim() == 2:
        return r @ D
    return torch.bmm(r.unsqueeze(1), D).squeeze(1)


def _prepare(y, D, lam, n_iter, lipschitz):
    D = check_dictionary(D, batched=True)
    y, single = check_signal(y, D)
    lam = check_penalty(lam, y)
    check_depth(n_iter, name="n_iter")
    if lipschitz is None:
        lipschitz = lipschitz_constant(D)
    elif not isinstance(lipschitz, torch.Tensor):
        if not (math.isfinite(lipschitz) and lipschitz > 0):
            raise ValueError(f"lipschitz must be finite and > 0, got {lipschitz}.")
        lipschitz = torch.as_tensor(lipschitz, dtype=y.dtype, device=y.device)
    if lipschitz.dim() == 1:
        lipschitz = lipschitz.unsqueeze(-1)
    return y, D, lam, lipschitz, single


def _finish(z: torch.Tensor, iterates: list[torch.Tensor], single: bool, return_all: bool):
    if return_all:
        return [x.squeeze(0) for x in iterates] if single else iterates
    return z.squeeze(0) if single else z


def ista(
    y: torch.Tensor,
    D: torch.Tensor,
    lam: float | torch.Tensor,
    n_iter: int,
    *,
    lipschitz: float | torch.Tensor | None = None,
    return_all: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    """Run ``n_iter`` ISTA iterations on the lasso from ``z = 0``.

    Each iteration is ``z <- soft(z - D^T (D z - y) / L, lam / L)`` with
    ``L = ||D||_2^2``. Differentiable with respect to ``y``, ``D`` and ``lam``.

    Args:
        y: signals.
        D: dictionary with atoms as columns, shared or one per sample.
        lam: penalty weight, a number or a tensor of shape () or (B,), >= 0.
        n_iter: number of iterations, >= 1.
        lipschitz: ``L`` if already known (a number, or a tensor of shape ()
            or (B,)); computed from ``D`` when None.
        return_all: return the list of all ``n_iter`` iterates instead of the
            last one.

    Shape:
        y: (B, m) or (m,); D: (m, n) or (B, m, n); result: (B, n), or (n,) for
        a single signal.

    Raises:
        TypeError: a non-tensor input or a dtype other than float32/float64,
            or ``y`` and ``D`` of different dtypes.
        ValueError: shapes that do not match, NaN/inf, a negative ``lam``,
            ``n_iter < 1``, or inputs on different devices.
    """
    y, D, lam, L, single = _prepare(y, D, lam, n_iter, lipschitz)
    z = y.new_zeros(y.shape[0], D.shape[-1])
    threshold = lam / L
    iterates = []
    for _ in range(n_iter):
        gradient = _rmatvec(D, _matvec(D, z) - y)
        z = soft_threshold(z - gradient / L, threshold)
        if return_all:
            iterates.append(z)
    return _finish(z, iterates, single, return_all)


def fista(
    y: torch.Tensor,
    D: torch.Tensor,
    lam: float | torch.Tensor,
    n_iter: int,
    *,
    lipschitz: float | torch.Tensor | None = None,
    return_all: bool = False,
) -> torch.Tensor | list[torch.Tensor]:
    """Run ``n_iter`` FISTA iterations on the lasso from ``z = 0``.

    Beck and Teboulle (2009), constant step ``1/L`` with ``L = ||D||_2^2``:

        z_k     = soft(v_k - D^T (D v_k - y) / L, lam / L)
        t_{k+1} = (1 + sqrt(1 + 4 t_k^2)) / 2,   t_1 = 1
        v_{k+1} = z_k + (t_k - 1) / t_{k+1} * (z_k - z_{k-1})

    with ``v_1 = z_0 = 0``. The momentum sequence is fixed in advance, so the
    iterates are differentiable with respect to ``y``, ``D`` and ``lam``. There
    is no restart.

    Args:
        y: signals.
        D: dictionary with atoms as columns, shared or one per sample.
        lam: penalty weight, a number or a tensor of shape () or (B,), >= 0.
        n_iter: number of iterations, >= 1.
        lipschitz: ``L`` if already known; computed from ``D`` when None.
        return_all: return the list of all ``n_iter`` iterates ``z_k``
            instead of the last one.

    Shape:
        y: (B, m) or (m,); D: (m, n) or (B, m, n); result: (B, n), or (n,) for
        a single signal.

    Raises:
        TypeError: as :func:`ista`.
        ValueError: as :func:`ista`.
    """
    y, D, lam, L, single = _prepare(y, D, lam, n_iter, lipschitz)
    z = y.new_zeros(y.shape[0], D.shape[-1])
    v = z
    t = 1.0
    threshold = lam / L
    iterates = []
    for _ in range(n_iter):
        gradient = _rmatvec(D, _matvec(D, v) - y)
        z_next = soft_threshold(v - gradient / L, threshold)
        t_next = (1.0 + math.sqrt(1.0 + 4.0 * t * t)) / 2.0
        v = z_next + ((t - 1.0) / t_next) * (z_next - z)
        z, t = z_next, t_next
        if return_all:
            iterates.append(z)
    return _finish(z, iterates, single, return_all)
