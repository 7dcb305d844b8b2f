"""The implicit backend: a batched torch solve, then a backward through the KKT system.

The forward pass solves every sample to a tight duality gap and polishes the
code on its support (``implicit_basis.solvers``). The backward pass solves
the optimality conditions' linearisation restricted to the support, so its
cost is O(|S|^3 + m |S|) per sample whatever the number of atoms or of
iterations, and autograd stores nothing of the iterations. For the lasso
family with a shared dictionary the forward's polish has already factored
each support system in float64. Those factors are kept for the backward,
which then costs O(|S|^2 + m |S|) per sample.
"""

from __future__ import annotations

import numbers

import torch
from torch.autograd.function import once_differentiable

from ..coding.base import Problem
from ..coding.lasso import LassoFamilyProblem
from ..inputs import Batch
from ..solvers.linalg import SupportFactor
from .base import Backend, register_backend

__all__ = ["DENSE_SUPPORT_LIMIT", "ImplicitBackend"]

# Supports up to this size are solved with a dense batched Cholesky factor;
# larger ones with matrix-free conjugate gradients, which never form the
# |S| x |S| system (at |S| = 2048 one float64 system takes 32 MiB per sample).
DENSE_SUPPORT_LIMIT = 2048

# Parameters that may carry gradients, as named in ``Problem.resolve``.
_DIFFERENTIABLE = ("lam", "l2", "l1_ratio", "sigma", "weights")


@register_backend
class ImplicitBackend(Backend):
    """Solve in batched torch and differentiate by the implicit function theorem.

    Options: ``dense_limit`` (int, default ``DENSE_SUPPORT_LIMIT``), the
    support size above which the backward uses conjugate gradients.

    Gradients: exact on the identified support. At a non-differentiable point
    (an atom exactly at its threshold, a zero group at its threshold) the
    returned value is the element of the generalised Jacobian for that
    support, with ties treated as inactive; such samples are flagged in
    ``info.degenerate``. Singular support systems get the minimum-norm solution.

    NOTE: the backward is ``once_differentiable``: double backward raises
    torch's "once_differentiable" RuntimeError, and ``torch.func`` transforms
    (``grad``, ``vmap``, ``jacrev``) are not supported through this layer.
    """

    name = "implicit"
    required = ("implicit_vjp", "duality_gap_batched")

    def solve(self, problem, batch, *, tol, max_iter, init, dense_limit=DENSE_SUPPORT_LIMIT, **options):
        from .. import solvers

        if options:
            raise TypeError(
                f"unknown options for the implicit backend: {', '.join(sorted(options))}; "
                "it accepts dense_limit."
            )
        if isinstance(dense_limit, bool) or not isinstance(dense_limit, numbers.Integral) or dense_limit < 0:
            raise ValueError(
                f"dense_limit must be a non-negative int, the support size up to which the "
                f"backward uses a dense Cholesky factor; got {dense_limit!r}."
            )
        detached = {k: (v.detach() if isinstance(v, torch.Tensor) else v) for k, v in batch.params.items()}
        # The support factors cost B |S|^2 floats, so they are kept only for
        # a backward that will use them.
        keep_factor = (
            isinstance(problem, LassoFamilyProblem)
            and batch.D.dim() == 2
            and dense_limit > 0
            and _needs_gradient(batch)
        )
        with torch.no_grad():
            solved = solvers.solve(
                problem, batch.y.detach(), batch.D.detach(), detached,
                tol=tol, max_iter=max_iter, init=init,
                return_factor=keep_factor, factor_limit=int(dense_limit),
            )
        z_star, info = solved[:2]
        factor = solved[2] if keep_factor else None
        z = attach_implicit_gradient(problem, batch, z_star, int(dense_limit), factor)
        return z, info


def _differentiable_names(batch: Batch) -> list[str]:
    return [name for name in _DIFFERENTIABLE if isinstance(batch.params.get(name), torch.Tensor)]


def _needs_gradient(batch: Batch) -> bool:
    inputs = [batch.y, batch.D, *(batch.params[name] for name in _differentiable_names(batch))]
    return torch.is_grad_enabled() and any(t.requires_grad for t in inputs)


def attach_implicit_gradient(problem: Problem, batch: Batch, z_star: torch.Tensor, dense_limit: int, factor=None):
    """Return ``z_star`` connected to the autograd graph of the batch's inputs.

    ``factor``, a ``solvers.linalg.SupportFactor`` of the solve that produced
    ``z_star`` on this batch's ``y`` and ``D``, lets a lasso-family backward
    skip forming and factoring the support systems where it matches the
    support of ``z_star``. Without it every system is formed and factored.
    """
    names = _differentiable_names(batch)
    values = [batch.params[name] for name in names]
    if not _needs_gradient(batch):
        return z_star
    fixed = {k: v for k, v in batch.params.items() if k not in names}
    context = (problem, tuple(names), fixed, dense_limit, factor)
    return _ImplicitCodes.apply(z_star, context, batch.y, batch.D, *values)


class _ImplicitCodes(torch.autograd.Function):
    """Identity on the solved codes whose backward is the KKT vector-Jacobian product."""

    @staticmethod
    def forward(z_star, context, y, D, *values):
        return z_star.clone()

    @staticmethod
    def setup_context(ctx, inputs, output):
        z_star, context, y, D, *values = inputs
        problem, names, fixed, dense_limit, factor = context
        ctx.context = (problem, names, fixed, dense_limit)
        ctx.has_factor = factor is not None
        # Saved with the inputs, so that autograd frees the factor after the backward.
        factor_tensors = () if factor is None else factor.tensors()
        ctx.save_for_backward(z_star, y, D, *values, *factor_tensors)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad_z):
        problem, names, fixed, dense_limit = ctx.context
        z, y, D, *rest = ctx.saved_tensors
        values = rest[: len(names)]
        factor = SupportFactor.from_tensors(rest[len(names):]) if ctx.has_factor else None
        needs = set()
        if ctx.needs_input_grad[2]:
            needs.add("y")
        if ctx.needs_input_grad[3]:
            needs.add("D")
        for position, name in enumerate(names):
            if ctx.needs_input_grad[4 + position]:
                needs.add(name)

        # The linear algebra that decides the gradient runs in float64.
        params = {name: value.double() for name, value in zip(names, values)}
        for key, value in fixed.items():
            params[key] = value.double() if isinstance(value, torch.Tensor) and value.is_floating_point() else value
        reuse = {} if factor is None else {"factor": factor}
        grads, _ = problem.implicit_vjp(
            grad_z.double(), z.double(), y.double(), D.double(), params, frozenset(needs), dense_limit, **reuse
        )

        def cast(name, like):
            grad = grads.get(name)
            return None if grad is None else grad.to(like.dtype)

        return (
            None,
            None,
            cast("y", y),
            cast("D", D),
            *[cast(name, value) for name, value in zip(names, values)],
        )
