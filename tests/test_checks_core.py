"""The checks' protection against learner code that patches what the references use.

A learner cell runs in the same kernel as the checks. Before ``checks._core.pristine`` a cell
like ``torch.softmax = lambda x, dim=None, **k: x`` made a wrong ``top_k_classes`` (returning
logits) pass, because the check computed its reference with library code that looks
``torch.softmax`` up at run time. Here every such exploit is tried twice: with the protection
switched off it must pass (so the exploit is real), with it on the check must fail; and after
the check the learner's patches must be back in place, so learner code behaves as written.
"""

from __future__ import annotations

import builtins
import contextlib
import math
import sys
import textwrap
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F

import circuitscope as cs
from circuitscope.checks import CheckFailed, ch1
from circuitscope.checks import _core as C
from circuitscope.models.layers import same_padding
from circuitscope.receptive_field import kernel_strides
from circuitscope.receptive_field import receptive_field as library_receptive_field

ROOT = Path(__file__).resolve().parents[1]
SOLUTION = ROOT / "solutions" / "ch1_introduction" / "ch1_exercises.ipynb"
EXERCISES = {
    "check_preprocess": "preprocess",
    "check_top_k": "top_k_classes",
    "check_capture": "capture_activations",
    "check_strongest_channels": "strongest_channels",
    "check_receptive_field": "receptive_field",
    "check_strongest_patch": "strongest_patch",
}


# =============================================================================================
# Helpers
# =============================================================================================
def _namespace() -> dict:
    """What the notebook's setup cell defines."""
    return {
        "math": math,
        "np": np,
        "torch": torch,
        "F": F,
        "cs": cs,
        "same_padding": same_padding,
        "kernel_strides": kernel_strides,
        "library_receptive_field": library_receptive_field,
    }


def _learner(code: str):
    """The one function ``code`` defines, as a notebook cell would define it."""
    ns = _namespace()
    exec(compile(textwrap.dedent(code), "<learner cell>", "exec"), ns)  # noqa: S102
    return next(v for k, v in ns.items() if k in EXERCISES.values())


@contextlib.contextmanager
def patched(owner, name: str, value):
    """``owner.name = value`` for the duration, undone exactly (an attribute a class only
    inherited, such as ``torch.Tensor.argmax``, is deleted again rather than left behind)."""
    namespace = vars(owner)
    had = name in namespace
    old = namespace.get(name)
    setattr(owner, name, value)
    try:
        yield value
    finally:
        if had:
            setattr(owner, name, old)
        elif name in vars(owner):
            delattr(owner, name)


@contextlib.contextmanager
def unprotected():
    """The checks as they were before ``pristine``: comparisons bound at import, nothing else."""
    saved = C._enter, C._leave, C._SNAPSHOT.differences
    C._enter, C._leave = (lambda: C._Outside()), (lambda outside: None)
    C._SNAPSHOT.differences = list
    try:
        yield
    finally:
        C._enter, C._leave = saved[:2]
        C._SNAPSHOT.differences = saved[2]


@pytest.fixture(scope="module")
def reference() -> dict:
    """The solution notebook's functions."""
    nb = nbformat.read(SOLUTION, as_version=4)
    ns = _namespace()
    for cell in nb.cells:
        if cell.cell_type == "code" and cell.metadata.get("nbgrader", {}).get("solution"):
            exec(compile(cell.source, "<solution cell>", "exec"), ns)  # noqa: S102
    return {name: ns[name] for name in EXERCISES.values()}


# =============================================================================================
# The exploits: a patch (or two) and a wrong answer that the patch makes the reference agree with
# =============================================================================================
def _fake_topk(self, k, dim=-1, largest=True, sorted=True):
    shape = list(self.shape)
    shape[dim] = k
    return torch.zeros(shape), torch.zeros(shape, dtype=torch.long)


def _sum_as_mean(self, dim=None, keepdim=False, dtype=None):
    return self.sum() if dim is None else self.sum(dim=dim, keepdim=keepdim)


def _zeros_interpolate(input, size=None, **kwargs):
    return torch.zeros(*input.shape[:2], *size)


def _zeros_contiguous(a, dtype=None, **kwargs):
    return np.zeros(np.shape(a), dtype=dtype or np.float32)


def _argmax_zero(self, *args, **kwargs):
    return torch.zeros((), dtype=torch.long)


