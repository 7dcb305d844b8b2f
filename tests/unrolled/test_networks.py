import copy
import pickle

import pytest
import torch

from implicit_basis.synthetic import chen2018_samples, gaussian_dictionary
from implicit_basis.unrolled import (
    ALISTA,
    LISTA,
    LISTACP,
    LISTACPSS,
    StepLISTA,
    analytic_weight,
    ista,
)
from implicit_basis.unrolled.shrinkage import soft_threshold_support_selection

NETWORKS = [LISTA, LISTACP, LISTACPSS, ALISTA, StepLISTA]


@pytest.fixture(scope="module")
def data():
    D = gaussian_dictionary(12, 24, generator=0, dtype=torch.float64)
    y, z = chen2018_samples(D, 5, p=0.2, generator=1)
    return D, y, z


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_output_shape_and_dtype(data, network, dtype):
    D, y, _ = data
    model = network(D.to(dtype), 4)
    z = model(y.to(dtype))
    assert z.shape == (5, 24)
    assert z.dtype == dtype


@pytest.mark.parametrize("network", NETWORKS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_parameters_follow_dictionary(data, network, dtype):
    model = network(data[0].to(dtype), 3)
    assert {p.dtype for p in model.parameters()} == {dtype}


@pytest.mark.parametrize("network", NETWORKS)
def test_module_to_casts(data, network):
    D, y, _ = data
    model = network(D.float(), 3).to(torch.float64)
    torch.testing.assert_close(model(y), network(D, 3)(y), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("network", NETWORKS)
def test_single_signal(data, network):
    D, y, _ = data
    model = network(D, 3)
    torch.testing.assert_close(model(y[2]), model(y)[2])


@pytest.mark.parametrize("network", NETWORKS)
def test_return_all(data, network):
    D, y, _ = data
    model = network(D, 4)
    estimates = model(y, return_all=True)
    assert len(estimates) == 4
    assert all(z.shape == (5, 24) for z in estimates)
    torch.testing.assert_close(estimates[-1], model(y))


@pytest.mark.parametrize("network", NETWORKS)
def test_estimates_truncated(data, network):
    D, y, _ = data
    model = network(D, 4)
    torch.testing.assert_close(model.estimates(y, 2), model(y, return_all=True)[:2])


@pytest.mark.parametrize("network", [LISTA, LISTACP, StepLISTA])
def test_initialised_as_ista(data, network):
    D, y, _ = data
    model = network(D, 5, lam=0.1)
    expected = ista(y, D, 0.1, 5, return_all=True)
    for estimate, reference in zip(model(y, return_all=True), expected):
        torch.testing.assert_close(estimate, reference)


def test_cpss_without_selection_is_ista(data):
    D, y, _ = data
    model = LISTACPSS(D, 5, lam=0.1, p_step=0.0)
    torch.testing.assert_close(model(y), ista(y, D, 0.1, 5))


def test_cpss_selection_schedule(data):
    model = LISTACPSS(data[0], 14)
    fractions = [model.support_fraction(k) for k in range(14)]
    expected = [min(0.012 * (k + 1), 0.13) for k in range(14)]
    assert fractions == pytest.approx(expected)


def test_cpss_layer_reference(data):
    D, y, _ = data
    model = LISTACPSS(D, 3, lam=0.3, p_step=0.1, p_max=0.2)
    z = torch.zeros(5, 24, dtype=torch.float64)
    for k in range(3):
        v = z + (y - z @ D.T) @ model.W[k].detach()
        z = soft_threshold_support_selection(v, float(model.theta[k].detach()), min(0.1 * (k + 1), 0.2))
    torch.testing.assert_close(model(y), z)


def test_alista_layer_reference(data):
    D, y, _ = data
    model = ALISTA(D, 3, lam=0.3, p_step=0.1, p_max=0.2)
    W = analytic_weight(D)
    gamma = 1.0 / torch.linalg.matrix_norm(W.T @ D, ord=2)
    z = torch.zeros(5, 24, dtype=torch.float64)
    for k in range(3):
        v = z - gamma * (z @ D.T - y) @ W
        z = soft_threshold_support_selection(v, gamma * 0.3, min(0.1 * (k + 1), 0.2))
    torch.testing.assert_close(model(y), z)


def test_alista_learns_two_scalars_per_layer(data):
    model = ALISTA(data[0], 6)
    assert sum(p.numel() for p in model.parameters()) == 12


def test_step_lista_learnable_lam(data):
    model = StepLISTA(data[0], 3, lam=0.2, learn_lam=True)
    assert any(p is model.lam for p in model.parameters())
    assert model.layer_parameters(0)[-1] is model.lam


def test_step_lista_fixed_lam_is_buffer(data):
    model = StepLISTA(data[0], 3, lam=0.2)
    assert "lam" in dict(model.named_buffers())


@pytest.mark.parametrize("network", NETWORKS)
def test_layer_parameters_partition(data, network):
    model = network(data[0], 4)
    listed = [id(p) for k in range(4) for p in model.layer_parameters(k)]
    assert sorted(listed) == sorted(id(p) for p in model.parameters())


@pytest.mark.parametrize("network", NETWORKS)
def test_gradients_reach_every_parameter(data, network):
    D, y, z = data
    model = network(D, 3, lam=0.05)
    (model(y) - z).pow(2).sum().backward()
    assert all(p.grad is not None for p in model.parameters())
    assert all(bool(torch.isfinite(p.grad).all()) for p in model.parameters())


@pytest.mark.parametrize("network", NETWORKS)
def test_gradient_reaches_signal(data, network):
    D, y, _ = data
    y = y.clone().requires_grad_(True)
    network(D, 3, lam=0.05)(y).sum().backward()
    assert y.grad is not None


@pytest.mark.parametrize("network", NETWORKS)
def test_deepcopy_and_pickle(data, network):
    D, y, _ = data
    model = network(D, 3)
    torch.testing.assert_close(copy.deepcopy(model)(y), model(y))
    torch.testing.assert_close(pickle.loads(pickle.dumps(model))(y), model(y))


@pytest.mark.parametrize("network", NETWORKS)
def test_state_dict_roundtrip(data, network):
    D, y, _ = data
    trained = network(D, 3)
    with torch.no_grad():
        for p in trained.parameters():
            p.mul_(1.1)
    fresh = network(D, 3)
    fresh.load_state_dict(trained.state_dict())
    torch.testing.assert_close(fresh(y), trained(y))


def test_dictionary_is_copied(data):
    D = data[0].clone()
    model = LISTACP(D, 2)
    D.zero_()
    assert bool(model.D.abs().sum() > 0)


def test_repr_names_sizes(data):
    assert "m=12, n=24, K=3, lam=0.4" in repr(LISTA(data[0], 3))


@pytest.mark.parametrize("network", NETWORKS)
def test_rejects_vector_dictionary(network):
    with pytest.raises(ValueError, match=r"D must have shape \(m, n\) with atoms as columns, got shape \(12,\)"):
        network(torch.ones(12), 3)


@pytest.mark.parametrize("network", NETWORKS)
def test_rejects_integer_dictionary(network):
    with pytest.raises(TypeError, match=r"D must have dtype float32 or float64, got torch.int64"):
        network(torch.ones(3, 4, dtype=torch.int64), 3)


def test_rejects_half_dictionary(data):
    with pytest.raises(TypeError, match=r"D must have dtype float32 or float64, got torch.float16"):
        LISTA(data[0].half(), 3)


def test_rejects_non_tensor_dictionary():
    with pytest.raises(TypeError, match=r"D must be a torch.Tensor of shape \(m, n\) with atoms as columns, got list"):
        LISTA([[1.0, 0.0]], 3)


def test_rejects_nan_dictionary(data):
    D = data[0].clone()
    D[0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"D contains NaN or inf"):
        ALISTA(D, 3)


@pytest.mark.parametrize("K", [0, -2])
def test_rejects_small_depth(data, K):
    with pytest.raises(ValueError, match=rf"K must be an int >= 1, got {K}; use at least one layer"):
        LISTACP(data[0], K)


@pytest.mark.parametrize("K", [1.5, True, "4"])
def test_rejects_non_integer_depth(data, K):
    with pytest.raises(TypeError, match=r"K must be an int >= 1, got"):
        LISTACP(data[0], K)


def test_rejects_negative_lam(data):
    with pytest.raises(ValueError, match=r"lam must be a finite number >= 0, got -1.0"):
        StepLISTA(data[0], 3, lam=-1.0)


def test_rejects_fraction_above_one(data):
    with pytest.raises(ValueError, match=r"p_max must be in \[0, 1\], got 1.5"):
        LISTACPSS(data[0], 3, p_max=1.5)


@pytest.mark.parametrize("network", NETWORKS)
def test_rejects_wrong_signal_size(data, network):
    D, y, _ = data
    with pytest.raises(ValueError, match=r"y must have shape \(B, 12\) or \(12,\) to match D of shape \(12, 24\), got shape \(5, 11\)"):
        network(D, 2)(y[:, :11])


def test_rejects_three_dimensional_signal(data):
    D, y, _ = data
    with pytest.raises(ValueError, match=r"got shape \(1, 5, 12\)"):
        LISTA(D, 2)(y.unsqueeze(0))


@pytest.mark.parametrize("network", NETWORKS)
def test_rejects_signal_dtype(data, network):
    D, y, _ = data
    with pytest.raises(TypeError, match=r"y has dtype torch.float32 but the dictionary D has dtype torch.float64; cast y"):
        network(D, 2)(y.float())


def test_rejects_signal_device(data):
    D, y, _ = data
    with pytest.raises(ValueError, match=r"y is on meta but the dictionary D is on cpu"):
        LISTA(D, 2)(y.to("meta"))


def test_rejects_nan_signal(data):
    D, y, _ = data
    y = y.clone()
    y[0, 0] = float("nan")
    with pytest.raises(ValueError, match=r"y contains NaN or inf"):
        ALISTA(D, 2)(y)


def test_rejects_numpy_signal(data):
    D, y, _ = data
    with pytest.raises(TypeError, match=r"y must be a torch.Tensor of shape \(B, m\), got ndarray"):
        LISTA(D, 2)(y.numpy())


def test_rejects_too_many_layers(data):
    D, y, _ = data
    with pytest.raises(ValueError, match=r"num_layers must be between 1 and the network depth 2, got 3"):
        LISTA(D, 2).estimates(y, 3)
