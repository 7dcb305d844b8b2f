"""Step-size LISTA: ISTA on the lasso with one learned step per layer."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_real
from .base import UnrolledNetwork
from .shrinkage import soft_threshold

__all__ = ["StepLISTA"]


class StepLISTA(UnrolledNetwork):
    """ISTA on the lasso with a learned step size in every layer.

    Layer k computes the proximal-gradient step of length ``s_k`` on
    ``1/2 ||D z - y||^2 + lam ||z||_1``:

        z_{k+1} = soft(z_k - s_k D^T (D z_k - y), s_k lam),   z_0 = 0.

    The steps start at ``1 / L`` with ``L = ||D||_2^2``, so the untrained network
    returns ``K`` ISTA iterations. ``lam`` is fixed unless ``learn_lam`` is set;
    a learned ``lam`` is shared by all layers (and listed with layer 0 for
    layer-wise training). Only the steps (and ``lam``) are learned, K (or K + 1)
    scalars in all.

    Args:
        D: dictionary with atoms as columns, float32 or float64.
        K: number of layers, >= 1.
        lam: lasso weight, >= 0. The default 0.4 is that of the other
            networks of the family.
        learn_lam: make ``lam`` a trainable parameter.

    Shape:
        D: (m, n); forward: y (B, m) -> z (B, n).
    """

    lam: torch.Tensor

    def __init__(
        self, D: torch.Tensor, K: int, *, lam: float = 0.4, learn_lam: bool = False
    ) -> None:
        super().__init__(D, K)
        lam_value = check_real(lam, "lam")
        options = {"dtype": self.D.dtype, "device": self.D.device}
        lam_tensor = torch.tensor(lam_value, **options)
        if learn_lam:
            self.lam = nn.Parameter(lam_tensor)
        else:
            self.register_buffer("lam", lam_tensor)
        self.learn_lam = bool(learn_lam)

        step = 1.0 / self._lipschitz()
        self.step = self._per_layer(torch.tensor(step, **options))

    def layer(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        gradient = (z @ self.D.T - y) @ self.D
        step = self.step[k]
        return soft_threshold(z - step * gradient, step * self.lam)

    def layer_parameters(self, k: int) -> list[nn.Parameter]:
        shared = [self.lam] if (self.learn_lam and k == 0) else []
        return [self.step[k], *shared]

    def extra_repr(self) -> str:
        lam = float(self.lam.detach())
        return f"{super().extra_repr()}, lam={lam:g}, learn_lam={self.learn_lam}"
