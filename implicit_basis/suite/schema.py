"""Checking the content of a problem file: every section, key and value.

Every error is a ``SuiteError`` that names the file, the key and what is
allowed.
"""

from __future__ import annotations

import math
from pathlib import Path

from .spec import (
    CODE_KINDS,
    DATA_SOURCES,
    DTYPES,
    FRAME_KEYS,
    GROUP_KINDS,
    PROBLEM_KEYS,
    SECTION_KEYS,
    SECTIONS,
    ProblemSpec,
    SuiteError,
)

__all__ = ["parse"]


class _Reader:
    """Reads the keys of one file, raising ``SuiteError`` with the file and key."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, key: str, message: str):
        raise SuiteError(self.path, key, message)

    def keys(self, table: dict, where: str, required, optional) -> None:
        allowed = (*required, *optional)
        for key in table:
            if key not in allowed:
                self.fail(
                    _label(where, key),
                    f"unknown key {key!r} in {_section(where)}; allowed keys: {', '.join(allowed)}.",
                )
        for key in required:
            if key not in table:
                self.fail(_label(where, key), f"missing key {_label(where, key)}.")

    def invalid(self, where: str, key: str, value, expected: str):
        self.fail(_label(where, key), f"invalid value for {_label(where, key)}: {value!r}; expected {expected}.")

    def integer(self, table, where, key, minimum: int, default=None) -> int:
        value = table.get(key, default)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            self.invalid(where, key, value, f"an integer >= {minimum}")
        return value

    def number(self, table, where, key, minimum=-math.inf, maximum=math.inf, default=None,
               open_minimum=False, allow_inf=False, meaning="") -> float:
        value = table.get(key, default)
        if math.isinf(minimum) and math.isinf(maximum):
            expected = "a finite number"
        elif math.isinf(maximum):
            expected = f"a number {'>' if open_minimum else '>='} {minimum:g}"
        else:
            expected = f"a number in {'(' if open_minimum else '['}{minimum:g}, {maximum:g}]"
        if allow_inf:
            expected += " or inf"
        if meaning:
            expected += f" ({meaning})"
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value):
            self.invalid(where, key, value, expected)
        value = float(value)
        if math.isinf(value) and allow_inf and value > 0:
            return value
        below = value <= minimum if open_minimum else value < minimum
        if below or value > maximum or math.isinf(value):
            self.invalid(where, key, value, expected)
        return value

    def choice(self, table, where, key, allowed, default=None) -> str:
        value = table.get(key, default)
        if value not in allowed:
            self.invalid(where, key, value, "one of " + ", ".join(repr(a) for a in allowed))
        return value

    def boolean(self, table, where, key, default) -> bool:
        value = table.get(key, default)
        if not isinstance(value, bool):
            self.invalid(where, key, value, "true or false")
        return value

    def string(self, table, where, key, default=None) -> str:
        value = table.get(key, default)
        if not isinstance(value, str):
            self.invalid(where, key, value, "a string")
        return value

    def domain(self, table, where, key="domain") -> list[float]:
        value = table.get(key, [0.0, 1.0])
        ok = (
            isinstance(value, list) and len(value) == 2
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value)
            and value[0] < value[1]
        )
        if not ok:
            self.invalid(where, key, value, "a pair [a, b] of finite numbers with a < b")
        return [float(v) for v in value]

    def numbers(self, table, where, key, minimum=-math.inf, scalar_ok=False) -> list[float] | float:
        value = table.get(key)
        if scalar_ok and isinstance(value, (int, float)) and not isinstance(value, bool):
            return self.number(table, where, key, minimum=minimum)
        ok = isinstance(value, list) and len(value) > 0 and all(
            isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) and v >= minimum
            for v in value
        )
        if not ok:
            bound = "" if math.isinf(minimum) else f" >= {minimum:g}"
            self.invalid(where, key, value, f"a non-empty list of finite numbers{bound}")
        return [float(v) for v in value]


def _label(where: str, key: str) -> str:
    return f"[{where}] {key}" if where else key


def _section(where: str) -> str:
    return f"[{where}]" if where else "the top level"


def parse(raw: dict, path: Path) -> ProblemSpec:
    """Check the parsed TOML of ``path`` and return its spec, defaults filled in."""
    read = _Reader(path)
    top = {key: value for key, value in raw.items() if not isinstance(value, dict)}
    for key, value in raw.items():
        if isinstance(value, dict) and key not in SECTIONS:
            read.fail(f"[{key}]", f"unknown section [{key}]; allowed sections: {', '.join(SECTIONS)}.")
        if key in SECTIONS and not isinstance(value, dict):
            read.fail(f"[{key}]", f"{key} must be a section [{key}] with its keys; got {value!r}.")
    read.keys(top, "", ("description",), ("source", "dtype"))
    description = read.string(top, "", "description")
    source = read.string(top, "", "source", default="")
    dtype = read.choice(top, "", "dtype", tuple(DTYPES), default="float64")

    sections: dict = {}
    has_dictionary, has_frame = "dictionary" in raw, "frame" in raw
    if has_dictionary == has_frame:
        read.fail("[dictionary]", "give exactly one of the sections [dictionary] and [frame].")
    if has_dictionary:
        for other in ("points", "data"):
            if other in raw:
                read.fail(f"[{other}]", f"section [{other}] goes with a [frame], not a [dictionary].")
        sections["dictionary"] = _parse_dictionary(read, raw["dictionary"])
    else:
        sections["frame"] = _parse_frame(read, raw["frame"], "frame")
        if ("points" in raw) == ("data" in raw):
            read.fail("[points]", "a [frame] needs exactly one of the sections [points] and [data].")
        if "points" in raw:
            sections["points"] = _parse_points(read, raw["points"])
        else:
            sections["data"] = _parse_data(read, raw["data"])

    for name in ("problem", "samples"):
        if name not in raw:
            read.fail(f"[{name}]", f"missing section [{name}].")
    sections["problem"] = _parse_problem(read, raw["problem"], has_frame)
    sections["samples"] = _parse_samples(read, raw["samples"])

    if "data" in sections:
        for name in ("codes", "noise"):
            if name in raw:
                read.fail(f"[{name}]", f"section [{name}] is for synthetic signals; a [data] problem has none.")
        if sections["problem"].get("sigma_rule") == "noise":
            read.fail("[problem] sigma_rule", "sigma_rule 'noise' needs synthetic noise; use 'absolute' with [data].")
    else:
        if "codes" not in raw:
            read.fail("[codes]", "missing section [codes]; synthetic problems need one.")
        sections["codes"] = _parse_codes(read, raw["codes"], sections["problem"]["kind"])
        sections["noise"] = _parse_noise(read, raw.get("noise", {}))
    return ProblemSpec(path.stem, path, description, source, dtype, sections)


def _parse_dictionary(read: _Reader, table: dict) -> dict:
    where = "dictionary"
    read.keys(table, where, SECTION_KEYS[where], ())
    return {
        "kind": read.choice(table, where, "kind", ("gaussian",)),
        "m": read.integer(table, where, "m", 1),
        "k": read.integer(table, where, "k", 1),
        "seed": read.integer(table, where, "seed", 0),
    }


def _parse_frame(read: _Reader, table: dict, where: str) -> dict:
    if "family" not in table:
        read.fail(_label(where, "family"), f"missing key {_label(where, 'family')}.")
    family = read.choice(table, where, "family", tuple(FRAME_KEYS))
    required, optional = FRAME_KEYS[family]
    read.keys(table, where, ("family", *required), (*optional, "normalize"))
    out = {"family": family, "normalize": read.boolean(table, where, "normalize", True)}
    if family == "fourier":
        out["n_freqs"] = read.integer(table, where, "n_freqs", 0)
        out["period"] = read.number(table, where, "period", 0.0, default=1.0, open_minimum=True)
    elif family in ("legendre", "chebyshev"):
        out["degree"] = read.integer(table, where, "degree", 0)
        out["domain"] = read.domain(table, where)
    elif family in ("radial_basis", "gabor"):
        out["n_centres"] = read.integer(table, where, "n_centres", 1)
        out["domain"] = read.domain(table, where)
        out["width"] = None
        if "width" in table:
            out["width"] = read.number(table, where, "width", 0.0, open_minimum=True)
        if family == "gabor":
            out["freqs"] = read.numbers(table, where, "freqs")
    elif family == "wavelet":
        out["kind"] = read.choice(table, where, "kind", ("ricker", "morlet"))
        out["n_octaves"] = read.integer(table, where, "n_octaves", 1)
        out["domain"] = read.domain(table, where)
        out["coarsest_scale"] = None
        if "coarsest_scale" in table:
            out["coarsest_scale"] = read.number(table, where, "coarsest_scale", 0.0, open_minimum=True)
        out["spacing"] = read.number(table, where, "spacing", 0.0, default=1.0, open_minimum=True)
    elif family == "damped_sinusoids":
        out["freqs"] = read.numbers(table, where, "freqs")
        out["decays"] = read.numbers(table, where, "decays", minimum=0.0, scalar_ok=True)
        out["onset"] = read.number(table, where, "onset", default=0.0)
    else:
        members = table["members"]
        if not isinstance(members, list) or not members or not all(isinstance(m, dict) for m in members):
            read.invalid(where, "members", members, "a non-empty array of tables, one per sub-frame")
        out["members"] = []
        for index, member in enumerate(members):
            if member.get("family") == "union":
                read.invalid(f"{where}.members.{index}", "family", "union", "a family other than 'union'")
            out["members"].append(_parse_frame(read, member, f"{where}.members.{index}"))
    return out


def _parse_points(read: _Reader, table: dict) -> dict:
    where = "points"
    kind = read.choice(table, where, "kind", ("grid", "random"))
    required = ("kind", "m", "seed") if kind == "random" else ("kind", "m")
    optional = ("domain", "per_sample") if kind == "random" else ("domain",)
    read.keys(table, where, required, optional)
    out = {"kind": kind, "m": read.integer(table, where, "m", 1), "domain": read.domain(table, where)}
    if kind == "random":
        out["seed"] = read.integer(table, where, "seed", 0)
        out["per_sample"] = read.boolean(table, where, "per_sample", False)
    return out


def _parse_data(read: _Reader, table: dict) -> dict:
    where = "data"
    read.keys(table, where, ("source", "observed"), ("domain", "standardize"))
    return {
        "source": read.choice(table, where, "source", DATA_SOURCES),
        "observed": read.number(table, where, "observed", 0.0, 1.0, open_minimum=True),
        "domain": read.domain(table, where),
        "standardize": read.boolean(table, where, "standardize", True),
    }


def _parse_codes(read: _Reader, table: dict, kind: str) -> dict:
    where = "codes"
    read.keys(table, where, SECTION_KEYS[where], ())
    code_kind = read.choice(table, where, "kind", CODE_KINDS)
    if code_kind == "group_bernoulli_gaussian" and kind not in GROUP_KINDS:
        read.invalid(where, "kind", code_kind, f"'bernoulli_gaussian' for a {kind} problem (group codes need groups)")
    return {"kind": code_kind, "p": read.number(table, where, "p", 0.0, 1.0)}


def _parse_noise(read: _Reader, table: dict) -> dict:
    where = "noise"
    read.keys(table, where, (), SECTION_KEYS[where])
    value = table.get("snr_db", math.inf)
    expected = "a number of dB, inf, or a non-empty list of them"
    if isinstance(value, list):
        if not value:
            read.invalid(where, "snr_db", value, expected)
        values = tuple(read.number({"snr_db": v}, where, "snr_db", allow_inf=True) for v in value)
        if len(set(values)) != len(values):
            read.invalid(where, "snr_db", value, "a list without repeated values")
        return {"snr_db": values}
    return {"snr_db": read.number(table, where, "snr_db", default=math.inf, allow_inf=True)}


def _parse_problem(read: _Reader, table: dict, has_frame: bool) -> dict:
    where = "problem"
    if "kind" not in table:
        read.fail(_label(where, "kind"), f"missing key {_label(where, 'kind')}.")
    kind = read.choice(table, where, "kind", tuple(PROBLEM_KEYS))
    required, optional = PROBLEM_KEYS[kind]
    read.keys(table, where, ("kind", *required), optional)
    out = {"kind": kind}
    if "lam" in required:
        out["lam_rule"] = read.choice(table, where, "lam_rule", ("fraction", "absolute"), default="fraction")
        fraction = out["lam_rule"] == "fraction"
        out["lam"] = read.number(
            table, where, "lam", 0.0, 1.0 if fraction else math.inf,
            meaning="a fraction of lam_max" if fraction else "",
        )
    if kind == "lasso":
        out["nonneg"] = read.boolean(table, where, "nonneg", False)
    if kind == "elastic_net":
        out["l2"] = read.number(table, where, "l2", 0.0)
    if kind == "sparse_group_lasso":
        out["l1_ratio"] = read.number(table, where, "l1_ratio", 0.0, 1.0)
    if kind in GROUP_KINDS:
        out.update(_parse_groups(read, table, has_frame))
    if kind == "basis_pursuit_denoising":
        out["sigma_rule"] = read.choice(table, where, "sigma_rule", ("noise", "absolute"), default="noise")
        out["sigma"] = read.number(table, where, "sigma", 0.0)
    return out


def _parse_groups(read: _Reader, table: dict, has_frame: bool) -> dict:
    where = "problem"
    groups = table["groups"]
    if isinstance(groups, list):
        if not groups or not all(isinstance(g, int) and not isinstance(g, bool) and g >= 1 for g in groups):
            read.invalid(where, "groups", groups, "'frames', 'blocks' or a non-empty list of group sizes >= 1")
        if "group_size" in table:
            read.fail(_label(where, "group_size"), "group_size goes with groups = 'blocks' only.")
        return {"groups": list(groups)}
    read.choice(table, where, "groups", ("frames", "blocks"))
    if groups == "frames" and not has_frame:
        read.invalid(where, "groups", groups, "'blocks' or a list of sizes for a [dictionary] (it has no frames)")
    if groups == "blocks":
        if "group_size" not in table:
            read.fail(_label(where, "group_size"), f"missing key {_label(where, 'group_size')} (groups = 'blocks').")
        return {"groups": "blocks", "group_size": read.integer(table, where, "group_size", 1)}
    if "group_size" in table:
        read.fail(_label(where, "group_size"), "group_size goes with groups = 'blocks' only.")
    return {"groups": "frames"}


def _parse_samples(read: _Reader, table: dict) -> dict:
    where = "samples"
    read.keys(table, where, ("test", "seed"), ("train", "train_seed"))
    out = {
        "test": read.integer(table, where, "test", 1),
        "seed": read.integer(table, where, "seed", 0),
        "train": read.integer(table, where, "train", 0, default=0),
    }
    if out["train"] > 0 and "train_seed" not in table:
        read.fail(_label(where, "train_seed"), f"missing key {_label(where, 'train_seed')} (train > 0).")
    out["train_seed"] = read.integer(table, where, "train_seed", 0, default=0) if "train_seed" in table else None
    if out["train_seed"] is not None and out["train_seed"] == out["seed"]:
        read.invalid(where, "train_seed", out["train_seed"], "a seed other than [samples] seed, so that train and test differ")
    return out
