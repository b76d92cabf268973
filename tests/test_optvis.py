"""circuitscope.methods.optvis: parameterizations, transforms, objectives and the render loop.

Exact answers where they exist (objectives on fixed activations, transforms at fixed offsets,
the Fourier image's 1/f spectrum) and planted ground truth for the optimisation: the synthetic
model's conv2d0 is a known bank of Gabor and colour filters.
"""

from __future__ import annotations

import copy
import math

import pytest
import torch

import circuitscope as cs
from circuitscope.methods.optvis import objectives as O
from circuitscope.methods.optvis import param as P
from circuitscope.methods.optvis import transform as T
from circuitscope.methods.optvis.render import (
    RedirectedReLU,
    RenderOptions,
    forward_to,
    redirected_relu,
    redirected_relu_grad,
    render,
)


# -- param ------------------------------------------------------------------------------------
def test_color_correlation_normalised_by_largest_column_norm():
    assert P.MAX_NORM_SVD_SQRT == pytest.approx(0.4619524, abs=1e-6)
    assert P.COLOR_CORRELATION_NORMALIZED.norm(dim=0).max().item() == pytest.approx(1.0, abs=1e-6)


def test_decorrelate_colors_multiplies_each_pixel_by_the_matrix():
    v = torch.tensor([0.3, -1.0, 2.0])
    t = v.view(1, 3, 1, 1).expand(2, 3, 4, 5)
    expected = P.COLOR_CORRELATION_NORMALIZED @ v
    out = P.decorrelate_colors(t)
    assert torch.allclose(out, expected.view(1, 3, 1, 1).expand_as(out), atol=1e-6)
    assert torch.allclose(P.to_rgb(t, decorrelate=False), torch.sigmoid(t))


