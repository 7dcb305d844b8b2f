"""The backend interface and the registry that ``sparse_code`` dispatches on."""

from __future__ import annotations

from typing import ClassVar

import torch

from ..coding.base import Problem
from ..info import SolveInfo
from ..inputs import Batch

__all__ = ["Backend", "get_backend", "register_backend"]

_REGISTRY: dict[str, type["Backend"]] = {}


class Backend:
    """A way to solve a batch of coding problems and differentiate the solution.

    Subclasses set ``name`` and ``required`` (the problem methods they call)
    and implement ``solve``. ``check`` runs before any work and raises a
    ``TypeError`` listing the methods a problem lacks.
    """

    name: ClassVar[str] = ""
    required: ClassVar[tuple[str, ...]] = ()

    def check(self, problem: Problem) -> None:
        missing = [name for name in self.required if not callable(getattr(problem, name, None))]
        if missing:
            raise TypeError(
                f"backend {self.name!r} cannot solve {type(problem).__name__}: it needs the "
                f"methods {', '.join(missing)}. Use backend='cvxpylayers' or implement them."
            )

    def solve(
        self,
        problem: Problem,
        batch: Batch,
        *,
        tol: float | None,
        max_iter: int | None,
        init: torch.Tensor | None,
        **options,
    ) -> tuple[torch.Tensor, SolveInfo]:
        """Return codes (B, k) in the compute dtype, carrying gradients, and their info."""
        raise NotImplementedError


def register_backend(cls: type[Backend]) -> type[Backend]:
    """Class decorator adding a backend to the registry under its ``name``."""
    _REGISTRY[cls.name] = cls
    return cls


def get_backend(name: str, problem: Problem) -> Backend:
    """Return a backend instance for ``name``; ``"auto"`` picks the best available."""
    if not isinstance(name, str):
        raise TypeError(f"backend must be a string; got {type(name).__name__}.")
    if name == "auto":
        name = _auto_backend(problem)
    if name not in _REGISTRY:
        known = ", ".join(sorted(["auto", *_REGISTRY]))
        raise ValueError(f"unknown backend {name!r}; expected one of: {known}.")
    backend = _REGISTRY[name]()
    backend.check(problem)
    return backend


def _auto_backend(problem: Problem) -> str:
    preferred = getattr(problem, "preferred_backend", None)
    if preferred in _REGISTRY:
        return preferred
    if "implicit" in _REGISTRY and callable(getattr(problem, "implicit_vjp", None)):
        return "implicit"
    return "cvxpylayers"
