"""Weights between units, expanded weights (checked against brute-force linearisations), NMF, plots."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import pytest
import torch
import torch.nn.functional as F

from circuitscope.core.models import inceptionv1 as inception_module
from circuitscope.core.models.inceptionv1 import BLOCKS, InceptionV1
from circuitscope.core.models.layers import pad_same
from circuitscope.figures import plotting
from circuitscope.methods import circuits
from circuitscope.methods.circuits import (
    branch_of,
    branch_slices,
    concat_index,
    expanded_weights,
    expanded_weights_by_gradient,
    format_unit,
    nmf,
    nmf_weights,
    parse_unit,
    weights_between,
)


@pytest.fixture(scope="module")
def random_model():
    """InceptionV1 with seeded random (PyTorch default) weights, in float64."""
    torch.manual_seed(1234)
    return InceptionV1().double()


def w(model, name):
    return getattr(model, f"{name}_pre_relu_conv").weight


# -- units and branches -------------------------------------------------------------------------
def test_units_parse_in_short_and_full_form():
    assert (
        parse_unit("3b:379") == ("mixed3b", 379) == parse_unit("mixed3b:379") == parse_unit(("mixed3b", 379))
    )
    assert parse_unit("4c:447") == ("mixed4c", 447)
    assert parse_unit("3b_5x5:59") == ("mixed3b_5x5", 59)
    assert parse_unit("conv2d2:5") == ("conv2d2", 5)
    assert format_unit("mixed3b", 379) == "3b:379" and format_unit("conv2d1", 3) == "conv2d1:3"
    for bad, message in [
        ("3b-379", "layer:channel"),
        ("3b:480", "out of range"),
        ("9z:1", "unknown layer"),
        ("3b:x", "integer"),
    ]:
        with pytest.raises(ValueError, match=message):
            parse_unit(bad)


def test_concatenated_channels_map_to_branches():
    assert branch_slices("mixed3b") == {
        "mixed3b_1x1": slice(0, 128), "mixed3b_3x3": slice(128, 320),
        "mixed3b_5x5": slice(320, 416), "mixed3b_pool_reduce": slice(416, 480),
    }  # fmt: skip
    assert branch_of("3b:379") == ("mixed3b_5x5", 59)
    assert branch_of("3b:320") == ("mixed3b_5x5", 0) and branch_of("3b:319") == ("mixed3b_3x3", 191)
    assert branch_of("4c:447") == ("mixed4c_5x5", 63) and branch_of("4b:237") == ("mixed4b_3x3", 77)
    assert concat_index("mixed3b_5x5", 59) == 379 == concat_index("3b_5x5:59")
    for block in BLOCKS:
        for channel in range(block.out_channels):
            assert concat_index(*branch_of((block.name, channel))) == channel
    with pytest.raises(ValueError, match="not an inception block"):
        branch_of("conv2d2:3")


# -- weights between units ----------------------------------------------------------------------
def test_weight_through_the_bottleneck_is_the_papers_definition(synthetic_model):
    m = synthetic_model
    got = weights_between(m, "3a:147", "3b:379")
    expected = torch.einsum(
        "bij,b->ij", w(m, "mixed3b_5x5")[59], w(m, "mixed3b_5x5_bottleneck")[:, 147, 0, 0]
    )
    assert got.shape == (5, 5) and torch.allclose(got, expected, atol=1e-6)
    assert torch.allclose(expanded_weights(m, "3a", "3b:379")[147], expected, atol=1e-6)
    car = weights_between(m, "4b:237", "4c:447")
    expected = torch.einsum(
        "bij,b->ij", w(m, "mixed4c_5x5")[63], w(m, "mixed4c_5x5_bottleneck")[:, 237, 0, 0]
    )
    assert torch.allclose(car, expected, atol=1e-6)


def test_directly_connected_units_give_their_conv_weights(synthetic_model):
    m = synthetic_model
    assert torch.equal(weights_between(m, "3a:5", "3b:10"), w(m, "mixed3b_1x1")[10, 5])  # (1, 1)
    assert torch.equal(weights_between(m, "mixed3b_5x5_bottleneck:3", "3b:379"), w(m, "mixed3b_5x5")[59, 3])
    assert torch.equal(
        weights_between(m, "mixed3b_3x3_bottleneck:7", "mixed3b_3x3:2"), w(m, "mixed3b_3x3")[2, 7]
    )
    assert torch.equal(
        weights_between(m, "3a:9", "mixed3b_5x5_bottleneck:4"), w(m, "mixed3b_5x5_bottleneck")[4, 9]
    )
    assert torch.equal(weights_between(m, "conv2d1:3", "conv2d2:5"), w(m, "conv2d2")[5, 3])
    with pytest.raises(ValueError, match="only feeds"):
        weights_between(m, "mixed3b_5x5_bottleneck:3", "3b:10")
    with pytest.raises(ValueError, match="two units"):
        weights_between(m, "mixed3a", "3b:10")


def test_layer_targets_stack_branches_centred(random_model):
    m = random_model
    full = expanded_weights(m, "mixed3a", "mixed3b")
    assert full.shape == (480, 256, 5, 5) and full.dtype == torch.float64
    assert torch.equal(full[:128, :, 2, 2], w(m, "mixed3b_1x1")[:, :, 0, 0])  # 1x1 kernels sit at the centre
    assert float(full[:128].abs().sum()) == float(full[:128, :, 2, 2].abs().sum())
    some = expanded_weights(m, "3a", ["3b:10", "3b:379", "3b:200"])
    assert (
        some.shape == (3, 256, 5, 5) and torch.equal(some[1], full[379]) and torch.equal(some[2], full[200])
    )
    assert torch.equal(
        expanded_weights(m, "mixed3b_5x5", "4a:7"), expanded_weights(m, "mixed3b", "4a:7")[320:416]
    )
    top = circuits.strongest_inputs(m, "mixed3a", "3b:379", n=5)
    norms = [float(k.norm()) for _, k in top]
    assert (
        norms == sorted(norms, reverse=True)
        and top[0][0] == f"3a:{int(full[379].flatten(1).norm(dim=1).argmax())}"
    )


def test_nonlinear_or_backwards_paths_are_refused(random_model):
    m = random_model
    with pytest.raises(ValueError, match="LRN stand-in"):
        expanded_weights(m, "conv2d2", "mixed3a", lrn="exact")
    with pytest.raises(ValueError, match="no single kernel"):  # a per-position map is not one kernel
        expanded_weights(m, "conv2d2", "3a:1", lrn=torch.ones(1, 192, 9, 9, dtype=torch.float64))
    with pytest.raises(ValueError, match="does not come before"):
        expanded_weights(m, "mixed4a", "3b:1")
    with pytest.raises(ValueError, match="exclude"):
        expanded_weights(m, "mixed3b", "4a:1", pool="exclude")
    assert not expanded_weights(m, "mixed3a", "3b:450", pool="exclude").any()  # a pool-branch unit: no path
    with pytest.raises(ValueError, match="max pool"):
        expanded_weights(m, "mixed3a", "maxpool4")
    with pytest.raises(ValueError, match="stand-in"):
        expanded_weights(m, "mixed3a", "3b:1", pool="max")


def test_pool_stand_ins_differ_only_in_the_pool_branch(random_model):
    m = random_model
    avg, centre, excl = (
        expanded_weights(m, "mixed3a", "mixed3b", pool=p) for p in ("average", "centre", "exclude")
    )
    assert torch.equal(avg[:416], centre[:416]) and torch.equal(avg[:416], excl[:416])
    reduce = w(m, "mixed3b_pool_reduce")[:, :, 0, 0]  # 3x3 kernels, zero-padded to 5x5 in the layer
    assert torch.allclose(avg[416:, :, 1:4, 1:4], reduce[:, :, None, None].expand(-1, -1, 3, 3) / 9)
    assert float(avg[416:].abs().sum()) == pytest.approx(float(avg[416:, :, 1:4, 1:4].abs().sum()))
    assert torch.equal(centre[416:, :, 2, 2], reduce) and float(centre[416:].abs().sum()) == float(
        reduce.abs().sum()
    )
    assert torch.equal(excl[416:], torch.zeros_like(excl[416:]))
    assert "mixed3b_5x5_bottleneck" in circuits.describe_path(m, "3a:147", "3b:379")
    assert "maxpool4" in circuits.describe_path(m, "mixed3a", "4a:1")


# -- the brute-force linearisation --------------------------------------------------------------
CASES = [
    ("mixed3a", "3b:10"),  # 1x1: direct
    ("mixed3a", "3b:200"),  # 3x3 through its bottleneck
    ("mixed3a", "3b:379"),  # 5x5 through its bottleneck
    ("mixed3a", "3b:450"),  # pool branch: the stand-in
    ("mixed3b", "4a:400"),  # across the stride-2 maxpool4
    ("mixed4b", "4c:447"),  # the car detector's branch
    ("mixed3a", "4a:300"),  # two blocks and a pool
    ("maxpool1", "3a:100"),
    ("localresponsenorm0", "conv2d2:7"),  # conv2d1 then conv2d2
    ("mixed3b_5x5_bottleneck", "3b:379"),
    ("mixed3a", "mixed3b_3x3_bottleneck:4"),
]


@pytest.mark.parametrize("pool", ["average", "centre"])
@pytest.mark.parametrize("source, target", CASES)
def test_expanded_weights_equal_the_gradient_of_the_linearised_model(random_model, source, target, pool):
    got = expanded_weights(random_model, source, target, pool=pool)
    by_gradient = expanded_weights_by_gradient(random_model, source, target, pool=pool)
    assert got.shape == by_gradient.shape and got.shape[-1] % 2 == 1
    assert torch.allclose(got, by_gradient, rtol=0, atol=1e-12 * float(got.abs().max()))


class _LinearF:
    """torch.nn.functional with ReLU replaced by the identity."""

    def __getattr__(self, name):
        return getattr(F, name)

    @staticmethod
    def relu(x):
        return x


def _pool_stand_in(pool):
    def max_pool_same(x, kernel=3, stride=2):
        padded = pad_same(x, kernel, stride)  # zeros: the stand-in is linear
        if pool == "average":
            return F.avg_pool2d(padded, kernel, stride)
        out = -(-x.shape[-1] // stride)
        return padded[..., 1::stride, 1::stride][..., :out, :out]  # the window's centre

    return max_pool_same


def patched_model_gradient(model, source, target, channel, size, monkeypatch, pool):
    """Gradient of the *model's own forward pass*, made linear by patching its ReLU and max pool.

    An independent check: the source activation is injected with a forward hook on its hook
    point, and the target's pre-ReLU value is read from ``named_forward``.
    """
    monkeypatch.setattr(inception_module, "F", _LinearF())
    monkeypatch.setattr(inception_module, "max_pool_same", _pool_stand_in(pool))
    x = torch.zeros(1, model.layer_channels[source], size, size, dtype=torch.float64, requires_grad=True)
    handle = model.hook_points[source].register_forward_hook(lambda _m, _i, _o: x)
    try:
        for name, value in model.named_forward(torch.zeros(1, 3, 32, 32, dtype=torch.float64)):
            if name == target:
                break
    finally:
        handle.remove()
    row, col = (value.shape[-2] - 1) // 2, (value.shape[-1] - 1) // 2
    (grad,) = torch.autograd.grad(value[0, channel, row, col], x)
    return grad[0]


@pytest.mark.parametrize(
    "source, target_value, unit, size, pool",
    [
        ("mixed3a", "mixed3b_pre_relu", "3b:379", 15, "average"),
        ("mixed3a", "mixed3b_pre_relu", "3b:200", 15, "average"),
        ("mixed3a", "mixed3b_pre_relu", "3b:10", 15, "average"),
        ("mixed3a", "mixed3b_pre_relu", "3b:460", 15, "centre"),
        ("mixed3b", "mixed4a_pre_relu", "4a:400", 31, "average"),
        ("mixed3b", "mixed4a_pre_relu", "4a:5", 30, "centre"),
        ("mixed4b", "mixed4c_pre_relu", "4c:447", 15, "average"),
        ("conv2d1", "conv2d2_pre_relu", "conv2d2:9", 11, "average"),
    ],
)
def test_expanded_weights_equal_the_patched_models_gradient(
    random_model, monkeypatch, source, target_value, unit, size, pool
):
    kernel = expanded_weights(random_model, source, unit, pool=pool)  # (C, k, k)
    grad = patched_model_gradient(
        random_model, source, target_value, parse_unit(unit)[1], size, monkeypatch, pool
    )
    k = kernel.shape[-1]

    def support(t):  # first and last non-zero row and column
        rows, cols = t.abs().sum(dim=(0, 2)).nonzero().flatten(), t.abs().sum(dim=(0, 1)).nonzero().flatten()
        return int(rows.min()), int(rows.max()), int(cols.min()), int(cols.max())

    (r0, r1, c0, c1), (kr0, kr1, kc0, kc1) = support(grad), support(kernel)
    assert (r1 - r0, c1 - c0) == (kr1 - kr0, kc1 - kc0), "the gradient and the kernel have different supports"
    r, c = r0 - kr0, c0 - kc0  # where the kernel's top-left corner lies in the map
    window = grad[:, r : r + k, c : c + k]
    assert torch.allclose(window, kernel, rtol=0, atol=1e-12 * float(kernel.abs().max()))
    if "4a" not in unit:  # stride 1: the window is centred on the unit
        assert r == c == (size - 1) // 2 - (k - 1) // 2


# -- NMF ----------------------------------------------------------------------------------------
def test_nmf_recovers_planted_low_rank_factors():
    gen = torch.Generator().manual_seed(0)
    h_true = torch.zeros(4, 30, dtype=torch.float64)
    for f in range(4):  # each factor owns its own columns (a separable, identifiable NMF)
        h_true[f, f * 7 : f * 7 + 7] = torch.rand(7, generator=gen, dtype=torch.float64) + 0.5
    w_true = torch.rand(60, 4, generator=gen, dtype=torch.float64) * (torch.rand(60, 4, generator=gen) > 0.4)
    x = w_true @ h_true
    w_, h = nmf(x, 4, n_iter=2000)
    assert w_.shape == (60, 4) and h.shape == (4, 30) and float(w_.min()) >= 0 and float(h.min()) >= 0
    assert float((x - w_ @ h).norm() / x.norm()) < 1e-3
    cos = F.normalize(h, dim=1) @ F.normalize(h_true, dim=1).T
    assert float(cos.max(dim=0).values.min()) > 0.999 and len(set(cos.argmax(dim=0).tolist())) == 4
    again = nmf(x, 4, n_iter=50, init="random", seed=3), nmf(x, 4, n_iter=50, init="random", seed=3)
    assert torch.equal(again[0][1], again[1][1])  # seeded
    with pytest.raises(ValueError, match="non-negative"):
        nmf(-x, 2)


def test_one_sided_nmf_of_signed_weights():
    gen = torch.Generator().manual_seed(1)
    spatial = torch.randn(6, 2, 5, 5, generator=gen)  # signed positions
    channels = torch.zeros(2, 12)
    channels[0, :6], channels[1, 6:] = 1.0, 1.0
    weights = torch.einsum("okhw,kc->ochw", spatial, channels)
    factors = nmf_weights(weights, k=2, n_iter=1500)
    assert factors.spatial.shape == (6, 2, 5, 5) and factors.channels.shape == (2, 12)
    assert float(factors.channels.min()) >= 0 and factors.error < 1e-3
    assert float(factors.spatial.min()) < 0  # the position side keeps its signs
    assert torch.allclose(factors.reconstruct(), weights, atol=2e-2)
    one = nmf_weights(weights[0], k=2)
    assert one.spatial.shape == (2, 5, 5)


# -- plots --------------------------------------------------------------------------------------
def test_plot_weights_is_diverging_centred_and_stamped(synthetic_model):
    import matplotlib.pyplot as plt

    kernels = expanded_weights(synthetic_model, "3a", "3b:379")[:6]
    fig = plotting.plot_weights(kernels, titles=[f"3a:{i}" for i in range(6)], model=synthetic_model)
    images = [im for ax in fig.axes for im in ax.get_images()]
    assert len(images) == 6
    vmin, vmax = images[0].get_clim()
    assert vmin == -vmax == -float(kernels.abs().max()) and images[0].get_cmap().name == "circuitscope_diverging"
    assert any("SYNTHETIC" in t.get_text() for t in fig.texts)
    plt.close(fig)
    fig = plotting.plot_weights(kernels.reshape(2, 3, 5, 5), caption="planted")
    assert [t.get_text() for t in fig.texts] == ["planted"]
    plt.close(fig)


def test_plot_circuit_colours_edges_by_sign(synthetic_model):
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch

    thumbs = {"4c:447": torch.rand(3, 32, 32)}
    kernel = weights_between(synthetic_model, "4b:237", "4c:447")
    fig = plotting.plot_circuit(
        ["4b:237", "4b:373", "4c:447"],
        [("4b:237", "4c:447", 1.0), ("4b:373", "4c:447", -0.5)],
        thumbnails=thumbs,
        model=synthetic_model,
    )
    arrows = [p for p in fig.axes[0].patches if isinstance(p, FancyArrowPatch)]
    (r1, _, b1, _), (r2, _, b2, _) = (a.get_edgecolor() for a in arrows)
    assert r1 > b1 and b2 > r2  # excitation red, inhibition blue
    assert any("SYNTHETIC" in t.get_text() for t in fig.texts)
    plt.close(fig)
    fig = plotting.plot_circuit(["4b:237", "4c:447"], [("4b:237", "4c:447", kernel)], caption="x")
    assert len(fig.axes[0].child_axes) == 1  # the kernel drawn on the edge
    plt.close(fig)
    with pytest.raises(ValueError, match="both ends"):
        plotting.plot_circuit(["4b:237"], [("4b:237", "4c:447", 1.0)])


# (The reproduction script is tested in test_reproduce.py.)


def test_weight_figures_are_closed_so_a_notebook_shows_them_once(synthetic_model):
    import matplotlib.pyplot as plt

    before = plt.get_fignums()
    kernel = weights_between(synthetic_model, "4b:237", "4c:447")
    fig = plotting.plot_weights(kernel, model=synthetic_model)
    assert plt.get_fignums() == before and fig.axes  # returned, drawn, but not left open in pyplot
    fig = plotting.plot_circuit(["4b:237", "4c:447"], [("4b:237", "4c:447", kernel)], model=synthetic_model)
    assert plt.get_fignums() == before and fig.axes


# -- local response normalisation, the pool branch, where a kernel is positive --------------------
def test_the_lrn_stand_in_is_lrns_jacobian_at_zero_and_exact_at_its_input(random_model):
    from circuitscope.core.hooks import activations
    from circuitscope.core.models.layers import local_response_norm

    zero = torch.zeros(1, 12, 2, 2, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(local_response_norm, zero).reshape(48, 48)
    assert torch.allclose(jac, torch.eye(48, dtype=torch.float64) * 2**-0.5, atol=1e-15)
    # Frozen at a given input, x * r(x0) reproduces the real LRN's output at that input exactly.
    torch.manual_seed(0)
    images = torch.rand(2, 3, 48, 48, dtype=torch.float64)
    acts = activations(random_model, images, ["conv2d2", "localresponsenorm1"])
    r = circuits.lrn_scale(random_model, images, reduce=None)
    assert r.shape == acts["conv2d2"].shape and float(r.max()) <= 2**-0.5 + 1e-12
    assert torch.allclose(acts["conv2d2"] * r, acts["localresponsenorm1"], rtol=1e-12, atol=1e-12)
    assert torch.allclose(circuits.lrn_scale(random_model, images), r.mean(dim=(0, 2, 3)))


def _frozen_lrn(scale):
    def local_response_norm(x):  # localresponsenorm0 runs before the injected source: leave it be
        if isinstance(scale, torch.Tensor) and x.shape != scale.shape:
            return x
        return x * (scale if isinstance(scale, float) else scale.to(x))

    return local_response_norm


@pytest.mark.parametrize("unit", ["3a:136", "3a:70", "3a:230"])  # 1x1, 3x3 and 5x5 branches of 3a
def test_conv2d2_to_mixed3a_expands_through_lrn_as_the_relu_free_network(random_model, monkeypatch, unit):
    """Against autograd through the model's own forward pass with ReLUs removed, the max pool
    averaged and LRN frozen at zero input (x / sqrt(2)): the expanded weight is its Jacobian."""
    monkeypatch.setattr(inception_module, "local_response_norm", _frozen_lrn(2**-0.5))
    kernel = expanded_weights(random_model, "conv2d2", unit)  # (192, k, k)
    grad = patched_model_gradient(random_model, "conv2d2", "mixed3a_pre_relu", parse_unit(unit)[1], 31,
                                  monkeypatch, "average")  # fmt: skip
    k = kernel.shape[-1]
    nz = grad.abs().sum(0).nonzero()
    r0, c0 = int(nz[:, 0].min()), int(nz[:, 1].min())
    kr0, kc0 = (int(v) for v in kernel.abs().sum(0).nonzero().min(dim=0).values)
    window = grad[:, r0 - kr0 : r0 - kr0 + k, c0 - kc0 : c0 - kc0 + k]
    assert window.abs().sum() == pytest.approx(float(grad.abs().sum()))  # nothing outside the window
    assert torch.allclose(window, kernel, rtol=0, atol=1e-12 * float(kernel.abs().max()))
    # ignoring the LRN would be off by exactly its scale
    ident = expanded_weights(random_model, "conv2d2", unit, lrn="identity")
    assert torch.allclose(ident * 2**-0.5, kernel, rtol=1e-12, atol=0)
    assert "local response normalisation" in circuits.describe_path(random_model, "conv2d2", unit)


def test_a_frozen_lrn_map_at_a_given_input_is_the_gradient_of_that_linear_network(random_model, monkeypatch):
    torch.manual_seed(1)
    scales = torch.rand(192, dtype=torch.float64) * 0.5 + 0.2
    per_channel = expanded_weights(random_model, "conv2d2", "3a:100", lrn=scales)
    assert torch.allclose(per_channel, expanded_weights_by_gradient(random_model, "conv2d2", "3a:100", lrn=scales),
                          rtol=0, atol=1e-12 * float(per_channel.abs().max()))  # fmt: skip
    assert not torch.allclose(per_channel, expanded_weights(random_model, "conv2d2", "3a:100"))
    size = 31
    frozen = torch.rand(1, 192, size, size, dtype=torch.float64) * 0.7  # r(x0) at some input x0
    by_grad = expanded_weights_by_gradient(random_model, "conv2d2", "3a:100", size=size, lrn=frozen)
    monkeypatch.setattr(inception_module, "local_response_norm", _frozen_lrn(frozen))
    grad = patched_model_gradient(random_model, "conv2d2", "mixed3a_pre_relu", 100, size, monkeypatch, "average")
    k = by_grad.shape[-1]
    nz = grad.abs().sum(0).nonzero().min(dim=0).values
    r0, c0 = int(nz[0]), int(nz[1])
    kr0, kc0 = (int(v) for v in by_grad.abs().sum(0).nonzero().min(dim=0).values)
    window = grad[:, r0 - kr0 : r0 - kr0 + k, c0 - kc0 : c0 - kc0 + k]
    assert torch.allclose(window, by_grad, rtol=0, atol=1e-12 * float(by_grad.abs().max()))


def test_the_pool_branch_can_replicate_its_1x1_weight_as_the_articles_figures_do(random_model):
    m = random_model
    rep = expanded_weights(m, "mixed3a", "3b:450", pool="replicate")  # (256, 3, 3)
    reduce = w(m, "mixed3b_pool_reduce")[450 - 416, :, 0, 0]
    assert torch.equal(rep, reduce[:, None, None].expand(-1, 3, 3))  # every cell is the 1x1 weight
    assert torch.allclose(rep, 9 * expanded_weights(m, "mixed3a", "3b:450"))  # the default averages
    assert torch.equal(expanded_weights(m, "mixed3a", "3b:379", pool="replicate"),
                       expanded_weights(m, "mixed3a", "3b:379"))  # other branches: no pool  # fmt: skip
    by_grad = expanded_weights_by_gradient(m, "mixed3a", "3b:450", pool="replicate")
    assert torch.allclose(rep, by_grad, rtol=0, atol=1e-12 * float(rep.abs().max()))
    assert "replicated" in circuits.describe_path(m, "mixed3a", "3b:450", pool="replicate")


def test_kernel_regions_say_where_a_kernel_excites_not_only_its_sum():
    k = torch.zeros(5, 5)
    k[:2], k[3:] = 1.0, -1.0  # excites at the top, inhibits at the bottom: sums to zero
    top = circuits.kernel_regions(k)
    assert top.total == 0 and top.sign("top") == "+" and top.sign("bottom") == "-"
    assert top.direction == pytest.approx(90.0) and top.strength == pytest.approx(1.5)
    assert top.positive_centroid == pytest.approx((0.0, 1.5)) and top.negative_centroid == pytest.approx((0.0, -1.5))
    assert "top" in top.describe().split("most positive towards the")[1]
    left = circuits.kernel_regions(torch.rot90(k, 1, (0, 1)))  # counter-clockwise: the top goes left
    assert left.direction == pytest.approx(180.0) and left.sign("left") == "+" and left.sign("right") == "-"
    diag = circuits.kernel_regions(torch.rot90(k, -1, (0, 1)) + torch.flipud(k))  # right and bottom
    assert diag.direction == pytest.approx(315.0)
    centre = torch.zeros(5, 5)
    centre[2, 2], centre[0, 0], centre[4, 4] = 3.0, -1.0, -1.0
    sym = circuits.kernel_regions(centre)
    assert sym.regions["centre"] == 3.0 and sym.regions["surround"] == -2.0
    assert sym.direction != sym.direction and sym.strength == 0.0  # symmetric: no side
    with pytest.raises(ValueError, match="square"):
        circuits.kernel_regions(torch.zeros(3, 5))
