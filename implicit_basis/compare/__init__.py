"""The comparison harness: every differentiation mode on the named problems.

``compare(problems, config)`` runs methods on problems of the suite: the
implicit and cvxpylayers backends, unrolled ISTA and FISTA at several
iteration counts, the LISTA family after brief training, scikit-learn's
coordinate descent and MOREAU (when installed). It measures forward and
backward time, memory, solution and gradient errors against a reference,
NMSE against the true codes, support recovery and duality gaps. ``format_table``,
``write_json`` and ``plot`` report the result. ``implicit-basis compare`` is
the command-line front end.
"""

from .methods import METHOD_GROUPS, METHOD_NAMES, Method, expand_names, make_methods
from .reference import REFERENCE_METHODS, Reference, default_cache_dir, reference_gradients, reference_solutions
from .report import format_table, plot, to_json_data, write_json
from .run import (
    BENCHMARK_METHODS,
    BENCHMARK_PROBLEMS,
    DEFAULT_METHODS,
    RECORD_FIELDS,
    CompareConfig,
    CompareResult,
    compare,
)

__all__ = [
    "BENCHMARK_METHODS",
    "BENCHMARK_PROBLEMS",
    "DEFAULT_METHODS",
    "METHOD_GROUPS",
    "METHOD_NAMES",
    "RECORD_FIELDS",
    "REFERENCE_METHODS",
    "CompareConfig",
    "CompareResult",
    "Method",
    "Reference",
    "compare",
    "default_cache_dir",
    "expand_names",
    "format_table",
    "make_methods",
    "plot",
    "reference_gradients",
    "reference_solutions",
    "to_json_data",
    "write_json",
]
