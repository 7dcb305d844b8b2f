"""Shape, mask and normalisation contract of every frame family."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from torch.testing import assert_close

from .families import NAMES, batched_mask, batched_points, make_frame, sample_mask, sample_points


@pytest.mark.parametrize("name", NAMES)
def test_unbatched_shape(name):
    frame = make_frame(name)
    t = sample_points()
    D = frame(t)
    assert D.shape == (8, frame.n_atoms)
    assert sum(frame.groups) == frame.n_atoms


@pytest.mark.parametrize("name", NAMES)
def test_batched_matches_rows(name):
    frame = make_frame(name)
    t = batched_points()
    D = frame(t)
    assert D.shape == (2, 6, frame.n_atoms)
    for b in range(2):
        assert_close(D[b], frame(t[b]))


@pytest.mark.parametrize("name", NAMES)
def test_batched_mask_unbatched_t(name):
    frame = make_frame(name)
    t = sample_points()
    mask = batched_mask()
    D = frame(t, mask)
    assert D.shape == (2, 8, frame.n_atoms)
    for b in range(2):
        assert_close(D[b], frame(t, mask[b]))


@pytest.mark.parametrize("name", NAMES)
def test_batched_t_shared_mask(name):
    frame = make_frame(name)
    t = batched_points()
    mask = torch.tensor([True, False, True, True, True, False])
    D = frame(t, mask)
    assert D.shape == (2, 6, frame.n_atoms)
    assert_close(D[1], frame(t[1], mask))


@pytest.mark.parametrize("name", NAMES)
def test_masked_rows_exactly_zero(name):
    frame = make_frame(name)
    mask = batched_mask()
    D = frame(sample_points(), mask)
    assert torch.equal(D[~mask], torch.zeros_like(D[~mask]))


@pytest.mark.parametrize("name", NAMES)
def test_unit_norms_on_unmasked_rows(name):
    frame = make_frame(name)
    if name == "union":
        frame.normalize = True
    mask = batched_mask()
    D = frame(sample_points(), mask)
    norms = torch.linalg.vector_norm(D, dim=-2)
    assert_close(norms, torch.ones_like(norms))


@pytest.mark.parametrize("name", NAMES)
def test_atom_norms_match_raw_atoms(name):
    frame = make_frame(name)
    if name == "union":
        frame.normalize = True
    t = sample_points()
    mask = batched_mask()
    raw = frame.evaluate(t) * mask.unsqueeze(-1)
    norms = frame.atom_norms(t, mask)
    assert norms.shape == (2, frame.n_atoms)
    assert_close(norms, torch.linalg.vector_norm(raw, dim=-2))


@pytest.mark.parametrize("name", NAMES)
def test_evaluate_with_fit_norms(name):
    frame = make_frame(name)
    t = sample_points()
    mask = sample_mask()
    D = frame(t, mask)
    rebuilt = frame.evaluate(t, frame.atom_norms(t, mask))
    assert_close(rebuilt[mask], D[mask])


@pytest.mark.parametrize("name", NAMES)
def test_normalize_false_returns_raw(name):
    frame = make_frame(name, normalize=False)
    t = sample_points()
    norms = frame.atom_norms(t)
    assert_close(frame(t), frame.evaluate(t))
    assert_close(norms, torch.ones_like(norms))


def test_union_per_frame_normalisation():
    frame = make_frame("union")
    D = frame(sample_points())
    norms = torch.linalg.vector_norm(D, dim=0)
    raw = frame.frames[1].evaluate(sample_points())
    assert_close(norms[:3], torch.ones(3, dtype=torch.float64))
    assert_close(D[:, 3:5], raw)
    assert_close(norms[5:], torch.ones(1, dtype=torch.float64))


@pytest.mark.parametrize("name", NAMES)
def test_default_dtype_float32(name):
    frame = make_frame(name, dtype=None)
    D = frame(sample_points(torch.float32))
    assert frame.dtype == torch.float32
    assert D.dtype == torch.float32


@pytest.mark.parametrize("name", NAMES)
def test_double_follows_module(name):
    frame = make_frame(name, dtype=torch.float32).double()
    D = frame(sample_points(torch.float64))
    reference = make_frame(name, dtype=torch.float64)(sample_points(torch.float64))
    assert D.dtype == torch.float64
    assert_close(D, reference, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_pickle_and_deepcopy(name):
    frame = make_frame(name)
    t = sample_points()
    assert_close(pickle.loads(pickle.dumps(frame))(t), frame(t))
    assert_close(copy.deepcopy(frame)(t), frame(t))


@pytest.mark.parametrize("name", NAMES)
def test_empty_batch(name):
    frame = make_frame(name)
    t = torch.empty(0, 6, dtype=torch.float64)
    D = frame(t)
    assert D.shape == (0, 6, frame.n_atoms)
