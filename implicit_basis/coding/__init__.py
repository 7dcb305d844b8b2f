"""Coding problems: one module per kind, each owning its objective and oracles."""

from .base import Problem
from .basis_pursuit import BasisPursuit
from .basis_pursuit_denoising import BasisPursuitDenoising
from .elastic_net import ElasticNet
from .group_lasso import GroupLasso
from .groups import Groups
from .lasso import Lasso, lam_max
from .sparse_group_lasso import SparseGroupLasso

__all__ = [
    "BasisPursuit",
    "BasisPursuitDenoising",
    "ElasticNet",
    "GroupLasso",
    "Groups",
    "Lasso",
    "Problem",
    "SparseGroupLasso",
    "lam_max",
]
