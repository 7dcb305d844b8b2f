"""Finding problem files and loading them into checked ``ProblemSpec`` objects."""

from __future__ import annotations

import os
from pathlib import Path

from .schema import parse
from .spec import PATH_VARIABLE, REPOSITORY_PROBLEMS, ProblemSpec, SuiteError

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10
    import tomli as tomllib

__all__ = ["list_problems", "load", "problem_dirs"]


def problem_dirs() -> list[Path]:
    """Return the folders searched for problem files, in order.

    First the folders in the environment variable ``IMPLICIT_BASIS_PROBLEMS``
    (separated by ``os.pathsep``), then the repository's ``problems/``.
    """
    extra = [Path(p) for p in os.environ.get(PATH_VARIABLE, "").split(os.pathsep) if p]
    return [*extra, REPOSITORY_PROBLEMS]


def list_problems() -> list[str]:
    """Return the names of the problem files found in ``problem_dirs()``, sorted.

    A name found in several folders is listed once; ``load`` takes the first.
    """
    names = set()
    for folder in problem_dirs():
        if folder.is_dir():
            names.update(path.stem for path in folder.glob("*.toml"))
    return sorted(names)


def load(name_or_path) -> ProblemSpec:
    """Read and check one problem file.

    Args:
        name_or_path: a suite name (``"chen2018"``), a variant of a file with
            an SNR list (``"chen2018@snr=40"``), or a path to a TOML file.

    Raises:
        SuiteError: the file is missing, is not valid TOML, or has an unknown
            key, an invalid value or a missing key. The message names the
            file, the key and what is allowed.
    """
    text = str(name_or_path)
    base, _, variant = text.partition("@")
    path = Path(base)
    if path.suffix != ".toml" and os.sep not in base and "/" not in base:
        path = _find(base)
    if not path.is_file():
        raise SuiteError(path, "", "no such problem file.")
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except tomllib.TOMLDecodeError as error:
        raise SuiteError(path, "", f"invalid TOML: {error}.") from error

    spec = parse(raw, path)
    if not variant:
        return spec
    for candidate in spec.variants():
        if candidate.name.partition("@")[2] == variant:
            return candidate
    names = ", ".join(v.name for v in spec.variants()) if isinstance(spec.snr_db, tuple) else spec.name
    raise SuiteError(path, "[noise] snr_db", f"no variant {variant!r}; the variants are: {names}.")


def _find(name: str) -> Path:
    for folder in problem_dirs():
        candidate = folder / f"{name}.toml"
        if candidate.is_file():
            return candidate
    known = ", ".join(list_problems()) or "none"
    folders = ", ".join(str(f) for f in problem_dirs())
    raise SuiteError(
        None, "",
        f"unknown problem {name!r}; known problems: {known} (searched {folders}). Pass a path "
        f"to a TOML file, or add its folder to {PATH_VARIABLE}.",
    )
