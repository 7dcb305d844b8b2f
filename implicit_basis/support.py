"""Batched linear algebra restricted to per-sample supports.

Supports differ between samples, so they are stored padded: ``index`` (B, s)
holds each sample's atom indices (padding points at atom 0) and ``mask``
(B, s) marks the real entries. Padded rows and columns of a support system
are set to the identity, so they decouple and solve to zero.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

__all__ = [
    "Support",
    "conjugate_gradient",
    "gather_atoms",
    "gather_columns",
    "scatter_atoms",
    "scatter_columns",
    "solve_symmetric",
    "support_of",
]


@dataclass
class Support:
    """Padded per-sample index sets.

    Attributes:
        index: int64 (B, s), atom indices; padding entries are 0.
        mask: bool (B, s), True on real entries.
        k: number of atoms.
    """

    index: torch.Tensor
    mask: torch.Tensor
    k: int

    @property
    def size(self) -> int:
        return self.index.shape[1]

    @property
    def counts(self) -> torch.Tensor:
        return self.mask.sum(-1)


def support_of(active: torch.Tensor) -> Support:
    """Return the padded support of a bool (B, k) mask, ordered by atom index."""
    B, k = active.shape
    counts = active.sum(-1)
    s = int(counts.max()) if B else 0
    # A stable sort puts the active atoms first, in increasing index order.
    order = torch.sort((~active).to(torch.int8), dim=-1, stable=True).indices[:, :s]
    mask = torch.arange(s, device=active.device).unsqueeze(0) < counts.unsqueeze(-1)
    index = torch.where(mask, order, torch.zeros_like(order))
    return Support(index=index, mask=mask, k=k)


def gather_atoms(x: torch.Tensor, support: Support) -> torch.Tensor:
    """Return the entries of x (B, k) on the support, (B, s), zero on padding.

    Padding gathers atom 0, whose entry may be infinite (a forced-zero
    weight), so it is replaced rather than multiplied by zero: inf * 0 is NaN.
    """
    values = torch.gather(x, 1, support.index)
    return torch.where(support.mask, values, torch.zeros_like(values))


def scatter_atoms(values: torch.Tensor, support: Support) -> torch.Tensor:
    """Return the (B, k) tensor with ``values`` (B, s) at the support and 0 elsewhere."""
    out = values.new_zeros(values.shape[0], support.k)
    return out.scatter_add(1, support.index, values * support.mask.to(values.dtype))


def gather_columns(D: torch.Tensor, support: Support) -> torch.Tensor:
    """Return the support columns of D, (B, m, s), zero on padding.

    Shape:
        D: (m, k) shared or (B, m, k).
    """
    mask = support.mask.unsqueeze(1).to(D.dtype)
    if D.dim() == 2:
        columns = D[:, support.index]  # (m, B, s)
        return columns.permute(1, 0, 2) * mask
    m = D.shape[1]
    index = support.index.unsqueeze(1).expand(-1, m, -1)
    return torch.gather(D, 2, index) * mask


def scatter_columns(values: torch.Tensor, support: Support, shared: bool) -> torch.Tensor:
    """Place per-sample column values (B, m, s) at the support columns.

    Returns (m, k) summed over the batch when ``shared``, else (B, m, k).
    """
    B, m, s = values.shape
    values = values * support.mask.unsqueeze(1).to(values.dtype)
    if shared:
        out = values.new_zeros(m, support.k)
        flat = values.permute(1, 0, 2).reshape(m, B * s)
        return out.index_add(1, support.index.reshape(-1), flat)
    out = values.new_zeros(B, m, support.k)
    index = support.index.unsqueeze(1).expand(-1, m, -1)
    return out.scatter_add(2, index, values)


def solve_symmetric(G: torch.Tensor, rhs: torch.Tensor, mask: torch.Tensor):
    """Solve the padded symmetric positive semi-definite systems ``G x = rhs``.

    Padded rows and columns are replaced by the identity first. Systems that
    are singular to working precision (duplicate atoms, more atoms than
    samples) get the minimum-norm least-squares solution from an
    eigendecomposition instead of a Cholesky factor.

    Shape:
        G: (B, s, s); rhs: (B, s) or (B, s, r); mask: (B, s).

    Returns:
        (x, singular): x like rhs; singular bool (B,).
    """
    vector = rhs.dim() == 2
    if vector:
        rhs = rhs.unsqueeze(-1)
    B, s, _ = G.shape
    if s == 0:
        empty = torch.zeros(B, dtype=torch.bool, device=G.device)
        return (rhs.squeeze(-1) if vector else rhs), empty

    real = mask.to(G.dtype)
    pair = real.unsqueeze(-1) * real.unsqueeze(-2)
    eye = torch.eye(s, dtype=G.dtype, device=G.device)
    G = G * pair + eye * (1 - real).unsqueeze(-1)
    rhs = rhs * real.unsqueeze(-1)

    L, info = torch.linalg.cholesky_ex(G)
    diagonal = torch.diagonal(L, dim1=-2, dim2=-1).abs()
    # Cholesky succeeds on some numerically singular matrices: also reject a
    # pivot ratio whose square (a condition-number bound) exceeds 1 / (s eps).
    ratio = diagonal.amin(-1) / diagonal.amax(-1).clamp(min=torch.finfo(G.dtype).tiny)
    singular = (info != 0) | ~torch.isfinite(ratio) | (ratio**2 < s * torch.finfo(G.dtype).eps)
    x = torch.cholesky_solve(rhs, torch.where(singular.view(-1, 1, 1), eye.expand_as(L), L))

    if bool(singular.any()):
        rows = singular.nonzero().flatten()
        x = x.index_copy(0, rows, _pseudo_solve(G[rows], rhs[rows]))
    x = x * real.unsqueeze(-1)
    return (x.squeeze(-1) if vector else x), singular


def _pseudo_solve(G: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Return the minimum-norm least-squares solution of symmetric ``G x = rhs``."""
    values, vectors = torch.linalg.eigh(G)
    cutoff = G.shape[-1] * torch.finfo(G.dtype).eps * values.abs().amax(-1, keepdim=True)
    inverse = torch.where(values.abs() > cutoff, 1 / values, torch.zeros_like(values))
    coefficients = vectors.transpose(-1, -2) @ rhs
    return vectors @ (inverse.unsqueeze(-1) * coefficients)


