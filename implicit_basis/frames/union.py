"""Union of frames: the atoms of several frames side by side."""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import Tensor, nn

from .base import Frame

__all__ = ["Union"]


class Union(Frame):
    r"""Concatenate the atoms of several frames: ``D = [D_1, D_2, ...]``.

    ``groups`` lists the number of atoms of each sub-frame, so the sub-frames
    can serve as contiguous groups of a group lasso. Normalisation is per atom.
    By default (``normalize=None``) each sub-frame keeps its own ``normalize``
    setting, while True or False applies to every atom. The sub-frames are
    registered as submodules, so their learned parameters are the union's.

    Args:
        frames: the sub-frames, at least one, with a common dtype and device.
        normalize: None to follow each sub-frame, or a bool for all atoms.

    Shape:
        - t: (m,) or (B, m).
        - Output: (m, k) or (B, m, k) with k the sum of the sub-frames' atoms.
    """

    def __init__(self, frames: Iterable[Frame], *, normalize: bool | None = None) -> None:
        super().__init__(normalize=True if normalize is None else normalize)
        # None means that each sub-frame keeps its own setting.
        self.normalize: bool | None = normalize
        members = list(frames) if isinstance(frames, Iterable) else None
        if members is None or isinstance(frames, Frame):
            raise TypeError(
                f"frames must be a list of Frame instances; received {type(frames).__name__}. "
                f"Pass Union([frame_a, frame_b])."
            )
        if not members:
            raise ValueError("frames must contain at least one frame; received an empty list.")
        for index, frame in enumerate(members):
            if not isinstance(frame, Frame):
                raise TypeError(
                    f"frames[{index}] must be a Frame; received {type(frame).__name__}. "
                    f"Wrap the dictionary in a frame such as Learned."
                )
        first = members[0]
        for index, frame in enumerate(members[1:], start=1):
            if frame.dtype != first.dtype or frame.device != first.device:
                raise ValueError(
                    f"frames must share dtype and device; frames[0] is {first.dtype} on "
                    f"{first.device} but frames[{index}] is {frame.dtype} on {frame.device}. "
                    f"Convert them with frame.to(dtype=..., device=...)."
                )
        self.frames = nn.ModuleList(members)

    @property
    def n_atoms(self) -> int:
        return sum(frame.n_atoms for frame in self.frames)

    @property
    def groups(self) -> list[int]:
        return [frame.n_atoms for frame in self.frames]

    @property
    def learned(self) -> tuple[str, ...]:
        """Names of the learned parameters, prefixed by the index of their sub-frame."""
        return tuple(f"{index}.{name}" for index, frame in enumerate(self.frames) for name in frame.learned)

    def _normalized_atoms(self) -> bool | list[bool]:
        if self.normalize is not None:
            return self.normalize
        flags: list[bool] = []
        for frame in self.frames:
            frame_flags = frame._normalized_atoms()
            if isinstance(frame_flags, bool):
                frame_flags = [frame_flags] * frame.n_atoms
            flags.extend(frame_flags)
        return flags

    def _atoms(self, t: Tensor) -> Tensor:
        return torch.cat([frame._atoms(t) for frame in self.frames], dim=-1)

    def extra_repr(self) -> str:
        normalize = "per frame" if self.normalize is None else self.normalize
        return f"n_atoms={self.n_atoms}, groups={self.groups}, normalize={normalize}"
