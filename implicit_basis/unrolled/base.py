"""The base class of the learned unrolled networks.

A network stores a fixed dictionary ``D`` (a buffer, not trained) and ``K``
layers. Each layer maps the current code estimate and the signal to the next
estimate, starting from ``z_0 = 0``. Subclasses implement ``layer`` and
``layer_parameters``. The base class validates inputs, runs the layers and
returns the last estimate or all of them. ``SupportSelection`` adds the
support-selection schedule that LISTA-CPSS and ALISTA share.
"""

from __future__ import annotations

import torch
from torch import nn

from ._checks import check_depth, check_dictionary, check_real, check_signal
from .classic import lipschitz_constant
from .shrinkage import soft_threshold_support_selection, support_fraction

__all__ = ["SupportSelection", "UnrolledNetwork"]


class UnrolledNetwork(nn.Module):
    """Base class of the LISTA family: ``K`` learned layers on a fixed dictionary.

    Args:
        D: dictionary with atoms as columns, float32 or float64. The network
            copies it into a buffer and creates its parameters with the dtype
            and device of ``D``; ``module.to(...)`` moves all of them.
        K: number of layers, >= 1.

    Shape:
        D: (m, n) with m measurements and n atoms.

    Raises:
        TypeError: ``D`` is not a float32/float64 tensor, or ``K`` is not an int.
        ValueError: ``D`` is not 2-D or contains NaN/inf, or ``K < 1``.
    """

    D: torch.Tensor

    def __init__(self, D: torch.Tensor, K: int) -> None:
        super().__init__()
        check_dictionary(D)
        self.num_layers = check_depth(K)
        self.register_buffer("D", D.detach().clone())

    @property
    def m(self) -> int:
        """Number of measurements (rows of ``D``)."""
        return self.D.shape[0]

    @property
    def n(self) -> int:
        """Number of atoms (columns of ``D``)."""
        return self.D.shape[1]

    def _lipschitz(self) -> float:
        # L = ||D||_2^2 of the stored dictionary, for initialisations.
        return float(lipschitz_constant(self.D.detach()))

    def _per_layer(self, value: torch.Tensor) -> nn.ParameterList:
        """Create one trainable copy of ``value`` per layer."""
        return nn.ParameterList([nn.Parameter(value.clone()) for _ in range(self.num_layers)])

    def layer(self, k: int, z: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Apply layer ``k`` (0-based) to the estimate ``z`` for the signals ``y``.

        Shape:
            z: (B, n); y: (B, m); result: (B, n).
        """
        raise NotImplementedError(f"{type(self).__name__} must implement layer().")

    def layer_parameters(self, k: int) -> list[nn.Parameter]:
        """Return the trainable parameters that belong to layer ``k`` (0-based).

        Layer-wise training uses this partition. A parameter shared by all
        layers is listed with layer 0, the first one trained.
        """
        raise NotImplementedError(f"{type(self).__name__} must implement layer_parameters().")

    def estimates(self, y: torch.Tensor, num_layers: int | None = None) -> list[torch.Tensor]:
        """Return the estimates of layers 1 to ``num_layers`` (all layers when None).

        The initial estimate ``z_0 = 0`` is not included.

        Shape:
            y: (B, m) or (m,); each estimate: (B, n), or (n,) for a single signal.

        Raises:
            TypeError: ``y`` is not a tensor or its dtype differs from that of ``D``.
            ValueError: ``y`` has the wrong shape, contains NaN/inf or is on
                another device than ``D``; ``num_layers`` is outside 1..K.
        """
        if num_layers is None:
            num_layers = self.num_layers
        check_depth(num_layers, name="num_layers")
        if num_layers > self.num_layers:
            raise ValueError(
                f"num_layers must be between 1 and the network depth {self.num_layers}, "
                f"got {num_layers}."
            )
        y, single = check_signal(y, self.D)

        z = y.new_zeros(y.shape[0], self.n)
        outputs = []
        for k in range(num_layers):
            z = self.layer(k, z, y)
            outputs.append(z.squeeze(0) if single else z)
        return outputs

    def forward(
        self, y: torch.Tensor, return_all: bool = False
    ) -> torch.Tensor | list[torch.Tensor]:
        """Estimate the sparse codes of ``y``.

        Args:
            y: signals, same dtype and device as ``D``.
            return_all: return the list of the ``K`` per-layer estimates (layer
                1 first) instead of the last one.

        Shape:
            y: (B, m) or (m,); result: (B, n), or (n,) for a single signal.

        Raises:
            TypeError: ``y`` is not a tensor or its dtype differs from that of ``D``.
            ValueError: ``y`` has the wrong shape, contains NaN/inf or is on
                another device than ``D``.
        """
        outputs = self.estimates(y)
        return outputs if return_all else outputs[-1]

    def extra_repr(self) -> str:
        return f"m={self.m}, n={self.n}, K={self.num_layers}"


class SupportSelection:
    """Support-selection schedule of LISTA-CPSS and ALISTA, mixed into an ``UnrolledNetwork``.

    In layer k (1-based) the ``floor(p_k n)`` entries of largest magnitude
    that also exceed the threshold pass unshrunk, with
    ``p_k = min(p_step * k, p_max)``.
    """

    p_step: float
    p_max: float

    def _set_support_schedule(self, p_step: float, p_max: float) -> None:
        """Check and store the growth ``p_step`` and the cap ``p_max``, both in [0, 1]."""
        self.p_step = check_real(p_step, "p_step", 0.0, 1.0)
        self.p_max = check_real(p_max, "p_max", 0.0, 1.0)

    def support_fraction(self, k: int) -> float:
        """Return the fraction of entries that layer ``k`` (0-based) keeps unshrunk."""
        return support_fraction(k + 1, self.p_step, self.p_max)

    def _shrink_selected(self, k: int, v: torch.Tensor, theta: torch.Tensor) -> torch.Tensor:
        """Soft-threshold ``v`` by ``theta`` with the support selection of layer ``k`` (0-based)."""
        return soft_threshold_support_selection(v, theta, self.support_fraction(k))
