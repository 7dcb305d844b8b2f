"""Batched linear algebra on supports of different sizes per sample.

Supports are packed into padded index tensors (``pack_support``). Padded
slots get a decoupled diagonal row in the system matrix (``pad_diagonal``)
and a zero right-hand side, so one batched factorisation solves every
sample at once.
"""

from __future__ import annotations

import torch

__all__ = ["SINGULAR_RTOL", "gather_support", "pack_support", "pad_diagonal", "scatter_support", "solve_psd"]

# A symmetric positive semi-definite matrix counts as singular when its
# smallest eigenvalue is below this fraction of its largest. A condition
# number above 1e12 leaves about four correct digits in float64, so such a
# system is treated as rank-deficient and solved for its minimum-norm solution.
SINGULAR_RTOL = 1e-12
_REFINE_ABOVE = 1e4


def pack_support(mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the indices of the True entries of each row, padded to the longest row.

    Returns ``(index, valid)``. ``index`` (B, S) contains int64 atom indices,
    increasing along a row, and ``k`` (one past the last atom) in padded
    slots. ``valid`` (B, S) marks the real slots. ``S`` is the largest row
    count.

    Shape:
        mask: (B, k) bool.
    """
    B, k = mask.shape
    counts = mask.sum(-1)
    S = int(counts.max()) if B else 0
    order = torch.argsort(mask.to(torch.int8), dim=-1, descending=True, stable=True)[:, :S]
    valid = torch.arange(S, device=mask.device).unsqueeze(0) < counts.unsqueeze(-1)
    index = torch.where(valid, order, torch.full_like(order, k))
    return index, valid


def gather_support(x: torch.Tensor, index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Return ``x`` at the packed support, with zeros in the padded slots, (B, S).

    ``x`` is (B, k), or (B, 1) for one value per sample.
    """
    if x.shape[-1] == 1:
        picked = x.expand(-1, index.shape[1])
    else:
        picked = x.gather(1, index.clamp(max=x.shape[-1] - 1))
    return picked.masked_fill(~valid, 0)


def scatter_support(values: torch.Tensor, index: torch.Tensor, k: int) -> torch.Tensor:
    """Place packed support values into full code vectors with exact zeros elsewhere, (B, k)."""
    out = values.new_zeros(values.shape[0], k + 1)
    return out.scatter_(1, index, values)[:, :k]


def pad_diagonal(A: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
    """Put the largest real diagonal entry on the diagonal of the padded slots, in place.

    ``A`` must be zero in padded rows and columns. The padded slots then
    decouple from the real ones and never change the scale against which
    singularity is judged.
    """
    if A.shape[-1] == 0:
        return A
    invalid = ~valid
    diagonal = A.diagonal(dim1=-2, dim2=-1)
    scale = diagonal.masked_fill(invalid, 0).amax(-1, keepdim=True)
    scale = torch.where(scale > 0, scale, torch.ones_like(scale))
    diagonal.add_(scale * invalid.to(A.dtype))
    return A


def solve_psd(A: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Solve ``A x = b`` for symmetric positive semi-definite ``A``, per sample.

    Where ``A`` is well conditioned this is a Cholesky solve, with one step
    of iterative refinement where the pivots spread by more than
    ``_REFINE_ABOVE``. Elsewhere (a pivot below ``SINGULAR_RTOL`` of the
    largest diagonal entry, or a failed factorisation) it is the
    minimum-norm least-squares solution from an eigendecomposition, which
    drops eigenvalues below ``SINGULAR_RTOL`` times the largest.

    Returns ``(x, singular)`` with ``singular`` (B,) bool true where
    eigenvalues were dropped.

    Shape:
        A: (B, S, S); b and x: (B, S), or (B, S, r) for r right-hand sides.
    """
    vector = b.dim() == 2
    rhs = b.unsqueeze(-1) if vector else b
    B, S = rhs.shape[:2]
    singular = torch.zeros(B, dtype=torch.bool, device=b.device)
    if S == 0:
        return b.clone(), singular
    factor, info = torch.linalg.cholesky_ex(A)
    pivots = factor.diagonal(dim1=-2, dim2=-1) ** 2
    largest = A.diagonal(dim1=-2, dim2=-1).amax(-1).clamp(min=torch.finfo(A.dtype).tiny)
    good = (info == 0) & (pivots.amin(-1) > SINGULAR_RTOL * largest) & torch.isfinite(pivots).all(-1)

    x = torch.zeros_like(rhs)
    if bool(good.any()):
        rows = None if bool(good.all()) else good.nonzero().squeeze(-1)
        L = factor if rows is None else factor[rows]
        A_good = A if rows is None else A[rows]
        rhs_good = rhs if rows is None else rhs[rows]
        solution = _cholesky_apply(L, rhs_good)
        # The squared ratio of the pivots is a lower bound on the condition
        # number; above 1e4 a refinement step keeps the error near 1e-15.
        diagonal = L.diagonal(dim1=-2, dim2=-1)
        spread = (diagonal.amax(-1) / diagonal.amin(-1)) ** 2
        if bool((spread > _REFINE_ABOVE).any()):
            solution = solution + _cholesky_apply(L, rhs_good - A_good @ solution)
        if rows is None:
            x = solution
        else:
            x[rows] = solution
    if not bool(good.all()):
        rows = (~good).nonzero().squeeze(-1)
        x[rows], singular[rows] = _min_norm_solve(A[rows], rhs[rows])
    return (x.squeeze(-1) if vector else x), singular


def _cholesky_apply(L: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
    """Return ``(L L^T)^{-1} rhs`` by two triangular solves.

    ``torch.cholesky_solve`` copied the factor on every call (torch 2.13, CPU),
    which took longer than the two solves on (256, 175, 175) factors.
    """
    half = torch.linalg.solve_triangular(L, rhs, upper=False)
    return torch.linalg.solve_triangular(L.mT, half, upper=True)


def _min_norm_solve(A: torch.Tensor, b: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the minimum-norm least-squares solution of a PSD system and where rank was dropped."""
    eigenvalues, vectors = torch.linalg.eigh(A)
    largest = eigenvalues[:, -1:].clamp(min=torch.finfo(A.dtype).tiny)
    keep = eigenvalues > SINGULAR_RTOL * largest
    inverse = torch.where(keep, 1.0 / torch.where(keep, eigenvalues, torch.ones_like(eigenvalues)), 0.0)

    def apply_pseudo_inverse(rhs):
        return vectors @ ((vectors.transpose(1, 2) @ rhs) * inverse.unsqueeze(-1))

    x = apply_pseudo_inverse(b)
    # One refinement step on the kept eigenspace recovers the digits the
    # eigendecomposition loses on ill-conditioned ranges.
    x = x + apply_pseudo_inverse(b - A @ x)
    return x, ~keep.all(-1)
