"""Input checks of the frames, with their messages pinned."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from implicit_basis import frames

from .families import GRID, make_frame, sample_points


@pytest.fixture
def fourier():
    return frames.Fourier(2, dtype=torch.float64)


def test_integer_t_rejected(fourier):
    with pytest.raises(TypeError, match=r"t must be a floating tensor; received dtype torch.int64\. Convert"):
        fourier(torch.arange(4))


def test_list_t_rejected(fourier):
    with pytest.raises(TypeError, match=r"t must be a torch.Tensor of sample points; received list"):
        fourier([0.0, 0.5])


def test_half_t_rejected():
    frame = frames.Fourier(1).half()
    with pytest.raises(TypeError, match=r"t must be float32 or float64; received torch.float16"):
        frame(torch.zeros(3, dtype=torch.float16))


def test_dtype_mismatch_rejected(fourier):
    with pytest.raises(TypeError, match=r"t has dtype torch.float32 but the Fourier parameters are torch.float64"):
        fourier(torch.zeros(3))


def test_three_dimensional_t_rejected(fourier):
    with pytest.raises(ValueError, match=r"t must have shape \(m,\) or \(B, m\); received shape \(2, 3, 4\)"):
        fourier(torch.zeros(2, 3, 4, dtype=torch.float64))


def test_device_mismatch_rejected(fourier):
    t = torch.zeros(3, dtype=torch.float64, device="meta")
    with pytest.raises(ValueError, match=r"t is on device meta but the Fourier is on device cpu"):
        fourier(t)


def test_nan_t_names_index(fourier):
    t = torch.tensor([0.0, 0.1, float("nan"), float("inf")], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"t must be finite; t\[2\] = nan\. Replace a missing sample"):
        fourier(t)


def test_batched_inf_t_names_index(fourier):
    t = torch.zeros(2, 3, dtype=torch.float64)
    t[1, 2] = float("-inf")
    with pytest.raises(ValueError, match=r"t must be finite; t\[\(1, 2\)\] = -inf"):
        fourier(t)


def test_float_mask_rejected(fourier):
    with pytest.raises(TypeError, match=r"mask must have dtype torch.bool .* received torch.float32"):
        fourier(torch.zeros(3, dtype=torch.float64), torch.ones(3))


def test_mask_length_rejected(fourier):
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\) or \(B, 3\) .* received shape \(4,\)"):
        fourier(torch.zeros(3, dtype=torch.float64), torch.ones(4, dtype=torch.bool))


def test_mask_batch_rejected(fourier):
    t = torch.zeros(2, 3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"mask must have shape \(3,\) or \(2, 3\) .* received shape \(5, 3\)"):
        fourier(t, torch.ones(5, 3, dtype=torch.bool))


def test_mask_list_rejected(fourier):
    with pytest.raises(TypeError, match=r"mask must be a bool torch.Tensor .* received list"):
        fourier(torch.zeros(2, dtype=torch.float64), [True, False])


def test_norms_shape_rejected(fourier):
    t = torch.zeros(3, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"norms must have shape \(5,\) or \(B, 5\) .* received shape \(4,\)"):
        fourier.evaluate(t, torch.ones(4, dtype=torch.float64))


def test_norms_zero_rejected(fourier):
    t = torch.zeros(3, dtype=torch.float64)
    norms = torch.tensor([1.0, 1.0, 0.0, 1.0, 1.0], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"norms must be positive and finite; norms\[2\] = 0\.0"):
        fourier.evaluate(t, norms)


def test_unknown_learn_name():
    with pytest.raises(ValueError, match=r"learn contains the unknown parameter 'freq'; Gabor can learn 'centres'"):
        frames.Gabor(0.0, 1.0, 1.0, learn="freq")


def test_learn_wrong_type():
    message = r"learn must be a bool, a parameter name or a collection of names; received int"
    with pytest.raises(TypeError, match=message):
        frames.RadialBasis(0.0, 1.0, learn=1)


def test_learn_non_string_name():
    with pytest.raises(TypeError, match=r"learn must contain parameter names as strings; received 3"):
        frames.Wavelet("ricker", 1.0, 0.0, learn=["scales", 3])


def test_negative_width_rejected():
    with pytest.raises(ValueError, match=r"widths \(standard deviations\) must be positive; widths\[1\] = -0\.5"):
        frames.RadialBasis([0.0, 1.0], [1.0, -0.5])


def test_negative_decay_rejected():
    with pytest.raises(ValueError, match=r"decays \(decay rates\) must be non-negative; decays\[0\] = -1\.0"):
        frames.DampedSinusoids([1.0], [-1.0])


def test_zero_decay_learned_rejected():
    with pytest.raises(ValueError, match=r"decays must be positive to be learned; decays\[1\] = 0\.0"):
        frames.DampedSinusoids([1.0, 2.0], [0.5, 0.0])


def test_zero_decay_fixed_allowed():
    frame = frames.DampedSinusoids([1.0, 2.0], [0.5, 0.0], learn="freqs", dtype=torch.float64)
    D = frame(sample_points())
    assert torch.isfinite(D).all()


def test_nonpositive_period_rejected():
    with pytest.raises(ValueError, match=r"period must be positive; period\[0\] = 0\.0"):
        frames.Fourier(2, period=0.0)


def test_mismatched_lengths_rejected():
    message = r"centres, widths, freqs must have the same length.*centres: 3, widths: 2, freqs: 1"
    with pytest.raises(ValueError, match=message):
        frames.Gabor([0.0, 0.5, 1.0], [0.1, 0.2], 1.0)


def test_nan_parameter_rejected():
    with pytest.raises(ValueError, match=r"centres must be finite; centres\[1\] = nan"):
        frames.RadialBasis([0.0, np.nan], 1.0)


def test_matrix_parameter_rejected():
    with pytest.raises(ValueError, match=r"shifts must be a number or a 1-D sequence; received shape \(2, 2\)"):
        frames.Wavelet("morlet", 1.0, [[0.0, 1.0], [2.0, 3.0]])


def test_string_parameter_rejected():
    with pytest.raises(TypeError, match=r"freqs must be a number or a 1-D sequence of numbers; received str"):
        frames.DampedSinusoids("fast", 1.0)


def test_unknown_wavelet_kind():
    with pytest.raises(ValueError, match=r"kind must be one of 'ricker', 'mexh', 'morlet', 'morl'; received 'haar'"):
        frames.Wavelet("haar", 1.0, 0.0)


def test_domain_order_rejected():
    with pytest.raises(ValueError, match=r"domain must satisfy a < b; received \(1\.0, 0\.0\)"):
        frames.Legendre(3, domain=(1.0, 0.0))


def test_negative_degree_rejected():
    with pytest.raises(ValueError, match=r"degree must be at least 0; received -1"):
        frames.Chebyshev(-1)


def test_float_degree_rejected():
    with pytest.raises(TypeError, match=r"degree must be an integer; received 2\.5"):
        frames.Legendre(2.5)


def test_integer_dtype_rejected():
    with pytest.raises(TypeError, match=r"dtype must be a floating torch.dtype .* received torch.int32"):
        frames.Fourier(2, dtype=torch.int32)


def test_normalize_type_rejected():
    with pytest.raises(TypeError, match=r"normalize must be True or False; received 'yes'"):
        frames.Fourier(2, normalize="yes")


def test_learned_off_grid_rejected():
    frame = make_frame("learned")
    t = torch.tensor([0.0, 0.5, 0.51], dtype=torch.float64)
    message = r"t\[2\] = 0\.51 is not on the grid of Learned: the nearest grid point is 0\.5"
    with pytest.raises(ValueError, match=message):
        frame(t)


def test_learned_tolerance_float64():
    frame = make_frame("learned")
    t = GRID[torch.tensor([2, 6])]
    frame(t * (1 + 1e-11))
    with pytest.raises(ValueError, match=r"t\[0\] = .* is not on the grid of Learned"):
        frame(t * (1 + 1e-7))


def test_learned_grid_not_increasing():
    with pytest.raises(ValueError, match=r"grid must be strictly increasing; grid\[1\] = 0\.5 and grid\[2\] = 0\.5"):
        frames.Learned([0.0, 0.5, 0.5, 1.0], 2)


def test_learned_init_shape_rejected():
    with pytest.raises(ValueError, match=r"init must have shape \(n_grid, k\) = \(13, k\).* received shape \(3, 13\)"):
        frames.Learned(GRID, init=torch.zeros(3, 13))


def test_learned_needs_size():
    with pytest.raises(TypeError, match=r"Learned needs n_atoms or init; received neither"):
        frames.Learned(GRID)


def test_learned_size_conflict():
    with pytest.raises(ValueError, match=r"n_atoms = 4 does not match init with 2 columns"):
        frames.Learned(GRID, 4, init=torch.zeros(13, 2))


def test_union_empty_rejected():
    with pytest.raises(ValueError, match=r"frames must contain at least one frame; received an empty list"):
        frames.Union([])


def test_union_member_type_rejected():
    with pytest.raises(TypeError, match=r"frames\[1\] must be a Frame; received Tensor"):
        frames.Union([frames.Fourier(1), torch.zeros(3, 2)])


def test_union_single_frame_rejected():
    with pytest.raises(TypeError, match=r"frames must be a list of Frame instances; received Fourier"):
        frames.Union(frames.Fourier(1))


def test_union_mixed_dtype_rejected():
    members = [frames.Fourier(1), frames.Fourier(1, dtype=torch.float64)]
    with pytest.raises(ValueError, match=r"frames\[0\] is torch.float32 on cpu but frames\[1\] is torch.float64"):
        frames.Union(members)


def test_frame_base_is_abstract():
    with pytest.raises(TypeError, match=r"Can't instantiate abstract class Frame"):
        frames.Frame()


# ----------------------------------------------------------------------
# The learn= mechanism.


def test_learn_registers_parameters():
    frame = frames.Gabor(0.0, 1.0, 1.0, learn=["centres", "freqs"])
    parameters = dict(frame.named_parameters())
    buffers = dict(frame.named_buffers())
    assert sorted(parameters) == ["centres", "freqs"]
    assert sorted(buffers) == ["widths"]
    assert frame.learned == ("centres", "freqs")


def test_learn_false_registers_buffers():
    frame = frames.Wavelet("ricker", [1.0, 2.0], 0.0, learn=False)
    assert list(frame.parameters()) == []
    assert sorted(dict(frame.named_buffers())) == ["scales", "shifts"]


def test_fourier_default_fixed():
    frame = frames.Fourier(3)
    assert list(frame.parameters()) == []
    assert frame.learned == ()


def test_learned_positive_stored_raw():
    frame = frames.Wavelet("morlet", [0.5, 2.0], 0.0, learn="scales", dtype=torch.float64)
    assert sorted(dict(frame.named_parameters())) == ["raw_scales"]
    torch.testing.assert_close(frame.scales, torch.tensor([0.5, 2.0], dtype=torch.float64))


def test_union_learned_names():
    union = frames.Union([frames.Fourier(1), frames.RadialBasis(0.0, 1.0, learn="widths")])
    assert union.learned == ("1.widths",)


def test_state_dict_round_trip():
    source = make_frame("gabor")
    target = frames.Gabor([0.0, 0.0], [1.0, 1.0], [0.0, 0.0], dtype=torch.float64)
    target.load_state_dict(source.state_dict())
    torch.testing.assert_close(target(sample_points()), source(sample_points()))