@pytest.mark.parametrize("decay_power", [1.0, 2.0])
def test_fourier_image_amplitude_spectrum_decays_as_one_over_f(decay_power):
    h = w = 64
    img = P.FourierImage(64, (h, w), sd=1.0, decay_power=decay_power, decorrelate=False,
                         generator=torch.Generator().manual_seed(0))  # fmt: skip
    with torch.no_grad():
        amplitude = torch.fft.rfft2(img.raw()).abs().mean(dim=(0, 1))  # (h, w // 2 + 1)
    f = P.frequencies(h, w)
    inner = (f > 1.5 / w) & (torch.arange(w // 2 + 1) < w // 2)  # skip the DC and Nyquist columns
    x, y = f[inner].log(), amplitude[inner].double().log()
    slope = ((x - x.mean()) * (y - y.mean())).sum() / ((x - x.mean()) ** 2).sum()
    assert slope.item() == pytest.approx(-decay_power, abs=0.05)


def test_images_have_the_right_shape_range_and_seed():
    for kind in ("fft", "pixel"):
        for size in (20, (17, 24)):
            a = P.image(size, batch=3, param=kind, sd=0.5, generator=torch.Generator().manual_seed(1))
            b = P.image(size, batch=3, param=kind, sd=0.5, generator=torch.Generator().manual_seed(1))
            hw = (size, size) if isinstance(size, int) else size
            out = a()
            assert out.shape == (3, 3, *hw)
            assert 0 <= out.min() and out.max() <= 1
            assert torch.equal(out, b())
    with pytest.raises(ValueError, match="fft"):
        P.image(8, param="wavelet")


# -- transform ----------------------------------------------------------------------------------
def _ramp(n=1, c=1, h=6, w=7):
    return torch.arange(n * c * h * w, dtype=torch.float32).view(n, c, h, w)


def test_pad_and_jitter_give_exact_outputs():
    x = _ramp()
    padded = T.pad(x, 2, value=0.5)
    assert padded.shape == (1, 1, 10, 11)
    assert torch.equal(padded[..., 2:-2, 2:-2], x)
    assert (padded[..., :2, :] == 0.5).all() and (padded[..., :, -2:] == 0.5).all()
    assert torch.equal(T.jitter_by(x, 1, 2, 3), x[..., 1:4, 2:6])
    assert torch.equal(T.jitter_by(x, 0, 0, 3), x[..., :3, :4])
    with pytest.raises(ValueError, match="offsets"):
        T.jitter_by(x, 4, 0, 3)


def test_scale_is_bilinear_with_half_pixel_centres():
    x = torch.tensor([[[[0.0, 1.0]]]]).expand(1, 1, 2, 2)
    assert torch.allclose(T.scale_by(x, 2.0)[0, 0, 0], torch.tensor([0.0, 0.25, 0.75, 1.0]))
    y = _ramp(h=10, w=10)
    assert T.scale_by(y, 1.0) is y
    assert T.scale_by(y, 1.1).shape[-2:] == (11, 11)
    assert T.scale_by(y, 0.9).shape[-2:] == (9, 9)


def test_rotate_is_counter_clockwise_about_the_centre():
    x = torch.rand(2, 3, 8, 8, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(T.rotate_by(x, 90), torch.rot90(x, 1, dims=(-2, -1)), atol=1e-5)
    assert torch.allclose(T.rotate_by(x, -90), torch.rot90(x, -1, dims=(-2, -1)), atol=1e-5)
    assert T.rotate_by(x, 0) is x
    ones = torch.ones(1, 1, 9, 9)
    turned = T.rotate_by(ones, 45, fill=0.5)
    assert turned[0, 0, 0, 0].item() == pytest.approx(0.5)  # corner from outside: the fill
    assert turned[0, 0, 4, 4].item() == pytest.approx(1.0)  # centre stays


def test_random_transforms_are_seeded_and_follow_lucid():
    assert len(T.LUCID_SCALES) == 11 and T.LUCID_SCALES[0] == 0.9 and T.LUCID_SCALES[-1] == 1.1
    assert sorted(set(T.LUCID_ANGLES)) == list(range(-10, 11)) and T.LUCID_ANGLES.count(0) == 6
    x = torch.rand(2, 3, 32, 32, requires_grad=True)
    std = T.standard_transforms()
    a = std(x, torch.Generator().manual_seed(3))
    b = std(x, torch.Generator().manual_seed(3))
    assert torch.equal(a, b)
    sizes = {std(x, torch.Generator().manual_seed(s)).shape[-1] for s in range(20)}
    assert min(sizes) >= int(0.9 * (32 + 24 - 8)) - 4 and max(sizes) <= int(1.1 * (32 + 24 - 8)) - 4
    a.sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    g = torch.Generator().manual_seed(0)
    for _ in range(10):
        assert T.Jitter(8)(x, g).shape[-2:] == (24, 24)
    assert T.make_transforms("none")(x) is x


# -- objectives ---------------------------------------------------------------------------------
@pytest.fixture
def acts():
    g = torch.Generator().manual_seed(0)
    return {"a": torch.randn(4, 5, 3, 4, generator=g), "b": torch.randn(4, 6, 2, 2, generator=g),
            O.LOGITS: torch.randn(4, 1008, generator=g)}  # fmt: skip


def _diversity_brute_force(x):
    n = x.shape[0]
    grams = [(x[i].flatten(1) @ x[i].flatten(1).T).flatten() for i in range(n)]
    grams = [g / g.norm() for g in grams]
    return torch.stack([sum(grams[i] @ grams[j] for j in range(n) if j != i) for i in range(n)])


def test_objectives_on_fixed_activations_equal_their_definitions(acts):
    a = acts["a"]
    assert torch.allclose(O.channel("a", 2)(acts), a[:, 2].mean(dim=(1, 2)))
    assert torch.allclose(O.neuron("a", 1)(acts), a[:, 1, 1, 2])  # (3, 4): row 3 // 2, col 4 // 2
    assert torch.allclose(O.neuron("b", 1)(acts), acts["b"][:, 1, 1, 1])
    assert torch.allclose(O.neuron("a", 4, x=3, y=0)(acts), a[:, 4, 0, 3])
    v = torch.tensor([1.0, -2.0, 0.0, 0.5, 3.0])
    expected = sum(v[c] * a[:, c] for c in range(5)).mean(dim=(1, 2))
    assert torch.allclose(O.direction("a", v)(acts), expected, atol=1e-5)
    assert torch.allclose(O.logit(7)(acts), acts[O.LOGITS][:, 7])
    assert O.logit(cs.labels()[5]).n == 5
    div = O.diversity("a")(acts)
    assert torch.allclose(div, _diversity_brute_force(a), atol=1e-5)
    same = {"a": a[:1].expand(3, -1, -1, -1)}
    assert torch.allclose(O.diversity("a")(same), torch.full((3,), 2.0), atol=1e-5)
    assert O.diversity("a")({"a": a[:1]}).item() == 0


def test_objectives_combine_like_numbers(acts):
    ch, ne, dv = O.channel("a", 0), O.neuron("b", 3), O.diversity("a")
    combo = ch - 0.5 * ne + 2 - 1e2 * dv
    expected = ch(acts) - 0.5 * ne(acts) + 2 - 1e2 * dv(acts)
    assert torch.allclose(combo(acts), expected, atol=1e-4)
    assert torch.allclose((-ch)(acts), -ch(acts))
    assert torch.allclose((ch / 4)(acts), ch(acts) / 4)
    assert torch.allclose((3 - ch)(acts), 3 - ch(acts))
    assert torch.allclose(sum([ch, ne])(acts), ch(acts) + ne(acts))
    assert combo.layers == ("a", "b") and not combo.elementwise and (ch + ne).elementwise
    assert repr(O.channel("mixed4a", 476) - 0.1 * O.diversity("mixed4a")) == (
        "channel('mixed4a', 476) - 0.1·diversity('mixed4a')"
    )
    with pytest.raises(TypeError, match="numbers"):
        ch * ne


def test_objectives_per_batch_element(acts):
    ch, dv = O.channel("a", 1), O.diversity("a")
    one = ch.batch(2)(acts)
    assert torch.allclose(one, torch.tensor([0, 0, 1.0, 0]) * ch(acts))
    assert torch.allclose(dv.batch(1)(acts), torch.tensor([0, 1.0, 0, 0]) * dv(acts))
    objs = [O.channel("a", 0), O.neuron("b", 2), O.channel("a", 4), O.channel("b", 1) - dv]
    per = O.per_element(objs)(acts)
    expected = torch.stack([o(acts)[i] for i, o in enumerate(objs)])
    assert torch.allclose(per, expected, atol=1e-5)
    with pytest.raises(ValueError, match="objectives for a batch"):
        O.per_element(objs[:3])(acts)
    assert O.as_objective("mixed4a:476").description == "channel('mixed4a', 476)"


# -- redirected ReLU ----------------------------------------------------------------------------
def test_redirected_relu_gradient_only_changes_where_the_true_one_is_zero():
    x = torch.tensor([[-1.0, 2.0, -3.0], [-1.0, -2.0, -3.0]], requires_grad=True)
    g = torch.tensor([[-1.0, 5.0, 2.0], [-1.0, 5.0, 2.0]])  # gradient of the loss
    (grad,) = torch.autograd.grad(RedirectedReLU.apply(x), x, g)
    assert torch.equal(grad[0], torch.tensor([0.0, 5.0, 0.0]))  # ReLU passes something: unchanged
    # nothing passes for element 1: let through what pushes x up (g < 0), block what pushes down
    assert torch.equal(grad[1], torch.tensor([-1.0, 0.0, 0.0]))
    assert torch.equal(RedirectedReLU.apply(x.detach()), torch.relu(x.detach()))
    # a batch where every element passes something gets exactly the ReLU gradient
    x1 = x.detach()[:1].requires_grad_()
    (grad1,) = torch.autograd.grad(RedirectedReLU.apply(x1), x1, g[:1])
    assert torch.equal(grad1, torch.tensor([[0.0, 5.0, 0.0]]))


def test_redirected_relu_grad_is_the_same_with_and_without_host_sync():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(6, 4, 5, 5, generator=gen)
    g = torch.randn(6, 4, 5, 5, generator=gen)
    x[1] = -x[1].abs()  # dead unit, gradient to redirect
    x[2], g[3] = -x[2].abs(), 0  # dead with g; no gradient at all
    for x_, g_ in [(x, g), (x[:1], g[:1]), (x[1:4], g[1:4]), (x[3:4], g[3:4])]:
        synced = redirected_relu_grad(g_.clone(), x_, host_sync=True)
        torch.testing.assert_close(synced, redirected_relu_grad(g_.clone(), x_, host_sync=False), rtol=0, atol=0)
    expected_dead = g[1].masked_fill((x[1] < 0) & (g[1] > 0), 0)
    assert torch.equal(redirected_relu_grad(g, x)[1], expected_dead) and expected_dead.abs().sum() > 0


def test_redirected_relu_context_revives_a_dead_unit(synthetic_model):
    model = synthetic_model
    grey = torch.full((1, 3, 32, 32), 0.5, requires_grad=True)
    # conv2d0:50 is a red-green blob: on a grey image its pre-ReLU value is its (negative) bias.
    with torch.no_grad():
        assert (cs.activations(model, grey, ["conv2d0_pre_relu"])["conv2d0_pre_relu"][0, 50] < 0).all()

    def gradient():  # of the loss, -objective, as the renderer minimises it
        loss = -forward_to(model, grey, ["conv2d0"])["conv2d0"][:, 50].mean()
        return torch.autograd.grad(loss, grey)[0]

    assert gradient().abs().sum() == 0
    with redirected_relu(model) as switch:
        assert gradient().abs().sum() > 0
        switch.enabled = False
        assert gradient().abs().sum() == 0
    assert all(not p._forward_hooks for p in model.hook_points.values())
    assert gradient().abs().sum() == 0


# -- render ---------------------------------------------------------------------------------------
# conv2d0 of the synthetic model: luminance Gabors at 0, 45, 90, 135 degrees, red-green Gabors
# at 0 and 90 degrees, blue-yellow Gabors at 45 and 135 degrees.
PLANTED = [0, 2, 4, 6, 32, 36, 42, 46]


def test_batched_render_excites_each_planted_channel_most(synthetic_model):
    images = render(synthetic_model, [O.channel("conv2d0", c) for c in PLANTED], size=32, steps=32,
                    seed=0, progress=False)  # fmt: skip
    assert images.shape == (8, 3, 32, 32) and images.device.type == "cpu"
    assert 0 <= images.min() and images.max() <= 1
    with torch.no_grad():
        acts = cs.activations(synthetic_model, images, ["conv2d0"])["conv2d0"][:, PLANTED].mean(dim=(-2, -1))
    own = acts.diagonal()  # acts[i, k]: image i, planted channel k
    others = acts.masked_fill(torch.eye(8, dtype=torch.bool), -math.inf).amax(dim=0)
    assert (own > others).all(), f"image i should excite channel i most; own {own}, best other {others}"


def test_render_never_computes_weight_gradients(synthetic_model):
    model = copy.deepcopy(synthetic_model)
    model.requires_grad_(True)  # even a model that asks for them gets none
    render(model, O.channel("mixed3a", 3), size=24, steps=2, seed=0, progress=False)
    assert all(p.grad is None for p in model.parameters())
    assert all(p.requires_grad for p in model.parameters())  # restored
    assert not any(p.requires_grad for p in synthetic_model.parameters())
    render(synthetic_model, O.channel("conv2d1", 0), size=16, steps=1, seed=0, progress=False)
    assert all(p.grad is None for p in synthetic_model.parameters())


def test_render_computes_only_up_to_the_deepest_layer(synthetic_model):
    seen = []
    points = synthetic_model.hook_points.values()
    handles = [p.register_forward_hook(lambda m, i, o: seen.append(m.name)) for p in points]
    try:
        objective = O.channel("conv2d1", 1) + O.neuron("conv2d0", 2)
        render(synthetic_model, objective, size=16, steps=1, progress=False)
        assert seen[-1] == "conv2d1" and "conv2d2" not in seen
        seen.clear()
        render(synthetic_model, O.channel("conv2d1", 1), size=16, steps=1, progress=False,
               options=RenderOptions(stop_early=False))
        assert "mixed5b" in seen
    finally:
        for h in handles:
            h.remove()


def test_render_is_seeded_and_keeps_thresholds(synthetic_model):
    kw = {"size": 16, "steps": 4, "progress": False}
    a = render(synthetic_model, O.channel("conv2d1", 5), seed=7, thresholds=[2], **kw)
    b = render(synthetic_model, O.channel("conv2d1", 5), seed=7, **kw)
    c = render(synthetic_model, O.channel("conv2d1", 5), seed=8, **kw)
    assert sorted(a) == [2, 4] and a[2].shape == (1, 3, 16, 16)
    assert torch.equal(a[4], b) and not torch.equal(b, c) and not torch.equal(a[2], a[4])
    with pytest.raises(ValueError, match="thresholds"):
        render(synthetic_model, O.channel("conv2d1", 5), thresholds=[9], **kw)


def test_render_batches_one_objective_and_checks_names(synthetic_model):
    obj = O.channel("conv2d1", 3) - 10 * O.diversity("conv2d1")
    images = render(synthetic_model, obj, batch=3, size=16, steps=2, seed=0, progress=False, param="pixel")
    assert images.shape == (3, 3, 16, 16)
    with pytest.raises(ValueError, match="one per image"):
        render(synthetic_model, [O.channel("conv2d1", 0)] * 2, batch=3, steps=1, progress=False)
    with pytest.raises(KeyError, match="mixed9z"):
        render(synthetic_model, O.channel("mixed9z", 0), steps=1, progress=False)


def test_render_fast_paths_run_on_the_cpu(synthetic_model):
    fast_paths = [{"options": RenderOptions(autocast=torch.bfloat16)}, {"options": RenderOptions(channels_last=True)}]
    fast_paths.append({"transforms": "none", "redirect_steps": 0})
    for kw in fast_paths:
        images = render(synthetic_model, "conv2d1:0", size=16, steps=2, seed=0, progress=False, **kw)
        assert images.dtype == torch.float32 and torch.isfinite(images).all()


def test_render_shows_progress_and_returns_on_ctrl_c(synthetic_model, capsys):
    class Interrupting(O.Channel):
        calls = 0

        def __call__(self, acts):
            Interrupting.calls += 1
            if Interrupting.calls == 3:
                raise KeyboardInterrupt
            return super().__call__(acts)

    with pytest.warns(UserWarning, match="interrupted after 2 of 50 steps"):
        images = render(synthetic_model, Interrupting("conv2d0", 1), size=16, steps=50, seed=0)
    assert images.shape == (1, 3, 16, 16)
    assert "/50" in capsys.readouterr().err  # the tqdm bar
