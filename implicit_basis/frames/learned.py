"""Learned frame: a free dictionary on a fixed grid of sample points."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor

from ._parameters import as_vector, check_count
from .base import Frame

__all__ = ["Learned"]

# Tolerance for matching t to the grid, relative to max |grid|, by dtype of t.
# float32 t needs the larger value because rounding t once moves it by ~6e-8.
_GRID_RTOL = {torch.float32: 1e-6, torch.float64: 1e-9}


class Learned(Frame):
    r"""Free dictionary ``W`` of shape (n_grid, k) on a fixed grid of sample points.

    For signals that only exist on a grid (image patches, fixed-length windows).
    ``frame(t)`` gathers the rows of ``W`` at the grid points ``t``: ``D[i, j] =
    W[index of t_i in grid, j]``. Every ``t`` must lie on the grid, within
    1e-9 (float64 t) or 1e-6 (float32 t) relative to ``max |grid|``. The atoms do
    not vary with ``t``: the derivative with respect to ``t`` is zero, and
    ``t.grad`` is a zero tensor when ``t`` requires grad.

    Args:
        grid: strictly increasing sample points, shape (n_grid,).
        n_atoms: number of atoms k. Required unless ``init`` is given.
        init: initial dictionary of shape (n_grid, k). Without it, the columns
            are standard normal draws scaled to unit l2 norm over the grid.
        learn: ``"dictionary"`` or True (default) to learn ``W``, False to fix it.
        generator: random generator for the default initialisation.
        normalize: divide each atom by its l2 norm over the unmasked samples.
        dtype: floating dtype of the dictionary (default: torch's default dtype).
        device: device of the grid and dictionary.

    Shape:
        - t: (m,) or (B, m), values on the grid.
        - Output: (m, k) or (B, m, k).
    """

    learnable = ("dictionary",)

    def __init__(
        self,
        grid: object,
        n_atoms: int | None = None,
        *,
        init: object = None,
        learn: bool | str | Iterable[str] = True,
        generator: torch.Generator | None = None,
        normalize: bool = True,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
    ) -> None:
        super().__init__(normalize=normalize)
        factory, learned = self._parse_options(learn, dtype, device)

        # The grid is kept in float64 whatever the frame's dtype, so that a frame
        # built in float32 and converted with .double() still matches float64 t
        # to 1e-9. Its bits are stored as int64, which .to(dtype) leaves alone.
        grid_tensor = as_vector("grid", grid, dtype=torch.float64, device=device)
        steps = grid_tensor.diff()
        if bool((steps <= 0).any()):
            index = int(torch.nonzero(steps <= 0)[0, 0])
            raise ValueError(
                f"grid must be strictly increasing; grid[{index}] = {grid_tensor[index].item()} "
                f"and grid[{index + 1}] = {grid_tensor[index + 1].item()}. Sort the grid and "
                f"remove duplicates, for example torch.unique(grid)."
            )
        n_grid = grid_tensor.numel()
        dictionary = self._initial_dictionary(init, n_atoms, n_grid, generator, factory)

        self.register_buffer("grid_float64_bits", grid_tensor.view(torch.int64))
        self._register_tensor("dictionary", dictionary, learn="dictionary" in learned)

    @staticmethod
    def _initial_dictionary(
        init: object,
        n_atoms: int | None,
        n_grid: int,
        generator: torch.Generator | None,
        factory: dict,
    ) -> Tensor:
        if init is None:
            if n_atoms is None:
                raise TypeError(
                    "Learned needs n_atoms or init; received neither. Pass n_atoms for a "
                    "random initialisation or init, a matrix of shape (n_grid, k)."
                )
            k = check_count("n_atoms", n_atoms, minimum=1)
            draws = torch.randn((n_grid, k), generator=generator, dtype=torch.float64)
            draws = draws / torch.linalg.vector_norm(draws, dim=0)
            return draws.to(**factory)

        if isinstance(init, Tensor):
            matrix = init.detach().to(**factory).clone()
        else:
            matrix = torch.as_tensor(init, **factory).clone()
        if matrix.ndim != 2 or matrix.shape[0] != n_grid:
            raise ValueError(
                f"init must have shape (n_grid, k) = ({n_grid}, k), one row per grid point; "
                f"received shape {tuple(matrix.shape)}. Transpose it if its atoms are rows."
            )
        if n_atoms is not None and check_count("n_atoms", n_atoms, minimum=1) != matrix.shape[1]:
            raise ValueError(
                f"n_atoms = {n_atoms} does not match init with {matrix.shape[1]} columns. "
                f"Pass n_atoms=None or the number of columns of init."
            )
        if matrix.shape[1] == 0:
            raise ValueError(
                "init must have at least one column (atom); received 0 columns. Pass a "
                "matrix of shape (n_grid, k) with k >= 1."
            )
        finite = torch.isfinite(matrix)
        if not bool(finite.all()):
            row, column = torch.nonzero(~finite)[0].tolist()
            raise ValueError(
                f"init must be finite; init[{row}, {column}] = {matrix[row, column].item()}. "
                f"Replace the non-finite entries."
            )
        return matrix

    @property
    def n_atoms(self) -> int:
        return self._value("dictionary").shape[1]

    @property
    def grid(self) -> Tensor:
        """Grid points in the frame's dtype, shape (n_grid,)."""
        return self.grid_float64_bits.view(torch.float64).to(self.dtype)

    def grid_indices(self, t: Tensor) -> Tensor:
        """Return the index in ``grid`` of every value of ``t``; raise if one is off the grid.

        Shape:
            - t: (m,) or (B, m).
            - Output: int64, same shape as t.
        """
        grid = self.grid_float64_bits.view(torch.float64)
        points = t.detach().to(torch.float64)
        n_grid = grid.numel()
        upper = torch.searchsorted(grid, points.contiguous()).clamp(max=n_grid - 1)
        lower = (upper - 1).clamp(min=0)
        distance_upper = (grid[upper] - points).abs()
        distance_lower = (points - grid[lower]).abs()
        nearest = torch.where(distance_upper < distance_lower, upper, lower)
        distance = torch.minimum(distance_upper, distance_lower)

        scale = grid.abs().max().clamp(min=torch.finfo(torch.float64).tiny)
        tolerance = _GRID_RTOL.get(t.dtype, 1e-6) * scale
        off_grid = distance > tolerance
        if bool(off_grid.any()):
            index = tuple(torch.nonzero(off_grid)[0].tolist())
            where = index[0] if len(index) == 1 else index
            raise ValueError(
                f"t[{where}] = {t[index].item()} is not on the grid of Learned: the nearest grid "
                f"point is {grid[nearest[index]].item()}, at distance {distance[index].item():.3g} "
                f"> tolerance {tolerance.item():.3g}. A learned dictionary exists only at its "
                f"grid points; pass t values taken from frame.grid."
            )
        return nearest

    def _atoms(self, t: Tensor) -> Tensor:
        D = self._value("dictionary")[self.grid_indices(t)]
        if t.requires_grad:
            # The atoms do not depend on t. Connecting t with a zero factor makes
            # its gradient a zero tensor instead of leaving t out of the graph.
            D = D + 0 * t.unsqueeze(-1)
        return D

    def extra_repr(self) -> str:
        return f"n_grid={self.grid_float64_bits.numel()}, " + super().extra_repr()
