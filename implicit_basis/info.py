"""Per-sample outcome of a solve."""

from __future__ import annotations

from dataclasses import dataclass, fields

import torch

__all__ = ["SolveInfo"]


@dataclass
class SolveInfo:
    """What a backend reports for each sample of a solve.

    Attributes:
        converged: bool (B,), the stopping test was met.
        gap: (B,), the relative duality gap reached (for basis pursuit, the
            relative gap of the dual certificate built from the code).
        iterations: int64 (B,), iterations spent on the sample. The implicit
            backend counts its support polish rounds and solution-path steps
            too, so the count can exceed ``max_iter``, which bounds only the
            proximal-gradient iterations.
        support: bool (B, k), the atoms with a nonzero code.
        degenerate: bool (B,), the solution sits at a non-differentiable point
            (a tie at the threshold, a singular system on the support); the
            returned gradient is the documented element of the generalised
            Jacobian, not a derivative.
        backend: name of the backend that produced the result.

    Shape:
        For an unbatched call the batch dimension is removed.
    """

    converged: torch.Tensor
    gap: torch.Tensor
    iterations: torch.Tensor
    support: torch.Tensor
    degenerate: torch.Tensor
    backend: str = ""

    def unbatched(self) -> "SolveInfo":
        """Return a copy with the batch dimension of size 1 removed."""
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name, value in values.items():
            if isinstance(value, torch.Tensor):
                values[name] = value[0]
        return SolveInfo(**values)

    @classmethod
    def empty(cls, k: int, dtype: torch.dtype, device: torch.device, backend: str) -> "SolveInfo":
        """Return the info of an empty batch."""
        return cls(
            converged=torch.zeros(0, dtype=torch.bool, device=device),
            gap=torch.zeros(0, dtype=dtype, device=device),
            iterations=torch.zeros(0, dtype=torch.int64, device=device),
            support=torch.zeros(0, k, dtype=torch.bool, device=device),
            degenerate=torch.zeros(0, dtype=torch.bool, device=device),
            backend=backend,
        )
