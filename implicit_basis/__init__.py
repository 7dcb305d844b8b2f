"""implicit_basis: differentiable sparse-coding layers over parametric frames.

The public API: problems (``Lasso``, ``ElasticNet``, ``GroupLasso``,
``SparseGroupLasso``, ``BasisPursuit``, ``BasisPursuitDenoising``), the solve
``sparse_code`` and the layer ``SparseCoding``, ``lam_max``, and the frames in
``implicit_basis.frames``.
"""

from . import diff, frames
from .coding import (
    BasisPursuit,
    BasisPursuitDenoising,
    ElasticNet,
    GroupLasso,
    Groups,
    Lasso,
    Problem,
    SparseGroupLasso,
    lam_max,
)
from .errors import ConvergenceWarning, InfeasibleProblemError, SolverFailedError
from .info import SolveInfo
from .layer import SparseCoding, sparse_code

__version__ = "0.1.0"

__all__ = [
    "BasisPursuit",
    "BasisPursuitDenoising",
    "ConvergenceWarning",
    "ElasticNet",
    "GroupLasso",
    "Groups",
    "InfeasibleProblemError",
    "Lasso",
    "Problem",
    "SolveInfo",
    "SolverFailedError",
    "SparseCoding",
    "SparseGroupLasso",
    "diff",
    "frames",
    "lam_max",
    "sparse_code",
]
