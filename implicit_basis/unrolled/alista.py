"""ALISTA: analytic weight, learned steps and thresholds (Liu et al., 2019)."""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_dictionary, check_real
from .base import SupportSelection, UnrolledNetwork

__all__ = ["ALISTA", "analytic_weight"]


def analytic_weight(D: torch.Tensor) -> torch.Tensor:
    """Compute the analytic weight ``W`` of ALISTA in closed form.

    Column i of ``W`` is

        w_i = G^+ d_i / (d_i^T G^+ d_i),   G = D D^T,

    so that ``diag(W^T D) = 1``. It minimises ``||D^T w_i||_2^2`` subject to
    ``w_i^T d_i = 1`` (Lagrange conditions ``G w_i = mu d_i``), so ``W``
    minimises the Frobenius coherence ``||W^T D||_F`` subject to
    ``diag(W^T D) = 1`` when ``D`` has full row rank. ``G^+`` is the
    Moore-Penrose pseudo-inverse, computed from an eigenvalue decomposition
    with eigenvalues below ``m * eps * max eigenvalue`` treated as zero. It
    equals ``G^{-1}`` when ``D`` has full row rank. Otherwise the minimiser is
    not unique and this is the one of least norm. The computation runs in
    float64 and the result is cast to the dtype of ``D``.

    NOTE: the published ALISTA (Liu, Chen, Wang and Yin, 2019, "ALISTA:
    Analytic weights are as good as learned weights in LISTA", ICLR) states
    the same Frobenius problem but solves it with a fixed number of projected
    gradient steps (``matlabs/CalculateW.m`` in github.com/VITA-Group/ALISTA),
    so its weight approximates this one. Its theory uses the largest
    off-diagonal coherence instead, whose minimiser differs in general.

    Shape:
        D: (m, n); result: (m, n).

    Raises:
        TypeError: ``D`` is not a float32/float64 tensor.
        ValueError: ``D`` is not 2-D, contains NaN/inf, or has a zero column.
    """
    check_dictionary(D)
    A = D.detach().to(torch.float64)
    m = A.shape[0]
    eigenvalues, V = torch.linalg.eigh(A @ A.T)
    cutoff = m * torch.finfo(torch.float64).eps * eigenvalues.abs().max()
    inverse = torch.where(eigenvalues > cutoff, 1.0 / eigenvalues, torch.zeros_like(eigenvalues))
    U = V @ (inverse.unsqueeze(-1) * (V.T @ A))
    scale = (A * U).sum(dim=0)

    tiny = scale.abs() <= torch.finfo(torch.float64).eps
    if bool(tiny.any()):
        atoms = tiny.nonzero().flatten().tolist()
        raise ValueError(
            f"D has zero columns {atoms[:10]}; ALISTA needs d_i^T (D D^T)^+ d_i > 0 "
            "for every atom. Remove the zero columns."
        )
    return (U / scale).to(D.dtype)


class ALISTA(SupportSelection, UnrolledNetwork):
    """Analytic LISTA: a fixed analytic weight, a learned step and threshold per layer.

    Layer k (1-based) computes

        z_k = soft_ss(z_{k-1} - gamma_k W^T (D z_{k-1} - y), theta_k, p_k),

    where ``W`` is :func:`analytic_weight` of ``D``, fixed and stored as a
    buffer. The steps ``gamma_k`` and thresholds ``theta_k`` are the only
    learned parameters, 2K in all. ``soft_ss`` is the soft threshold with
    the support selection of LISTA-CPSS: the ``floor(p_k n)`` largest entries
    that exceed ``theta_k`` pass unchanged, with ``p_k = min(p_step * k, p_max)``.

    The steps start at ``gamma = 1 / ||W^T D||_2`` and the thresholds at
    ``gamma * lam``, one proximal-gradient step of that length on the lasso
    ``1/2 ||D z - y||^2 + lam ||z||_1`` preconditioned by ``W``. The code of
    Liu et al. starts from ``gamma = 1`` and ``theta = lam / L`` instead. A
    unit step overshoots, because ``||W^T D||_2`` exceeds 1 (2.3 for a
    50 x 100 Gaussian ``D``). On that ``D`` the untrained network has an NMSE
    of +3 dB with their start and -8 dB with this one. Both reach about
    -22 dB after the same short training.

    Args:
        D: dictionary with atoms as columns, float32 or float64.
        K: number of layers, >= 1.
        lam: lasso weight that sets the initial thresholds, >= 0.
        p_step: growth of the selected fraction per layer, in [0, 1].
        p_max: largest selected fraction, in [0, 1]. The defaults of both are
            those of :class:`LISTACPSS`.

    Shape:
        D: (m, n); forward: y (B, m) -> z (B, n).
    """

    W: torch.Tensor

    def __init__(
        self,
        D: torch.Tensor,
        K: int,
        *,
        lam: float = 0.4,
        p_step: float = 0.012,
        p_max: float = 0.13,
    ) -> None:
        super().__init__(D, K)
        self.lam = check_real(lam, "lam")
        self._set_support_schedule(p_step, p_max)
        self.register_buffer("W", analytic_weight(self.D))

        gram = self.W.to(torch.float64).T @ self.D.to(torch.float64)
        gamma = 1.0 / float(torch.linalg.matrix_norm(gram, ord=2))
        options = {"dtype": self.D.dtype, "device": self.D.device}
        theta = gamma * self.lam
        self.gamma = self._per_layer(torch.tensor(gamma, **options))
        self.theta = self._per_layer(torch.tensor(theta, **options))

    def layer(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        residual = z @ self.D.T - y
        v = z - self.gamma[k] * (residual @ self.W)
        return self._shrink_selected(k, v, self.theta[k])

    def layer_parameters(self, k: int) -> list[nn.Parameter]:
        return [self.gamma[k], self.theta[k]]

    def extra_repr(self) -> str:
        return (
            f"{super().extra_repr()}, lam={self.lam:g}, "
            f"p_step={self.p_step:g}, p_max={self.p_max:g}"
        )
