"""The named problem suite: TOML files that describe problems, and the instances built from them.

A problem file (``problems/NAME.toml`` in the repository) fixes one benchmark
problem. It gives the dictionary: a Gaussian matrix, or a frame evaluated at
sample points. It gives the codes and noise of synthetic signals, or the
shipped data set of a real one. It also gives the coding problem and its
penalty rule, the seeds, and the numbers of test and training samples. ``load`` reads and checks a file,
and ``instance`` builds the tensors.

The schema, section by section (``*`` marks a required key):

- top level: ``description``\\*, ``source`` (a citation), ``dtype``
  (``"float32"`` or ``"float64"``, default ``"float64"``).
- ``[dictionary]``: ``kind = "gaussian"``\\* (entries N(0, 1/m), then unit-norm
  columns), ``m``\\*, ``k``\\*, ``seed``\\*.
- ``[frame]``: ``family``\\*, the family's keys (see ``FRAME_KEYS``) and
  ``normalize`` (unit-norm atoms over the samples, default true). A
  ``"union"`` lists its sub-frames in ``members``, an array of tables.
  Frames are evaluated at the points of ``[points]`` or ``[data]``.
- ``[points]``: ``kind``\\* (``"grid"``: equally spaced, ends included;
  ``"random"``: sorted uniform draws), ``m``\\*, ``domain`` (default [0, 1]),
  ``seed`` (required for ``"random"``), ``per_sample`` (``"random"`` only:
  new points for every sample, drawn with the samples' seed).
- ``[data]``: ``source``\\* (``"pywt.ecg"``, the ECG record shipped with
  PyWavelets), ``observed``\\* (fraction of the record's samples observed,
  drawn at random for every signal with the samples' seed), ``domain`` (the
  time axis of the record, default [0, 1]), ``standardize`` (remove the mean
  and divide by the standard deviation, default true).
- ``[codes]`` (synthetic problems): ``kind``\\* (``"bernoulli_gaussian"``:
  each entry nonzero with probability ``p``, N(0, 1) when nonzero;
  ``"group_bernoulli_gaussian"``: each group of the problem active with
  probability ``p``, N(0, 1) entries), ``p``\\*.
- ``[noise]`` (synthetic problems, optional): ``snr_db`` (default ``inf``,
  no noise): a number, ``inf``, or a list of them, which makes one variant per value (``NAME@snr=VALUE``). The
  noise is white Gaussian with standard deviation ``std(D x) 10^(-SNR/20)``
  per sample (``implicit_basis.synthetic.chen2018_samples``).
- ``[problem]``: ``kind``\\* (see ``PROBLEM_KEYS`` for each kind's keys);
  ``lam`` with ``lam_rule`` (``"fraction"``, the default: ``lam`` times the
  kind's ``lam_max`` of each sample; ``"absolute"``); ``sigma`` with
  ``sigma_rule`` (``"noise"``, the default: ``sigma`` times the expected noise
  norm ``sqrt(m)`` times the noise standard deviation of each sample;
  ``"absolute"``); ``groups`` (``"frames"``: the frame's atom groups, one per
  sub-frame of a union; ``"blocks"``: contiguous blocks of ``group_size``
  atoms inside each of the frame's groups; or a list of group sizes).
- ``[samples]``: ``test``\\*, ``seed``\\*, ``train`` (default 0),
  ``train_seed`` (required when ``train > 0``).

A file has exactly one of ``[dictionary]`` and ``[frame]``, and a frame has
exactly one of ``[points]`` and ``[data]``. Unknown keys, invalid values and
missing keys raise ``SuiteError`` naming the file, the key and what is allowed.
"""

from .files import list_problems, load, problem_dirs
from .instance import Instance, instance
from .spec import (
    DTYPES,
    FRAME_KEYS,
    PATH_VARIABLE,
    PROBLEM_KEYS,
    REPOSITORY_PROBLEMS,
    ProblemSpec,
    SuiteError,
)

__all__ = [
    "DTYPES",
    "FRAME_KEYS",
    "PATH_VARIABLE",
    "PROBLEM_KEYS",
    "REPOSITORY_PROBLEMS",
    "Instance",
    "ProblemSpec",
    "SuiteError",
    "instance",
    "list_problems",
    "load",
    "problem_dirs",
]
