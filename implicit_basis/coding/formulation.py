"""The cvxpy form of a coding problem, as handed to cvxpylayers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import cvxpy as cp
import torch

__all__ = ["CvxpyFormulation"]


@dataclass
class CvxpyFormulation:
    """A DPP cvxpy problem with the recipe for its parameter values.

    Attributes:
        problem: the ``cvxpy.Problem``; ``problem.is_dpp()`` is True.
        parameters: its ``cvxpy.Parameter`` objects, in the order ``values``
            returns their tensors.
        variable: the code variable ``z`` of shape (k,).
        values: ``values(y, D, params)`` returns the batched tensors that fill
            ``parameters`` for signals ``y`` (B, m), dictionary ``D`` (m, k) or
            (B, m, k) and the problem's resolved parameters. The tensors keep
            the autograd graph of ``y``, ``D`` and the penalties.
    """

    problem: cp.Problem
    parameters: list[cp.Parameter]
    variable: cp.Variable
    values: Callable[[torch.Tensor, torch.Tensor, dict], list[torch.Tensor]]
