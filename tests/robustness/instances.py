"""Random problem instances of every kind, with the degeneracies that break solvers.

``instances()`` is a hypothesis strategy. It draws a kind, small sizes, a
degeneracy and the penalty as a fraction of ``lam_max``. The data come from
``numpy.random.default_rng(seed)`` with a drawn seed, and a failing example
prints its arrays, so it can be reproduced from the report alone.

Degeneracies:

- ``duplicate_atom``: atom 1 equals atom 0 (the code is not unique);
- ``opposite_atom``: atom 1 is minus atom 0;
- ``zero_atom``: atom 0 is zero;
- ``zero_group``: the atoms of the first group (0 and 1) are zero;
- ``zero_signal``: the first signal is zero, so its ``lam_max`` is 0;
- ``rank_deficient``: D has rank 1;
- ``tie``: D is the identity and an entry of the first signal sits exactly
  at its threshold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import torch
from hypothesis import strategies as st

import implicit_basis as ib
from tests.reference import reference_solve

__all__ = ["DEGENERACIES", "KINDS", "PENALISED", "Instance", "instances"]

KINDS = (
    "lasso",
    "nonneg_lasso",
    "weighted_lasso",
    "elastic_net",
    "group_lasso",
    "sparse_group_lasso",
    "basis_pursuit",
    "basis_pursuit_denoising",
)
PENALISED = KINDS[:6]
DEGENERACIES = (
    "none",
    "duplicate_atom",
    "opposite_atom",
    "zero_atom",
    "zero_group",
    "zero_signal",
    "rank_deficient",
    "tie",
)
# lam as a fraction of lam_max: least squares, small, moderate, exactly at and above lam_max.
FRACTIONS = (0.0, 0.05, 0.3, 1.0, 1.5)
# sigma as a fraction of ||y|| for basis pursuit denoising.
SIGMA_FRACTIONS = (0.0, 0.1, 0.5, 1.5)
# Per-atom weights of the weighted lasso: unpenalised, ordinary and forced to zero.
WEIGHT_VALUES = (0.0, 0.5, 1.0, 2.0, math.inf)
# The threshold at which the "tie" degeneracy places an entry of the signal.
TIE_LAM = 0.5
L2 = 0.2
L1_RATIO = 0.4


@dataclass
class Instance:
    """One batch of problems: the kind, the data (numpy, float64) and the parameters.

    ``params`` contains ``lam`` (B,) for the penalised kinds, ``sigma`` (B,) for
    basis pursuit denoising, and the fixed structure (weights, groups, l2,
    l1_ratio, nonneg).
    """

    kind: str
    degeneracy: str
    Y: np.ndarray
    D: np.ndarray
    params: dict = field(default_factory=dict)

    @property
    def B(self) -> int:
        return self.Y.shape[0]

    @property
    def k(self) -> int:
        return self.D.shape[1]

    def differentiable(self) -> list[str]:
        """Return the names of the scalar parameters gradients should reach."""
        names = [name for name in ("lam", "sigma") if name in self.params]
        if self.kind == "elastic_net":
            names.append("l2")
        return names

    def problem(self, tensors: dict | None = None) -> ib.Problem:
        """Build the problem; ``tensors`` replaces parameters by (grad-requiring) tensors."""
        p = dict(self.params)
        if tensors:
            p.update(tensors)
        kind = self.kind
        if kind in ("lasso", "nonneg_lasso", "weighted_lasso"):
            weights = p.get("weights")
            weights = None if weights is None else torch.as_tensor(weights, dtype=torch.float64)
            return ib.Lasso(_as_param(p["lam"]), weights=weights, nonneg=kind == "nonneg_lasso")
        if kind == "elastic_net":
            return ib.ElasticNet(_as_param(p["lam"]), _as_param(p["l2"]))
        if kind == "group_lasso":
            return ib.GroupLasso(_as_param(p["lam"]), p["groups"])
        if kind == "sparse_group_lasso":
            return ib.SparseGroupLasso(_as_param(p["lam"]), p["groups"], p["l1_ratio"])
        if kind == "basis_pursuit":
            return ib.BasisPursuit()
        return ib.BasisPursuitDenoising(_as_param(p["sigma"]))

    def reference_kwargs(self) -> dict:
        """Return the keyword arguments of ``tests.reference.reference_batch``."""
        p = self.params
        kind = self.kind
        if kind in ("lasso", "nonneg_lasso", "weighted_lasso"):
            return {"lam": p["lam"], "weights": p.get("weights"), "nonneg": kind == "nonneg_lasso"}
        if kind == "elastic_net":
            return {"lam": p["lam"], "l2": p["l2"]}
        if kind == "group_lasso":
            return {"lam": p["lam"], "groups": p["groups"]}
        if kind == "sparse_group_lasso":
            return {"lam": p["lam"], "groups": p["groups"], "l1_ratio": p["l1_ratio"]}
        if kind == "basis_pursuit":
            return {}
        return {"sigma": p["sigma"]}

    def reference_kind(self) -> str:
        return "lasso" if self.kind in ("nonneg_lasso", "weighted_lasso") else self.kind

    def references(self) -> list:
        """Return the reference solution of every sample (``tests.reference.RefResult``).

        Basis pursuit denoising with ``sigma = 0`` is basis pursuit, which the
        reference solves by its own method (its denoising path needs sigma > 0).
        """
        results = []
        kwargs = self.reference_kwargs()
        for b in range(self.B):
            sample = {
                name: (value[b] if name in ("lam", "sigma") else value) for name, value in kwargs.items()
            }
            kind = self.reference_kind()
            if kind == "basis_pursuit_denoising" and sample["sigma"] == 0:
                kind, sample = "basis_pursuit", {}
            results.append(reference_solve(kind, self.Y[b], self.D, **sample))
        return results

    def unique_solution(self) -> bool:
        """Return whether the code is unique, judged from the structure of the data.

        Duplicate, opposite or collinear atoms make it non-unique, and so
        does an unpenalised rank-deficient fit (lam = 0 or a zero weight with
        rank(D) < k). Basis pursuit (denoising) is taken as unique only for
        D of full column rank.
        """
        if self.degeneracy in ("duplicate_atom", "opposite_atom", "rank_deficient"):
            return False
        full_rank = np.linalg.matrix_rank(self.D) == self.k
        if self.kind in ("basis_pursuit", "basis_pursuit_denoising"):
            return bool(full_rank)
        unpenalised = bool((np.asarray(self.params["lam"]) == 0).any())
        if self.params.get("weights") is not None:
            unpenalised = unpenalised or bool((np.asarray(self.params["weights"]) == 0).any())
        return bool(full_rank or not unpenalised)

    def penalised_atoms(self) -> np.ndarray:
        """Return the atoms a large lam sets to zero (all but the unpenalised ones), bool (k,)."""
        weights = self.params.get("weights")
        if weights is None:
            return np.ones(self.k, dtype=bool)
        return np.asarray(weights) > 0


def _as_param(value):
    if isinstance(value, torch.Tensor):
        return value
    array = np.asarray(value, dtype=np.float64)
    return float(array) if array.ndim == 0 else torch.tensor(array)


def contiguous_groups(k: int) -> list[int]:
    """Return group sizes of 2 atoms each (the last group has 1 atom when k is odd)."""
    return [2] * (k // 2) + [1] * (k % 2)


@st.composite
def instances(draw, kinds=KINDS, degeneracies=DEGENERACIES, max_batch: int = 3):
    kind = draw(st.sampled_from(kinds))
    degeneracy = draw(st.sampled_from(degeneracies))
    seed = draw(st.integers(0, 2**16 - 1))
    B = draw(st.integers(1, max_batch))
    m = draw(st.integers(1, 6))
    k = draw(st.integers(2, 8))
    fraction = draw(st.sampled_from(FRACTIONS))
    sigma_fraction = draw(st.sampled_from(SIGMA_FRACTIONS))
    rng = np.random.default_rng(seed)

    if degeneracy == "tie":
        m = k
        D = np.eye(k)
    else:
        D = rng.standard_normal((m, k))
    if degeneracy == "duplicate_atom":
        D[:, 1] = D[:, 0]
    elif degeneracy == "opposite_atom":
        D[:, 1] = -D[:, 0]
    elif degeneracy == "zero_atom":
        D[:, 0] = 0.0
    elif degeneracy == "zero_group":
        D[:, :2] = 0.0
    elif degeneracy == "rank_deficient":
        D = np.outer(rng.standard_normal(m), rng.standard_normal(k))

    if kind in ("basis_pursuit", "basis_pursuit_denoising"):
        # Signals in range(D), so that every sample is feasible.
        X = rng.standard_normal((B, k)) * (rng.random((B, k)) < 0.5)
        Y = X @ D.T
    else:
        Y = rng.standard_normal((B, m))
    if degeneracy == "zero_signal":
        Y[0] = 0.0

    params: dict = {}
    if kind == "weighted_lasso":
        params["weights"] = rng.choice(WEIGHT_VALUES, size=k)
    if kind == "elastic_net":
        params["l2"] = L2
    if kind in ("group_lasso", "sparse_group_lasso"):
        params["groups"] = contiguous_groups(k)
    if kind == "sparse_group_lasso":
        params["l1_ratio"] = L1_RATIO

    if kind in PENALISED:
        instance = Instance(kind, degeneracy, Y, D, params)
        if degeneracy == "tie":
            _place_tie(instance)
            params["lam"] = np.full(B, TIE_LAM)
        else:
            lam_max = ib.lam_max(torch.tensor(Y), torch.tensor(D), instance.problem({"lam": 1.0}))
            params["lam"] = fraction * lam_max.numpy()
    if kind == "basis_pursuit_denoising":
        params["sigma"] = sigma_fraction * np.linalg.norm(Y, axis=1)
    return Instance(kind, degeneracy, Y, D, params)


def _place_tie(instance: Instance) -> None:
    """Set an entry of the first signal exactly at its threshold (D is the identity)."""
    y = instance.Y[0]
    kind = instance.kind
    if kind == "group_lasso":
        # Group {0, 1} with weight sqrt(2): ||y_g|| = lam sqrt(2) at y_g = (lam, lam).
        y[:2] = TIE_LAM
        return
    threshold = TIE_LAM
    if kind == "sparse_group_lasso":
        threshold = TIE_LAM * L1_RATIO
    if kind == "weighted_lasso":
        weights = instance.params["weights"]
        finite = np.flatnonzero(np.isfinite(weights) & (weights > 0))
        if finite.size == 0:
            return
        j = int(finite[0])
        y[j] = TIE_LAM * weights[j]
        return
    y[0] = threshold
    y[1] = -threshold
