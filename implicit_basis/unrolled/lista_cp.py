"""LISTA-CP and LISTA-CPSS: coupled weights, with and without support selection.

Chen, Liu, Wang and Yin (2018), "Theoretical linear convergence of unfolded
ISTA and its practical weights and thresholds", NeurIPS. Their reference code
(github.com/VITA-Group/LISTA-CPSS) sets the defaults used here.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_real
from .base import SupportSelection, UnrolledNetwork
from .shrinkage import soft_threshold

__all__ = ["LISTACP", "LISTACPSS"]


class LISTACP(UnrolledNetwork):
    """LISTA with coupled weights (LISTA-CP).

    Layer k computes

        z_{k+1} = soft(z_k + W_k^T (y - D z_k), theta_k),   z_0 = 0,

    with ``W_k`` (m, n) and a scalar ``theta_k`` learned per layer. Coupling
    ``W2 = I - W^T D`` is the weight structure under which Chen et al. (2018)
    prove linear convergence. Every layer starts as one ISTA step on the lasso
    ``1/2 ||D z - y||^2 + lam ||z||_1``: ``W = D / L`` and ``theta = lam / L``
    with ``L = ||D||_2^2``.

    Args:
        D: dictionary with atoms as columns, float32 or float64.
        K: number of layers, >= 1.
        lam: lasso weight that sets the initial thresholds, >= 0. The default
            0.4 is the initial value in the code of Chen et al. (2018).

    Shape:
        D: (m, n); forward: y (B, m) -> z (B, n).
    """

    def __init__(self, D: torch.Tensor, K: int, *, lam: float = 0.4) -> None:
        super().__init__(D, K)
        self.lam = check_real(lam, "lam")
        L = self._lipschitz()
        W = self.D / L
        theta = torch.tensor(self.lam / L, dtype=self.D.dtype, device=self.D.device)
        self.W = self._per_layer(W)
        self.theta = self._per_layer(theta)

    def _shrink(self, k: int, v: torch.Tensor) -> torch.Tensor:
        return soft_threshold(v, self.theta[k])

    def layer(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        residual = y - z @ self.D.T
        return self._shrink(k, z + residual @ self.W[k])

    def layer_parameters(self, k: int) -> list[nn.Parameter]:
        return [self.W[k], self.theta[k]]

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, lam={self.lam:g}"


class LISTACPSS(SupportSelection, LISTACP):
    """LISTA with coupled weights and support selection (LISTA-CPSS).

    The layers are those of :class:`LISTACP`, except that in layer k
    (1-based) the ``floor(p_k n)`` entries of largest magnitude that also
    exceed ``theta_k`` bypass the threshold and are kept as they are, with

        p_k = min(p_step * k, p_max).

    Args:
        D: dictionary with atoms as columns, float32 or float64.
        K: number of layers, >= 1.
        lam: lasso weight that sets the initial thresholds, >= 0.
        p_step: growth of the selected fraction per layer, in [0, 1].
        p_max: largest selected fraction, in [0, 1].

    The defaults ``p_step=0.012`` and ``p_max=0.13`` are the settings the
    authors publish with their code (``-p 1.2 -maxp 13``, in percent, in the
    README of github.com/VITA-Group/ALISTA, which runs LISTA-CPSS as its
    baseline), tuned for codes with about 10% nonzeros.

    Shape:
        D: (m, n); forward: y (B, m) -> z (B, n).
    """

    def __init__(
        self,
        D: torch.Tensor,
        K: int,
        *,
        lam: float = 0.4,
        p_step: float = 0.012,
        p_max: float = 0.13,
    ) -> None:
        super().__init__(D, K, lam=lam)
        self._set_support_schedule(p_step, p_max)

    def _shrink(self, k: int, v: torch.Tensor) -> torch.Tensor:
        return self._shrink_selected(k, v, self.theta[k])

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, p_step={self.p_step:g}, p_max={self.p_max:g}"
