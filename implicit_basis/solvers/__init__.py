"""Batched forward solvers in torch for every built-in problem kind.

``solve(problem, y, D, params)`` returns codes with exact zeros off the
support and a ``SolveInfo``. It runs without autograd on the input's device.

Algorithms, per kind:

- lasso, elastic net, group lasso, sparse group lasso: accelerated proximal
  gradient with adaptive restart (float32) to a loose duality gap. Then a
  polish solves the optimality conditions on the identified support exactly
  (a linear system for the lasso family, Newton's method for the group
  family) and verifies them on every atom (``penalised``). Samples the
  polish cannot finish follow the solution path from ``lam_max``
  (``continuation``, ``homotopy``).
- basis pursuit and basis pursuit denoising: the exact lasso path, followed
  to its end or to the weight where the residual norm is ``sigma``, and a
  verified dual certificate. Samples it cannot certify go to Bregman
  iteration or a root-find on the weight (``constrained``).
"""

from .solve import solve

__all__ = ["solve"]
