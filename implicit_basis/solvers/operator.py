"""The dictionary as a batched linear operator: products, Gram blocks, norms.

A solve touches ``D`` only through this class, so that a dictionary shared by
the batch (m, k) and one per sample (B, m, k) run the same solver code. A
shared dictionary uses plain matrix products (one GEMM for the whole batch);
a per-sample one uses batched products.
"""

from __future__ import annotations

import torch

from .linalg import pad_diagonal

__all__ = ["DictionaryOperator"]

# Power iterations for the largest eigenvalue of D^T D when no exact
# eigendecomposition is affordable. The estimate is a lower bound; the
# proximal gradient solver backtracks if it is too small.
_POWER_ITERATIONS = 30

# Exact eigenvalues of the smaller Gram matrix are used up to this size
# (an eigvalsh of 512 x 512 takes tens of milliseconds).
_EXACT_NORM_SIZE = 512

# Largest k whose Gram matrix (k^2 entries) is kept for gathering blocks.
_GRAM_LIMIT = 4096


class DictionaryOperator:
    """A dictionary shared by a batch (m, k) or given per sample (B, m, k).

    The Gram matrix ``D^T D`` of a shared dictionary is computed on first use
    and kept by every sub-batch taken with ``rows``.

    Shape:
        D: (m, k) or (B, m, k); z: (B, k); r: (B, m).
    """

    def __init__(self, D: torch.Tensor, B: int, cache: dict | None = None) -> None:
        self.D = D
        self.B = B
        self._cache = {} if cache is None else cache

    @property
    def shared(self) -> bool:
        return self.D.dim() == 2

    @property
    def m(self) -> int:
        return self.D.shape[-2]

    @property
    def k(self) -> int:
        return self.D.shape[-1]

    @property
    def dtype(self) -> torch.dtype:
        return self.D.dtype

    # ------------------------------------------------------------------
    # Products

    def matvec(self, z: torch.Tensor) -> torch.Tensor:
        """Return ``D z`` per sample, (B, m)."""
        if self.shared:
            return z @ self.D.T
        return torch.bmm(self.D, z.unsqueeze(-1)).squeeze(-1)

    def rmatvec(self, r: torch.Tensor) -> torch.Tensor:
        """Return ``D^T r`` per sample, (B, k)."""
        if self.shared:
            return r @ self.D
        return torch.bmm(r.unsqueeze(1), self.D).squeeze(1)

    def columns(self, index: torch.Tensor) -> torch.Tensor:
        """Return the atoms ``D[:, index[b]]`` of each sample, (B, m, S)."""
        if self.shared:
            return self.D[:, index].permute(1, 0, 2)
        expanded = index.unsqueeze(1).expand(-1, self.m, -1)
        return self.D.gather(2, expanded)

    def gram_block(self, index: torch.Tensor, valid: torch.Tensor) -> torch.Tensor:
        """Return the padded support system ``D_S^T D_S`` of each sample, (B, S, S).

        ``index`` and ``valid`` come from ``pack_support`` (padded slots hold
        ``k``). Padded rows and columns are zero but for a diagonal entry
        equal to the largest real one (``pad_diagonal``). A shared dictionary
        gathers the blocks from its Gram matrix when that is cheaper than
        forming them from the atoms.
        """
        B, S = index.shape
        if self.shared and self._use_gram(B, S):
            gram = self.padded_gram()
            flat = index.unsqueeze(-1) * (self.k + 1) + index.unsqueeze(-2)
            block = gram.reshape(-1)[flat]
        else:
            atoms = self.columns(index.clamp(max=self.k - 1)) * valid.unsqueeze(1).to(self.dtype)
            block = atoms.transpose(1, 2) @ atoms
        return pad_diagonal(block, valid)

    def _use_gram(self, B: int, S: int) -> bool:
        if "gram" in self._cache:
            return True
        # Forming the blocks costs B S^2 m, while the Gram matrix costs k^2 m
        # once (and k^2 memory). It pays when the blocks together are larger.
        return B * S * S >= self.k * self.k and self.k <= _GRAM_LIMIT

    def padded_gram(self) -> torch.Tensor:
        """Return ``D^T D`` of a shared dictionary with a zero row and column appended.

        Computed once per solve; the extra row serves the padded slots of
        ``pack_support`` (index ``k``).
        """
        gram = self._cache.get("gram")
        if gram is None:
            gram = self.D.new_zeros(self.k + 1, self.k + 1)
            gram[: self.k, : self.k] = self.D.T @ self.D
            self._cache["gram"] = gram
        return gram

    # ------------------------------------------------------------------
    # Norms

    def nonzero_atoms(self) -> torch.Tensor:
        """Return the atoms with a nonzero column, (1, k) shared or (B, k)."""
        nonzero = self._cache.get("nonzero_atoms")
        if nonzero is None:
            nonzero = (self.D != 0).any(-2)
            nonzero = nonzero.unsqueeze(0) if self.shared else nonzero
            self._cache["nonzero_atoms"] = nonzero
        return nonzero

    @property
    def norm_is_exact(self) -> bool:
        """Whether ``squared_norm`` is exact rather than a power-iteration estimate."""
        return self.shared and min(self.m, self.k) <= _EXACT_NORM_SIZE

    def squared_norm(self) -> torch.Tensor:
        """Return the largest eigenvalue of ``D^T D`` per sample, (B,).

        The value is exact (from the smaller Gram matrix) for a shared
        dictionary with ``min(m, k) <= 512`` (``norm_is_exact``). Otherwise it
        is a power-iteration estimate, a lower bound, so callers must guard
        it (the proximal gradient solver backtracks).
        """
        cached = self._cache.get("squared_norm")
        if cached is not None:
            return cached if cached.shape[0] == self.B else cached[:1].expand(self.B)
        D = self.D
        if self.norm_is_exact:
            small = D @ D.T if self.m <= self.k else D.T @ D
            value = torch.linalg.eigvalsh(small)[-1].clamp(min=0).reshape(1).expand(self.B)
        else:
            value = self._power_iteration()
        self._cache["squared_norm"] = value
        return value

    def _power_iteration(self) -> torch.Tensor:
        batch = 1 if self.shared else self.B
        generator = torch.Generator(device="cpu").manual_seed(0)
        v = torch.randn(batch, self.k, generator=generator, dtype=torch.float64)
        v = v.to(device=self.D.device, dtype=self.dtype)
        op = self if not self.shared else DictionaryOperator(self.D, 1)
        estimate = torch.zeros(batch, dtype=self.dtype, device=self.D.device)
        for _ in range(_POWER_ITERATIONS):
            v = v / v.norm(dim=-1, keepdim=True).clamp(min=torch.finfo(self.dtype).tiny)
            w = op.rmatvec(op.matvec(v))
            estimate = (v * w).sum(-1)
            v = w
        return estimate.clamp(min=0).expand(self.B) if self.shared else estimate.clamp(min=0)

    # ------------------------------------------------------------------
    # Sub-batches and precision

    def rows(self, index: torch.Tensor) -> "DictionaryOperator":
        """Return the operator of the samples ``index`` (a shared D stays shared)."""
        B = int(index.shape[0])
        if self.shared:
            return DictionaryOperator(self.D, B, cache=self._cache)
        child = DictionaryOperator(self.D.index_select(0, index), B)
        for name in ("squared_norm", "nonzero_atoms"):
            if name in self._cache:
                child._cache[name] = self._cache[name].index_select(0, index)
        return child

    def to(self, dtype: torch.dtype) -> "DictionaryOperator":
        """Return the operator in another dtype (a new cache)."""
        if dtype == self.dtype:
            return self
        return DictionaryOperator(self.D.to(dtype), self.B)

