"""The checked content of a problem file (``ProblemSpec``), its error type and the schema's names."""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from pathlib import Path

import torch

__all__ = [
    "CODE_KINDS",
    "DATA_SOURCES",
    "DTYPES",
    "FRAME_KEYS",
    "GROUP_KINDS",
    "PATH_VARIABLE",
    "PROBLEM_KEYS",
    "REPOSITORY_PROBLEMS",
    "SECTIONS",
    "SECTION_KEYS",
    "ProblemSpec",
    "SuiteError",
]

# Extra folders searched for problem files, before the repository's problems/.
PATH_VARIABLE = "IMPLICIT_BASIS_PROBLEMS"
# The repository's suite: problems/ next to the package folder. A
# non-editable install does not carry it, so such installs need PATH_VARIABLE
# or explicit paths.
REPOSITORY_PROBLEMS = Path(__file__).resolve().parents[2] / "problems"

DTYPES = {"float32": torch.float32, "float64": torch.float64}
DATA_SOURCES = ("pywt.ecg",)

# Keys of every section; the values of [frame] and [problem] depend on their kind.
SECTION_KEYS = {
    "": ("description", "source", "dtype"),
    "dictionary": ("kind", "m", "k", "seed"),
    "points": ("kind", "m", "domain", "seed", "per_sample"),
    "data": ("source", "observed", "domain", "standardize"),
    "codes": ("kind", "p"),
    "noise": ("snr_db",),
    "samples": ("test", "train", "seed", "train_seed"),
}
SECTIONS = ("dictionary", "frame", "points", "data", "codes", "noise", "problem", "samples")

# Keys of each frame family besides ``family`` and ``normalize``; the ones
# listed first are required.
FRAME_KEYS = {
    "fourier": (("n_freqs",), ("period",)),
    "legendre": (("degree",), ("domain",)),
    "chebyshev": (("degree",), ("domain",)),
    "radial_basis": (("n_centres",), ("domain", "width")),
    "gabor": (("n_centres", "freqs"), ("domain", "width")),
    "wavelet": (("kind", "n_octaves"), ("domain", "coarsest_scale", "spacing")),
    "damped_sinusoids": (("freqs", "decays"), ("onset",)),
    "union": (("members",), ()),
}

# Keys of each problem kind besides ``kind``: (required, optional).
PROBLEM_KEYS = {
    "lasso": (("lam",), ("lam_rule", "nonneg")),
    "elastic_net": (("lam", "l2"), ("lam_rule",)),
    "group_lasso": (("lam", "groups"), ("lam_rule", "group_size")),
    "sparse_group_lasso": (("lam", "groups", "l1_ratio"), ("lam_rule", "group_size")),
    "basis_pursuit": ((), ()),
    "basis_pursuit_denoising": (("sigma",), ("sigma_rule",)),
}
GROUP_KINDS = ("group_lasso", "sparse_group_lasso")
CODE_KINDS = ("bernoulli_gaussian", "group_bernoulli_gaussian")


class SuiteError(ValueError):
    """A problem file that cannot be read, or whose content is invalid.

    Attributes:
        path: the file.
        key: the offending key as ``[section] key`` (or the section), or "".
    """

    def __init__(self, path, key: str, message: str) -> None:
        self.path = Path(path) if path is not None else None
        self.key = key
        where = f"{self.path}: " if self.path is not None else ""
        super().__init__(where + message)


# -----------------------------------------------------------------------------
# The spec


@dataclass(frozen=True)
class ProblemSpec:
    """A checked problem file: its sections as plain dicts, defaults filled in.

    Attributes:
        name: the file's stem, with ``@snr=VALUE`` for one variant of an SNR list.
        path: the file.
        description, source, dtype: the top-level keys.
        sections: every section present, keyed by name (``frame`` members
            included); ``noise.snr_db`` is a float, or a tuple of floats for a
            file that lists several.
    """

    name: str
    path: Path
    description: str
    source: str
    dtype: str
    sections: dict = field(repr=False)

    def __getitem__(self, section: str) -> dict:
        return self.sections[section]

    def has(self, section: str) -> bool:
        return section in self.sections

    @property
    def kind(self) -> str:
        """The problem kind (``"lasso"``, ``"group_lasso"``, ...)."""
        return self.sections["problem"]["kind"]

    @property
    def synthetic(self) -> bool:
        """True when the signals are drawn from known codes (no ``[data]`` section)."""
        return "data" not in self.sections

    @property
    def snr_db(self):
        return self.sections.get("noise", {}).get("snr_db", math.inf)

    def variants(self) -> list["ProblemSpec"]:
        """Return one spec per value of an SNR list, or ``[self]``."""
        snr = self.snr_db
        if not isinstance(snr, tuple):
            return [self]
        specs = []
        for value in snr:
            sections = copy.deepcopy(self.sections)
            sections["noise"]["snr_db"] = value
            specs.append(replace(self, name=f"{self.name}@snr={_format_snr(value)}", sections=sections))
        return specs

    def summary(self) -> dict:
        """Return the fields that describe the problem in one line: kind, sizes, samples, SNR."""
        samples = self.sections["samples"]
        if self.has("dictionary"):
            dictionary = f"gaussian {self['dictionary']['m']}x{self['dictionary']['k']}"
        else:
            family = self["frame"]["family"]
            if family == "union":
                family = "+".join(member["family"] for member in self["frame"]["members"])
            dictionary = family
        snr = self.snr_db
        snr_text = ",".join(_format_snr(v) for v in snr) if isinstance(snr, tuple) else _format_snr(snr)
        return {
            "name": self.name,
            "kind": self.kind,
            "dictionary": dictionary,
            "test": samples["test"],
            "train": samples["train"],
            "snr_db": snr_text if self.synthetic else "data",
            "dtype": self.dtype,
            "description": self.description,
        }

    def to_dict(self) -> dict:
        """Return the spec as JSON-ready data (``inf`` written as the string "inf")."""
        return _json_ready(
            {"name": self.name, "path": str(self.path), "description": self.description,
             "source": self.source, "dtype": self.dtype, **self.sections}
        )


def _format_snr(value: float) -> str:
    return "inf" if math.isinf(value) else f"{value:g}"


def _json_ready(value):
    if isinstance(value, dict):
        return {key: _json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_json_ready(item) for item in value]
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    return value