def _always_true(*args, **kwargs):
    return True


def _round_to_zero(x, ndigits=None):
    return 0


LOGITS_AS_PROBABILITIES = """
    def top_k_classes(model, images, k=5):
        with torch.no_grad():
            values, indices = model(images).topk(k, dim=-1)
        return [[(int(i), cs.label(int(i)), float(v)) for v, i in zip(vr, ir)] for vr, ir in zip(values, indices)]
"""
ZERO_CHANNELS = """
    def strongest_channels(acts, k=10):
        return torch.zeros(acts.shape[0], k), torch.zeros(acts.shape[0], k, dtype=torch.long)
"""
SUM_NOT_MEAN = """
    def strongest_channels(acts, k=10):
        return acts.sum(dim=(2, 3)).topk(k, dim=1)
"""
TORCH_TOPK_OF_SUM = """
    def strongest_channels(acts, k=10):
        return torch.topk(acts.sum(dim=(2, 3)), k, dim=1)
"""
CORNER_PATCH = """
    def strongest_patch(acts, channel, layer, input_size=224):
        return library_receptive_field(layer, input_size).box(0, 0)
"""
BLACK_IMAGE = """
    def preprocess(image, size=224):
        return torch.zeros(3, size, size)
"""
SQUASHED = """
    def preprocess(image, size=224):
        x = cs.images.to_tensor(image)
        return F.interpolate(x[None], size=(size, size), mode="bilinear", antialias=True, align_corners=False)[0]
"""
NO_STRIDE_PRODUCT = """
    def receptive_field(ops, input_size):
        size, jump, start, n = 1, 1, 0.0, input_size
        for k, s in ops:
            p, _ = same_padding(n, k, s)
            size += k - 1
            start += ((k - 1) / 2 - p) * jump
            jump *= s
            n = math.ceil(n / s)
        return size, jump, int(start)
"""


@dataclass
class Exploit:
    check: str
    patches: list  # (owner, name, value)
    code: str
    real: bool = True  # True: the patch made the check pass before pristine existed


EXPLOITS = {
    "torch.softmax returns its input (top-k returns logits)": Exploit(
        "check_top_k", [(torch, "softmax", lambda x, dim=None, **k: x)], LOGITS_AS_PROBABILITIES
    ),
    "torch.Tensor.topk returns zeros": Exploit(
        "check_strongest_channels", [(torch.Tensor, "topk", _fake_topk)], ZERO_CHANNELS
    ),
    "torch.topk returns zeros": Exploit(
        "check_strongest_channels", [(torch, "topk", _fake_topk)], TORCH_TOPK_OF_SUM, real=False
    ),
    "torch.Tensor.mean sums": Exploit(
        "check_strongest_channels", [(torch.Tensor, "mean", _sum_as_mean)], SUM_NOT_MEAN
    ),
    "torch.Tensor.argmax returns 0": Exploit(
        "check_strongest_patch", [(torch.Tensor, "argmax", _argmax_zero)], CORNER_PATCH
    ),
    "torch.nn.functional.interpolate returns zeros": Exploit(
        "check_preprocess", [(F, "interpolate", _zeros_interpolate)], BLACK_IMAGE
    ),
    "numpy.ascontiguousarray returns zeros": Exploit(
        "check_preprocess", [(np, "ascontiguousarray", _zeros_contiguous)], BLACK_IMAGE
    ),
    "numpy.allclose and torch.allclose always agree": Exploit(
        "check_strongest_channels",
        [(np, "allclose", _always_true), (torch, "allclose", _always_true)],
        SUM_NOT_MEAN,
        real=False,  # the comparisons were already bound at import
    ),
    "builtins.round returns 0 (the reference squashes too)": Exploit(
        "check_preprocess", [(builtins, "round", _round_to_zero)], SQUASHED
    ),
    "builtins.isinstance always True": Exploit(
        "check_receptive_field", [(builtins, "isinstance", _always_true)], NO_STRIDE_PRODUCT, real=False
    ),
}


