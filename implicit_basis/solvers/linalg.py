"""Batched linear algebra on supports of different sizes per sample.

Supports are packed into padded index tensors (``pack_support``). Padded
slots get a decoupled diagonal row in the system matrix (``pad_diagonal``)
and a zero right-hand side, so one batched factorisation solves every
sample at once.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

__all__ = [
    "SINGULAR_RTOL",
    "FactorCollector",
    "SupportFactor",
    "cholesky_apply",
    "gather_support",
    "pack_support",
    "pad_diagonal",
    "refinement_due",
    "scatter_support",
    "solve_psd",
]

# A symmetric positive semi-definite matrix counts as singular when its
# smallest eigenvalue is below this fraction of its largest. A condition
# number above 1e12 leaves about four correct digits in float64, so such a
# system is treated as rank-deficient and solved for its minimum-norm solution.
SINGULAR_RTOL = 1e-12
_REFINE_ABOVE = 1e4
# A factor counts as reusable by another solve with the same matrix (formed
# again, so equal up to rounding) only where its smallest pivot clears the
# singularity threshold by this factor. Rounding then cannot move the matrix
# across the threshold, which would switch that solve to the minimum-norm path.
_REUSE_MARGIN = 100.0


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


def solve_psd(A: torch.Tensor, b: torch.Tensor, *, return_factor: bool = False):
    """Solve ``A x = b`` for symmetric positive semi-definite ``A``, per sample.

    Where ``A`` is well conditioned this is a Cholesky solve, with one step
    of iterative refinement where the pivots spread by more than
    ``_REFINE_ABOVE``. Elsewhere (a pivot below ``SINGULAR_RTOL`` of the
    largest diagonal entry, or a failed factorisation) it is the
    minimum-norm least-squares solution from an eigendecomposition, which
    drops eigenvalues below ``SINGULAR_RTOL`` times the largest.

    Returns ``(x, singular)`` with ``singular`` (B,) bool true where
    eigenvalues were dropped. With ``return_factor`` it returns ``(x,
    singular, L, reusable)``: the lower Cholesky factors ``L`` (B, S, S) of
    ``A``, and ``reusable`` (B,) bool, true where the Cholesky path solved
    the sample and its smallest pivot exceeds the singularity threshold
    ``_REUSE_MARGIN`` times. Rows of ``L`` outside ``reusable`` are
    meaningless.

    Shape:
        A: (B, S, S); b and x: (B, S), or (B, S, r) for r right-hand sides.
    """
    vector = b.dim() == 2
    rhs = b.unsqueeze(-1) if vector else b
    B, S = rhs.shape[:2]
    singular = torch.zeros(B, dtype=torch.bool, device=b.device)
    if S == 0:
        if return_factor:
            return b.clone(), singular, A.clone(), torch.ones_like(singular)
        return b.clone(), singular
    factor, info = torch.linalg.cholesky_ex(A)
    pivots = factor.diagonal(dim1=-2, dim2=-1) ** 2
    largest = A.diagonal(dim1=-2, dim2=-1).amax(-1).clamp(min=torch.finfo(A.dtype).tiny)
    smallest = pivots.amin(-1)
    good = (info == 0) & (smallest > SINGULAR_RTOL * largest) & torch.isfinite(pivots).all(-1)

    x = torch.zeros_like(rhs)
    if bool(good.any()):
        rows = None if bool(good.all()) else good.nonzero().squeeze(-1)
        L = factor if rows is None else factor[rows]
        A_good = A if rows is None else A[rows]
        rhs_good = rhs if rows is None else rhs[rows]
        solution = cholesky_apply(L, rhs_good)
        if refinement_due(L):
            solution = solution + cholesky_apply(L, rhs_good - A_good @ solution)
        if rows is None:
            x = solution
        else:
            x[rows] = solution
    if not bool(good.all()):
        rows = (~good).nonzero().squeeze(-1)
        x[rows], singular[rows] = _min_norm_solve(A[rows], rhs[rows])
    x = x.squeeze(-1) if vector else x
    if return_factor:
        return x, singular, factor, good & (smallest > _REUSE_MARGIN * SINGULAR_RTOL * largest)
    return x, singular


def refinement_due(L: torch.Tensor, rows: torch.Tensor | None = None) -> bool:
    """Return whether a solve with the Cholesky factors ``L`` (B, S, S) needs a refinement step.

    The squared ratio of the pivots is a lower bound on the condition
    number. Above ``_REFINE_ABOVE`` for any sample (of ``rows`` only, if
    given), one refinement step of the whole batch keeps the error near 1e-15.
    """
    diagonal = L.diagonal(dim1=-2, dim2=-1)
    if rows is not None:
        diagonal = diagonal[rows]
    if diagonal.numel() == 0:
        return False
    spread = (diagonal.amax(-1) / diagonal.amin(-1)) ** 2
    return bool((spread > _REFINE_ABOVE).any())


def cholesky_apply(L: torch.Tensor, rhs: torch.Tensor) -> torch.Tensor:
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


@dataclass
class SupportFactor:
    """Cholesky factors of the support systems that produced a batch's final codes.

    Where ``known[b]``, sample b's code is nonzero exactly on the atoms
    ``index[b, :counts[b]]`` (in the order of ``pack_support``), and
    ``blocks[block[b]][position[b]]`` is the lower Cholesky factor of
    ``D_S^T D_S (+ l2 I)`` on those atoms, formed in float64 by the polish
    that produced the code. A block's slots past a sample's count are
    decoupled (zero off the diagonal, positive on it). The blocks keep the
    padded sizes of the polish calls, so no factor is copied to a common size.

    Attributes:
        index: (B, S) int64 atom indices, increasing; ``k`` in padded slots.
        counts: (B,) int64 support sizes.
        known: (B,) bool.
        block: (B,) int64 block of each known sample.
        position: (B,) int64 row of each known sample in its block.
        blocks: float64 lower triangular factors, each (n, S_block, S_block).
    """

    index: torch.Tensor
    counts: torch.Tensor
    known: torch.Tensor
    block: torch.Tensor
    position: torch.Tensor
    blocks: list[torch.Tensor]

    def tensors(self) -> list[torch.Tensor]:
        """Return every tensor of the factor, in the order ``from_tensors`` reads."""
        return [self.index, self.counts, self.known, self.block, self.position, *self.blocks]

    @classmethod
    def from_tensors(cls, tensors) -> "SupportFactor":
        index, counts, known, block, position, *blocks = tensors
        return cls(index, counts, known, block, position, list(blocks))


class FactorCollector:
    """Collects the support factors of samples as they finish, for ``SupportFactor``.

    Pieces come from polish calls on different sub-batches with different
    padded sizes. A later record of a sample replaces an earlier one, and
    ``drop`` marks a sample as finished by a code that no factor belongs to.
    """

    def __init__(self, B: int, k: int, device) -> None:
        self.B = B
        self.k = k
        self.device = device
        self.owner = torch.full((B,), -1, dtype=torch.int64, device=device)
        self.pieces: list[tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]] = []

    def add(self, rows: torch.Tensor, index: torch.Tensor, valid: torch.Tensor, L: torch.Tensor) -> None:
        """Record the factors ``L`` (n, S, S) of the samples ``rows`` (n,) of the batch."""
        if rows.numel() == 0:
            return
        self.owner[rows] = len(self.pieces)
        self.pieces.append((rows, index, valid.sum(-1), L))

    def drop(self, rows: torch.Tensor) -> None:
        self.owner[rows] = -1

    def assemble(self, limit: int | None = None) -> SupportFactor:
        """Return the recorded factors of supports up to ``limit`` atoms (every size when None)."""
        known = torch.zeros(self.B, dtype=torch.bool, device=self.device)
        block = torch.zeros(self.B, dtype=torch.int64, device=self.device)
        position = torch.zeros(self.B, dtype=torch.int64, device=self.device)
        counts = torch.zeros(self.B, dtype=torch.int64, device=self.device)
        selected = []
        for number, (rows, index, piece_counts, L) in enumerate(self.pieces):
            take = self.owner[rows] == number
            if limit is not None:
                take = take & (piece_counts <= limit)
            if not bool(take.any()):
                continue

            local = take.nonzero().squeeze(-1)
            width = int(piece_counts[local].max())
            if limit is not None and L.shape[-1] > limit:
                # Keep only the samples within the limit, cut to their largest support.
                L = L[local, :width, :width].contiguous()
                slots = torch.arange(local.numel(), device=self.device)
            else:
                slots = local
            known[rows[local]] = True
            block[rows[local]] = len(selected)
            position[rows[local]] = slots
            counts[rows[local]] = piece_counts[local]
            selected.append((rows[local], index[local], L))

        S = int(counts.max()) if self.B else 0
        index_out = torch.full((self.B, S), self.k, dtype=torch.int64, device=self.device)
        for rows, index, _ in selected:
            # Every selected support fits in S slots, so a piece's slots past S are padding.
            width = min(S, index.shape[1])
            index_out[rows, :width] = index[:, :width]
        self.pieces = []
        return SupportFactor(index_out, counts, known, block, position, [L for _, _, L in selected])
