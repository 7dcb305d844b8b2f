"""LISTA: learned ISTA with untied weights (Gregor and LeCun, 2010)."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_real
from .base import UnrolledNetwork
from .shrinkage import soft_threshold

__all__ = ["LISTA"]


class LISTA(UnrolledNetwork):
    """Learned ISTA with separate weights in every layer.

    Layer k computes

        z_{k+1} = soft(W1_k y + W2_k z_k, theta_k),   z_0 = 0,

    with ``W1_k`` (n, m), ``W2_k`` (n, n) and a scalar threshold ``theta_k``
    learned per layer (Gregor and LeCun, 2010, "Learning fast approximations
    of sparse coding", ICML). Every layer starts as one ISTA step on the lasso
    ``1/2 ||D z - y||^2 + lam ||z||_1``: ``W1 = D^T / L``,
    ``W2 = I - D^T D / L`` and ``theta = lam / L`` with ``L = ||D||_2^2``, so the
    untrained network returns ``K`` ISTA iterations. Both ``W1`` and ``W2``
    are separate per layer here, while the code of Chen et al. (2018) shares
    ``W1`` across layers.

    Args:
        D: dictionary with atoms as columns, float32 or float64.
        K: number of layers, >= 1.
        lam: lasso weight that sets the initial thresholds, >= 0. The default
            0.4 is the initial value in the code of Chen, Liu, Wang and Yin
            (2018), github.com/VITA-Group/LISTA-CPSS.

    Shape:
        D: (m, n); forward: y (B, m) -> z (B, n).
    """

    def __init__(self, D: torch.Tensor, K: int, *, lam: float = 0.4) -> None:
        super().__init__(D, K)
        self.lam = check_real(lam, "lam")
        L = self._lipschitz()
        W1 = self.D.T / L
        W2 = torch.eye(self.n, dtype=self.D.dtype, device=self.D.device) - self.D.T @ self.D / L
        theta = torch.tensor(self.lam / L, dtype=self.D.dtype, device=self.D.device)

        self.W1 = self._per_layer(W1)
        self.W2 = self._per_layer(W2)
        self.theta = self._per_layer(theta)

    def layer(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        return soft_threshold(y @ self.W1[k].T + z @ self.W2[k].T, self.theta[k])

    def layer_parameters(self, k: int) -> list[nn.Parameter]:
        return [self.W1[k], self.W2[k], self.theta[k]]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lam={self.lam:g}"