def _run_exploit(exploit: Exploit, hidden: bool = False):
    fn = _learner(exploit.code)
    check = getattr(ch1, exploit.check)
    with contextlib.ExitStack() as stack:
        values = [stack.enter_context(patched(owner, name, value)) for owner, name, value in exploit.patches]
        error = None
        try:
            check(fn, hidden=hidden)
        except CheckFailed as err:
            error = err
        # The learner's patches are back after the check, pass or fail.
        for (owner, name, _), value in zip(exploit.patches, values):
            assert vars(owner).get(name) is value, f"{owner.__name__}.{name} was not put back after the check"
    return error


@pytest.mark.parametrize("name", sorted(EXPLOITS))
def test_exploit_fails(name, capsys):
    exploit = EXPLOITS[name]
    error = _run_exploit(exploit)
    assert error is not None, f"{name}: a wrong answer passed {exploit.check}"
    assert "expected" in str(error) or "hint" in str(error)
    assert "\u2714" not in capsys.readouterr().out


@pytest.mark.parametrize("name", sorted(n for n, e in EXPLOITS.items() if e.real))
def test_exploit_is_real_without_pristine(name, capsys):
    # Without the protection the same wrong answer passes: the test above means something.
    with unprotected():
        error = _run_exploit(EXPLOITS[name])
    assert error is None, f"{name}: the exploit no longer fools an unprotected check ({error})"
    assert capsys.readouterr().out.startswith("\u2714")


def test_hidden_cases_resist_an_exploit_too():
    assert _run_exploit(EXPLOITS["torch.softmax returns its input (top-k returns logits)"], hidden=True)