def conjugate_gradient(
    matvec: Callable[[torch.Tensor], torch.Tensor],
    rhs: torch.Tensor,
    tol: float,
    max_iter: int,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve symmetric positive semi-definite systems ``A x = rhs`` matrix-free, batched.

    Started from zero, conjugate gradients stay in the Krylov space of
    ``rhs``, so on a consistent singular system they return the
    minimum-norm solution.

    Shape:
        rhs: (B, s); matvec maps (B, s) to (B, s).

    Returns:
        (x, converged): x (B, s); converged bool (B,), relative residual <= tol.
    """
    x = torch.zeros_like(rhs)
    r = rhs.clone()
    p = r.clone()
    rho = (r * r).sum(-1)
    target = tol**2 * rho.clamp(min=torch.finfo(rhs.dtype).tiny)
    tiny = torch.finfo(rhs.dtype).tiny
    for _ in range(max_iter):
        active = rho > target
        if not bool(active.any()):
            break
        Ap = matvec(p)
        curvature = (p * Ap).sum(-1)
        step = torch.where(active & (curvature > tiny), rho / curvature.clamp(min=tiny), 0.0)
        x = x + step.unsqueeze(-1) * p
        r = r - step.unsqueeze(-1) * Ap
        rho_next = (r * r).sum(-1)
        beta = torch.where(active, rho_next / rho.clamp(min=tiny), 0.0)
        p = r + beta.unsqueeze(-1) * p
        rho = torch.where(active, rho_next, rho)
    return x, rho <= target
