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

    Padded rows and columns are decoupled first (their entries may hold
    anything, since padding gathers atom 0). The solve is
    ``solvers.linalg.solve_psd``: Cholesky with iterative refinement, or the
    minimum-norm least-squares solution where the system is singular to
    working precision (duplicate atoms, more atoms than samples).

    Shape:
        G: (B, s, s); rhs: (B, s) or (B, s, r); mask: (B, s).

    Returns:
        (x, singular): x like rhs, zero on padding; singular bool (B,).
    """
    from .solvers.linalg import pad_diagonal, solve_psd

    pair = mask.unsqueeze(-1) & mask.unsqueeze(-2)
    G = pad_diagonal(torch.where(pair, G, torch.zeros((), dtype=G.dtype, device=G.device)), mask)
    real = mask.to(G.dtype)
    rhs = rhs * (real if rhs.dim() == 2 else real.unsqueeze(-1))
    x, singular = solve_psd(G, rhs)
    return x * (real if rhs.dim() == 2 else real.unsqueeze(-1)), singular


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


# Route choices of ``SupportDictionary`` for a shared dictionary. An
# elementwise pass over (B, m, s) gathered columns costs about as much as
# GATHER_COST flops of a matrix product on the same machine, so the columns
# are gathered only when GATHER_COST * s < k. The full Gram D^T D is formed
# only up to GRAM_ATOMS atoms (128 MiB in float64).
GATHER_COST = 16
GRAM_ATOMS = 4096


def prefers_full_gram(B: int, s: int, k: int) -> bool:
    """Return whether reading B support Grams of size s from D^T D beats forming each one.

    Forming them costs O(B s^2 m); the full Gram costs O(k^2 m) once.
    """
    return k <= GRAM_ATOMS and B * s * s > k * k


class SupportDictionary:
    """The columns of ``D`` on per-sample supports, with the products a backward needs.

    A per-sample dictionary, or a shared one with small supports, is gathered
    into padded (B, m, s) columns. A shared dictionary with large supports is
    never gathered: products go through the full (m, k) matrix on codes
    scattered to (B, k), and the support Grams are read from ``D^T D``.

    Shape:
        D: (m, k) or (B, m, k); support of B samples and s padded entries.
    """

    def __init__(self, D: torch.Tensor, support: Support) -> None:
        self.D = D
        self.support = support
        self.shared = D.dim() == 2
        B, s, k = support.index.shape[0], support.size, support.k
        self.gathered = not self.shared or GATHER_COST * s < k
        self.columns = gather_columns(D, support) if self.gathered else None
        self._use_full_gram = self.shared and not self.gathered and prefers_full_gram(B, s, k)

    def apply(self, u: torch.Tensor) -> torch.Tensor:
        """Return ``D_S u`` per sample: u (B, s) -> (B, m)."""
        if self.columns is not None:
            return torch.bmm(self.columns, u.unsqueeze(-1)).squeeze(-1)
        return scatter_atoms(u, self.support) @ self.D.T

    def apply_transpose(self, r: torch.Tensor) -> torch.Tensor:
        """Return ``D_S^T r`` per sample: r (B, m) -> (B, s), zero on padding."""
        if self.columns is not None:
            return torch.bmm(r.unsqueeze(1), self.columns).squeeze(1)
        return gather_atoms(r @ self.D, self.support)

    def gram(self) -> torch.Tensor:
        """Return ``D_S^T D_S`` per sample, (B, s, s); padded entries are arbitrary."""
        if self.columns is not None:
            return self.columns.transpose(1, 2) @ self.columns
        index = self.support.index
        if self._use_full_gram:
            full = self.D.T @ self.D
            return full[index.unsqueeze(-1), index.unsqueeze(-2)]
        columns = gather_columns(self.D, self.support)
        return columns.transpose(1, 2) @ columns

    def outer(self, left: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
        """Return the gradient w.r.t. D of ``sum_b left_b^T D_S right_b``.

        That is ``left_b right_b^T`` placed on each sample's support columns,
        summed over the batch for a shared D.

        Shape:
            left: (B, m); right: (B, s); result (m, k) shared or (B, m, k).
        """
        if self.shared and self.columns is None:
            return left.T @ scatter_atoms(right, self.support)
        values = left.unsqueeze(-1) * right.unsqueeze(1)
        return scatter_columns(values, self.support, shared=self.shared)
