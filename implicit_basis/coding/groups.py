"""Group structures: a partition of the atom indices."""

from __future__ import annotations

import numbers
from collections.abc import Sequence

import torch

__all__ = ["Groups", "group_norms", "group_sums"]


class Groups:
    """A partition of the atoms ``0 .. k-1`` into groups.

    Built from a list of group sizes (contiguous groups: ``[3, 2]`` is atoms
    ``{0, 1, 2}`` and ``{3, 4}``) or a list of index lists. Groups must be
    non-empty and disjoint; whether they cover every atom, and only atoms that
    exist, is checked by ``check(k)`` once ``k`` is known. An atom that should
    stay unpenalised goes in a group of its own with weight 0.
    """

    def __init__(self, groups) -> None:
        if isinstance(groups, Groups):
            self.members = [list(g) for g in groups.members]
            self.contiguous = groups.contiguous
            return
        if isinstance(groups, torch.Tensor):
            groups = groups.tolist()
        if not isinstance(groups, Sequence) or isinstance(groups, (str, bytes)) or not groups:
            raise ValueError(
                "groups must be a non-empty list of group sizes or of index lists; "
                f"got {groups!r}."
            )
        if all(isinstance(g, numbers.Integral) and not isinstance(g, bool) for g in groups):
            self.members = self._from_sizes(groups)
            self.contiguous = True
        else:
            self.members = self._from_lists(groups)
            self.contiguous = False

    @staticmethod
    def _from_sizes(sizes) -> list[list[int]]:
        members, start = [], 0
        for position, size in enumerate(sizes):
            size = int(size)
            if size <= 0:
                raise ValueError(
                    f"group sizes must be positive; group {position} has size {size}. "
                    "Drop empty groups."
                )
            members.append(list(range(start, start + size)))
            start += size
        return members

    @staticmethod
    def _from_lists(groups) -> list[list[int]]:
        members: list[list[int]] = []
        owner: dict[int, int] = {}
        for position, group in enumerate(groups):
            if isinstance(group, torch.Tensor):
                group = group.tolist()
            if not isinstance(group, Sequence) or isinstance(group, (str, bytes)):
                raise ValueError(
                    f"groups must be all sizes or all index lists; group {position} is {group!r}."
                )
            if len(group) == 0:
                raise ValueError(
                    f"group {position} is empty; groups must partition the atoms, "
                    "so drop the empty group."
                )
            indices = []
            for index in group:
                if isinstance(index, bool) or not isinstance(index, numbers.Integral):
                    raise ValueError(
                        f"group {position} contains {index!r}; atom indices must be integers."
                    )
                index = int(index)
                if index < 0:
                    raise ValueError(
                        f"group {position} contains the negative atom index {index}; "
                        "atom indices run from 0 to k - 1."
                    )
                if index in owner:
                    raise ValueError(
                        f"groups overlap: atom {index} is in group {owner[index]} and in group "
                        f"{position}; overlapping groups are not supported, so give every atom "
                        "exactly one group."
                    )
                owner[index] = position
                indices.append(index)
            members.append(indices)
        return members

    @property
    def n_groups(self) -> int:
        return len(self.members)

    @property
    def sizes(self) -> list[int]:
        return [len(g) for g in self.members]

    def check(self, k: int) -> None:
        """Raise ``ValueError`` unless the groups partition exactly ``k`` atoms."""
        covered = set()
        for position, group in enumerate(self.members):
            for index in group:
                if index >= k:
                    raise ValueError(
                        f"group {position} contains atom {index}, out of range for a dictionary "
                        f"of {k} atoms (indices 0 to {k - 1})."
                    )
            covered.update(group)
        if len(covered) != k:
            missing = sorted(set(range(k)) - covered)
            shown = ", ".join(str(i) for i in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise ValueError(
                f"groups do not cover every atom: atoms {shown}{more} are in no group. "
                "Groups must partition the atoms; put unpenalised atoms in a group of "
                "their own with weight 0."
            )

    def index(self, k: int, device=None) -> torch.Tensor:
        """Return the group id of each atom, int64 (k,)."""
        self.check(k)
        ids = torch.empty(k, dtype=torch.int64)
        for position, group in enumerate(self.members):
            ids[group] = position
        return ids.to(device)

    def default_weights(self, dtype=torch.float64, device=None) -> torch.Tensor:
        """Return sqrt(|g|) for every group, (g,)."""
        sizes = torch.tensor(self.sizes, dtype=dtype, device=device)
        return sizes.sqrt()

    def key(self) -> tuple:
        """Return a hashable description, used to cache solver objects per structure."""
        return tuple(tuple(g) for g in self.members)

    def __repr__(self) -> str:
        if self.contiguous:
            return f"Groups(sizes={self.sizes})"
        return f"Groups({self.members})"


def group_sums(values: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Sum ``values`` (B, k) over the atoms of each group; result (B, g)."""
    out = values.new_zeros(values.shape[0], n_groups)
    return out.index_add(1, index, values)


def group_norms(z: torch.Tensor, index: torch.Tensor, n_groups: int) -> torch.Tensor:
    """Return the l2 norm of each group of ``z`` (B, k); result (B, g).

    The square root is taken only where the squared norm is positive, so the
    gradient at a zero group is finite (zero) instead of NaN.
    """
    squared = group_sums(z * z, index, n_groups)
    positive = squared > 0
    safe = torch.where(positive, squared, torch.ones_like(squared))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(squared))