# -- torch's global state: function modes, global hooks, subclasses --------------------------
class _EverythingIsClose(torch.overrides.TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        if getattr(func, "__name__", "") == "isclose":
            return torch.ones(torch.broadcast_shapes(args[0].shape, args[1].shape), dtype=torch.bool)
        return func(*args, **(kwargs or {}))


def test_a_global_torch_function_mode_cannot_make_comparisons_lie():
    # "sum, not mean" ranks the channels right; only the scores are wrong, and a mode that
    # answers every isclose with True would hide that.
    fn = _learner(SUM_NOT_MEAN)
    mode = _EverythingIsClose()
    mode.__enter__()
    try:
        with unprotected():
            ch1.check_strongest_channels(fn)  # the exploit is real
        with pytest.raises(CheckFailed, match="SUM"):
            ch1.check_strongest_channels(fn)
        assert torch.overrides._get_current_function_mode() is mode, "the learner's mode is gone"
    finally:
        mode.__exit__(None, None, None)


def test_a_global_forward_hook_cannot_rewrite_the_reference_model():
    # Every (N, 1008) output made uniform: the softmax of a uniform vector is itself, so logits
    # and probabilities agree, and topk picks the same (tied) classes for both.
    def uniform(module, inputs, output):
        if isinstance(output, torch.Tensor) and output.dim() == 2 and output.shape[-1] == 1008:
            return torch.full_like(output, 1 / 1008)
        return None

    fn = _learner(LOGITS_AS_PROBABILITIES)
    handle = torch.nn.modules.module.register_module_forward_hook(uniform)
    try:
        with unprotected():
            ch1.check_top_k(fn)  # the exploit is real
        with pytest.raises(CheckFailed):
            ch1.check_top_k(fn)
        assert handle.id in torch.nn.modules.module._global_forward_hooks, "the learner's hook is gone"
    finally:
        handle.remove()


class _Liar(torch.Tensor):
    """A tensor whose every comparison says "equal"."""

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        name = getattr(func, "__name__", "")
        if name in ("isclose", "eq", "__eq__", "equal", "allclose"):
            return torch.ones(args[0].shape, dtype=torch.bool) if name != "equal" else True
        if name == "all":
            return torch.tensor(True)
        return super().__torch_function__(func, types, args, kwargs)


def test_a_tensor_subclass_cannot_make_comparisons_lie():
    def strongest_channels(acts, k=10):
        scores, channels = acts.sum(dim=(2, 3)).topk(k, dim=1)  # right channels, wrong scores
        return scores.as_subclass(_Liar), channels.as_subclass(_Liar)

    with pytest.raises(CheckFailed, match="SUM"):
        ch1.check_strongest_channels(strongest_channels)


def test_a_str_subclass_cannot_pass_for_the_right_label():
    class Anything(str):
        def __eq__(self, other):
            return True

        def __ne__(self, other):
            return False

        __hash__ = str.__hash__

    def top_k_classes(model, images, k=5):
        with torch.no_grad():
            p, i = torch.softmax(model(images), -1).topk(k)
        return [[(int(a), Anything("wrong"), float(b)) for b, a in zip(pr, ir)] for pr, ir in zip(p, i)]

    with pytest.raises(CheckFailed, match="labels of image 0"):
        ch1.check_top_k(top_k_classes)


def _swallow(self, *exc_info):
    return True  # an __exit__ that says "handled": the exception in the with block vanishes


@pytest.mark.parametrize(
    "owner",
    [contextlib._GeneratorContextManager, warnings.catch_warnings],
    ids=["contextlib", "warnings.catch_warnings"],
)
def test_context_managers_that_swallow_exceptions_do_not_swallow_a_failed_check(owner):
    # The check machinery uses no `with` on such classes: a with statement looks __exit__ up
    # before the kernel is made pristine.
    with patched(owner, "__exit__", _swallow), pytest.raises(CheckFailed, match="SUM"):
        ch1.check_strongest_channels(_learner(SUM_NOT_MEAN))


def test_context_managers_inside_checks_are_pristine(reference):
    # check_capture's reference runs `with cs.capture(...)`, a contextlib context manager.
    with patched(contextlib._GeneratorContextManager, "__exit__", _swallow):
        ch1.check_capture(reference["capture_activations"])
        with pytest.raises(CheckFailed, match="wrong keys"):
            ch1.check_capture(lambda model, images, names: {})


# -- learner code keeps its world -------------------------------------------------------------
def test_the_learners_patch_is_used_by_learner_code_only(reference):
    # A harmless, correct patch: it counts calls. The learner's function calls topk once (one
    # visible case); the reference calls it too, but must not see the learner's version.
    calls = []
    genuine = torch.Tensor.topk

    def counting_topk(self, *args, **kwargs):
        calls.append(1)
        return genuine(self, *args, **kwargs)

    with patched(torch.Tensor, "topk", counting_topk):
        ch1.check_strongest_channels(reference["strongest_channels"])
        assert torch.Tensor.topk is counting_topk
    assert len(calls) == 1, f"the learner's topk ran {len(calls)} times (reference calls leaked into it)"


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_correct_functions_pass_while_torch_is_patched(reference, check, capsys):
    # Unrelated learner patches (correct ones) stay in effect for the learner's own code and
    # change nothing for the check.
    softmax, interpolate = torch.softmax, F.interpolate
    with (
        patched(torch, "softmax", lambda *a, **k: softmax(*a, **k)),
        patched(F, "interpolate", lambda *a, **k: interpolate(*a, **k)),
        patched(np, "allclose", _always_true),
        patched(torch.Tensor, "__eq__", torch.Tensor.__eq__),
    ):
        getattr(ch1, check)(reference[EXERCISES[check]])
    assert capsys.readouterr().out.startswith("\u2714")


def test_patches_made_inside_the_learners_function_stay_and_fool_nothing(monkeypatch):
    monkeypatch.setattr(torch, "softmax", torch.softmax)  # undone after the test

    def top_k_classes(model, images, k=5):
        torch.softmax = lambda x, dim=None, **kw: x  # patched while the check runs
        with torch.no_grad():
            v, i = model(images).topk(k)
        return [[(int(a), cs.label(int(a)), float(b)) for b, a in zip(vr, ir)] for vr, ir in zip(v, i)]

    with pytest.raises(CheckFailed, match="not probabilities"):
        ch1.check_top_k(top_k_classes)
    assert torch.softmax(torch.zeros(3), dim=0).tolist() == [0.0, 0.0, 0.0], "the learner's patch is gone"


def test_pristine_and_call_switch_worlds():
    genuine = torch.softmax
    fake = lambda x, dim=None, **k: x
    seen = {}
    with patched(torch, "softmax", fake):
        with C.pristine():
            seen["check"] = torch.softmax
            seen["learner"] = C.call(lambda: torch.softmax, what="f()")
            seen["check again"] = torch.softmax
        seen["after"] = torch.softmax
    assert seen == {"check": genuine, "learner": fake, "check again": genuine, "after": fake}


def test_patches_made_while_a_check_reads_the_learners_objects_are_undone(monkeypatch):
    # A returned object's methods (__len__, __getitem__, __float__, ...) are learner code that
    # runs inside the check; resync(), called after such reads, makes the kernel pristine again.
    genuine = torch.softmax
    monkeypatch.setattr(torch, "softmax", genuine)  # undone after the test
    fake = lambda x, dim=None, **k: x

    class Sneaky(list):
        def __len__(self):
            torch.softmax = fake
            return list.__len__(self)

    with C.pristine():
        got = C.call(lambda: Sneaky([1.0, 2.0]), what="f()")
        assert len(got) == 2 and torch.softmax is fake  # the learner's method ran
        C.resync()
        inside = torch.softmax
    assert inside is genuine and torch.softmax is fake  # the learner's change is theirs again


def test_a_class_attribute_added_by_the_learner_is_removed_during_the_check():
    with patched(torch.Tensor, "argmax", _argmax_zero):
        with C.pristine():
            assert "argmax" not in vars(torch.Tensor)
            assert int(torch.tensor([1.0, 5.0, 2.0]).argmax()) == 1
        assert vars(torch.Tensor)["argmax"] is _argmax_zero


def test_a_function_whose_code_was_replaced_is_restored():
    original = F.interpolate.__code__
    F.interpolate.__code__ = _zeros_interpolate.__code__  # the same function object, new code
    try:
        with C.pristine():
            assert F.interpolate.__code__ is original
        assert F.interpolate.__code__ is _zeros_interpolate.__code__
        error = _run_exploit(Exploit("check_preprocess", [], BLACK_IMAGE))
        assert error is not None and F.interpolate.__code__ is _zeros_interpolate.__code__
    finally:
        F.interpolate.__code__ = original


def test_tampering_before_the_import_is_refused(monkeypatch):
    # A cell run before the setup cell could replace torch.softmax before the snapshot.
    monkeypatch.setattr(C._SNAPSHOT, "tampered", ["torch.softmax"])
    with pytest.raises(CheckFailed, match="restart the kernel"):
        ch1.check_receptive_field(_learner(NO_STRIDE_PRODUCT))


def test_the_snapshot_notices_functions_defined_in_the_notebook():
    def from_a_cell(x):
        return x

    from_a_cell.__module__ = "__main__"
    assert C._from_notebook(from_a_cell) and C._from_notebook(staticmethod(from_a_cell))
    assert not C._from_notebook(torch.softmax) and not C._from_notebook(F.interpolate)
    assert C._SNAPSHOT.tampered == []


# =============================================================================================
# What a check returns and writes (nbgrader scores a cell that writes to stderr 0)
# =============================================================================================
def test_every_check_is_protected():
    for name in ch1.__all__:
        assert getattr(getattr(ch1, name), "__wrapped_check__", False), (
            f"{name} is not decorated with @C.check"
        )


@pytest.mark.parametrize("check", sorted(EXERCISES))
def test_checks_return_none_and_write_nothing_to_stderr(reference, check, capfd):
    result = getattr(ch1, check)(reference[EXERCISES[check]], hidden=True)
    out, err = capfd.readouterr()
    assert result is None
    assert err == "", f"{check} wrote to stderr: {err!r}"
    assert out.count("\n") == 1 and out.startswith("\u2714"), out


def test_a_warning_during_a_check_goes_to_stdout(reference, capfd):
    def strongest_channels(acts, k=10):
        warnings.warn("an ordinary warning from learner code", UserWarning, stacklevel=1)
        return reference["strongest_channels"](acts, k)

    ch1.check_strongest_channels(strongest_channels)
    out, err = capfd.readouterr()
    assert err == ""
    assert "\u2714" in out and "note: a warning was raised during the check: UserWarning" in out


def test_a_learners_error_filter_does_not_break_the_check(reference, capfd):
    def strongest_channels(acts, k=10):
        warnings.warn("harmless", UserWarning, stacklevel=1)
        return reference["strongest_channels"](acts, k)

    with warnings.catch_warnings():
        warnings.simplefilter("error")  # as a learner's cell might
        ch1.check_strongest_channels(strongest_channels)
    assert capfd.readouterr().out.startswith("\u2714")


# =============================================================================================
# Cost
# =============================================================================================
def test_pristine_is_cheap(capsys):
    stats = C.overhead()
    assert stats["module_attributes"] > 3000 and stats["classes"] > 100 and stats["functions"] > 500
    cycles = 20
    with patched(torch, "softmax", lambda x, dim=None, **k: x), patched(torch.Tensor, "argmax", _argmax_zero):
        start = time.perf_counter()
        for _ in range(cycles):
            with C.pristine():
                C.call(lambda: None, what="f()")
        per_cycle = (time.perf_counter() - start) / cycles
    with capsys.disabled():
        print(f"\npristine: {stats}; one check entry + one learner call: {per_cycle * 1000:.1f} ms")
    # Two comparisons of the whole snapshot per cycle: a few ms on a laptop, generous for CI.
    assert per_cycle < 0.2, f"{per_cycle * 1000:.0f} ms per cycle"


# =============================================================================================
# In a real kernel (slow): what nbgrader sees in the cells' outputs
# =============================================================================================
def _run_notebook(sources: list[str], tmp_path) -> list[list[dict]]:
    """Run cells in a fresh kernel (errors allowed); the outputs of each cell."""
    import os

    from nbclient import NotebookClient

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell(textwrap.dedent(s).strip()) for s in sources]
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    old = dict(os.environ)
    os.environ.update(CIRCUITSCOPE_OFFLINE="1", CIRCUITSCOPE_PROFILE="cpu", CIRCUITSCOPE_DEVICE="cpu",
                      CIRCUITSCOPE_CACHE=str(tmp_path / "cache"), TQDM_DISABLE="1")  # fmt: skip
    os.environ["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    try:
        NotebookClient(nb, timeout=300, kernel_name="python3", allow_errors=True).execute()
    finally:
        os.environ.clear()
        os.environ.update(old)
    return [cell.outputs for cell in nb.cells]


def _errors(outputs) -> list[str]:
    return [f"{o['ename']}: {o['evalue']}" for o in outputs if o["output_type"] == "error"]


def _stderr(outputs) -> str:
    return "".join(
        o.get("text", "") for o in outputs if o["output_type"] == "stream" and o["name"] == "stderr"
    )


SETUP_CELL = """
import torch
import circuitscope as cs
from circuitscope.checks import ch1
"""


@pytest.mark.slow
def test_in_a_kernel_failures_always_show_and_passes_write_no_stderr(tmp_path):
    outputs = _run_notebook(
        [
            SETUP_CELL,
            # 1: a correct function, checked: one line on stdout, nothing on stderr
            """
            def strongest_channels(acts, k=10):
                return acts.mean(dim=(2, 3)).topk(k, dim=1)
            ch1.check_strongest_channels(strongest_channels)
            """,
            # 2-3: a custom exception handler that would swallow the failure
            """
            get_ipython().set_custom_exc((BaseException,), lambda *args, **kwargs: None)
            def strongest_channels(acts, k=10):
                return acts.sum(dim=(2, 3)).topk(k, dim=1)
            """,
            "ch1.check_strongest_channels(strongest_channels)",
            # 4-5: the shell's traceback display replaced
            "get_ipython().showtraceback = lambda *args, **kwargs: None",
            "ch1.check_strongest_channels(strongest_channels)",
            # 6-7: the softmax exploit, in a notebook
            "torch.softmax = lambda x, dim=None, **kwargs: x\n" + textwrap.dedent(LOGITS_AS_PROBABILITIES),
            "ch1.check_top_k(top_k_classes)",
        ],
        tmp_path,
    )
    assert not _errors(outputs[0]) and not _errors(outputs[1]), outputs[:2]
    assert _stderr(outputs[1]) == "" and "\u2714" in "".join(o.get("text", "") for o in outputs[1])
    for index in (3, 5):
        assert any("CheckFailed" in e for e in _errors(outputs[index])), (index, outputs[index])
    assert any("CheckFailed" in e and "top_k_classes" in e for e in _errors(outputs[7])), outputs[7]


@pytest.mark.slow
def test_in_a_kernel_a_patch_made_before_the_checks_are_imported_is_refused(tmp_path):
    outputs = _run_notebook(
        [
            "import torch\ntorch.softmax = lambda x, dim=None, **kwargs: x  # a cell above the setup cell",
            SETUP_CELL,
            textwrap.dedent(LOGITS_AS_PROBABILITIES) + "\nch1.check_top_k(top_k_classes)",
        ],
        tmp_path,
    )
    errors = _errors(outputs[2])
    assert errors and "cannot trust" in errors[0] and "torch.softmax" in errors[0], outputs[2]
