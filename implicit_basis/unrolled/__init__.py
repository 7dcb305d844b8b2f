"""Learned unrolled networks (the LISTA family), their training, and ISTA/FISTA.

Every network is an ``nn.Module`` built from a fixed dictionary ``D`` (atoms
as columns, shape (m, n)) and a depth ``K``. ``model(y)`` maps signals of
shape (B, m) to codes of shape (B, n) that approximate the lasso code.
``model(y, return_all=True)`` returns the estimate of every layer.
"""

from .alista import ALISTA, analytic_weight
from .base import UnrolledNetwork
from .classic import fista, ista, lipschitz_constant
from .lista import LISTA
from .lista_cp import LISTACP, LISTACPSS
from .metrics import nmse_db, nmse_per_layer
from .shrinkage import (
    selected_count,
    soft_threshold,
    soft_threshold_support_selection,
    support_fraction,
)
from .step_lista import StepLISTA
from .training import TrainHistory, train

__all__ = [
    "ALISTA",
    "LISTA",
    "LISTACP",
    "LISTACPSS",
    "StepLISTA",
    "TrainHistory",
    "UnrolledNetwork",
    "analytic_weight",
    "fista",
    "ista",
    "lipschitz_constant",
    "nmse_db",
    "nmse_per_layer",
    "selected_count",
    "soft_threshold",
    "soft_threshold_support_selection",
    "support_fraction",
    "train",
]
