"""The machinery every exercise check uses: comparisons learners cannot patch, clear messages.

Learner code runs in the same kernel as the checks. A learner cell that replaces
``torch.allclose`` or ``np.allclose`` must not turn a failure into a pass, so this module binds
its own references to the underlying operations when it is imported (the notebook's first cell,
before any learner code) and never looks them up again.

A check either prints one success line or raises :class:`CheckFailed`, whose message gives what
was expected, what the learner's code gave, and a hint for the common mistake.
"""

from __future__ import annotations

import math
import sys

import numpy as _np
import torch as _torch

# Bound once, at import. torch._C._VariableFunctions holds the C implementations behind torch.*,
# so rebinding torch.allclose or torch.isclose in a learner cell does not reach these.
_VF = _torch._C._VariableFunctions
_isclose = _VF.isclose
_isfinite = _VF.isfinite
_all = _VF.all
_equal = _VF.equal
_as_tensor = _torch.as_tensor
_Tensor = _torch.Tensor
_ndarray = _np.ndarray
_float64 = _torch.float64
_print = print
_isinstance = isinstance
_len = len
_math_isclose = math.isclose

PASS_MARK = "\u2714"  # ✔


class CheckFailed(AssertionError):
    """An exercise check failed; the message says what was expected and what to try."""


def passed(message: str) -> None:
    """Print the one success line of a check."""
    _print(f"{PASS_MARK} {message}", file=sys.stdout, flush=True)


def fail(what: str, expected=None, got=None, hint: str | None = None) -> None:
    """Raise :class:`CheckFailed` with expected vs got and a hint."""
    lines = [what]
    if expected is not None:
        lines.append(f"  expected: {expected}")
    if got is not None:
        lines.append(f"  got:      {got}")
    if hint:
        lines.append(f"  hint: {hint}")
    raise CheckFailed("\n".join(lines))


def call(fn, *args, what: str, **kwargs):
    """Call the learner's ``fn``; turn a crash into a :class:`CheckFailed` that names it."""
    try:
        return fn(*args, **kwargs)
    except NotImplementedError:
        fail(f"{what}: not implemented yet.", hint="replace `raise NotImplementedError()` with your code")
    except CheckFailed:
        raise
    except Exception as err:  # the learner's bug, reported as a failed check
        fail(f"{what} raised {type(err).__name__}: {err}")


def as_tensor(value, what: str) -> _torch.Tensor:
    """``value`` as a CPU tensor, or a failed check saying what type it was."""
    if _isinstance(value, _Tensor):
        return value.detach().cpu()
    if _isinstance(value, (_ndarray, list, tuple, int, float)):
        return _as_tensor(value).cpu()
    fail(f"{what} should be a tensor", expected="torch.Tensor", got=type(value).__name__)


def expect_shape(value: _torch.Tensor, shape: tuple, what: str, hint: str | None = None) -> None:
    if tuple(value.shape) != tuple(shape):
        fail(f"{what} has the wrong shape", expected=tuple(shape), got=tuple(value.shape), hint=hint)


def close(a: _torch.Tensor, b: _torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """True when tensors have equal shapes and all entries are close (NaN never is)."""
    a, b = a.detach().cpu().to(_float64), b.detach().cpu().to(_float64)
    if tuple(a.shape) != tuple(b.shape):
        return False
    return bool(_all(_isclose(a, b, rtol, atol, False)))


def expect_close(got, expected, what: str, rtol: float = 1e-4, atol: float = 1e-5,
                 hint: str | None = None) -> None:  # fmt: skip
    """Fail unless ``got`` matches ``expected`` in shape and values."""
    got_t, exp_t = as_tensor(got, what), as_tensor(expected, what)
    expect_shape(got_t, tuple(exp_t.shape), what, hint)
    if not close(got_t, exp_t, rtol, atol):
        diff = (got_t.to(_float64) - exp_t.to(_float64)).abs()
        worst = int(diff.flatten().nan_to_num(float("inf")).argmax())
        fail(
            f"{what} has the right shape but wrong values",
            expected=f"{_fmt(exp_t.flatten()[worst])} at flat index {worst} ({_summary(exp_t)})",
            got=f"{_fmt(got_t.flatten()[worst])} at flat index {worst} ({_summary(got_t)})",
            hint=hint,
        )


def expect_equal(got, expected, what: str, hint: str | None = None) -> None:
    """Fail unless ``got == expected`` (plain Python values: ints, strings, tuples, lists)."""
    if type(got) is not type(expected) and not (_isinstance(got, (int, float)) and _isinstance(expected, (int, float))):
        fail(f"{what} has the wrong type", expected=type(expected).__name__, got=type(got).__name__, hint=hint)
    if _isinstance(expected, float):
        ok = _math_isclose(got, expected, rel_tol=1e-6, abs_tol=1e-9)
    else:
        ok = got == expected and expected == got  # both sides: a custom __eq__ cannot lie alone
    if not ok:
        fail(f"{what} is wrong", expected=repr(expected), got=repr(got), hint=hint)


def _fmt(x: _torch.Tensor) -> str:
    return f"{float(x):.6g}"


def _summary(t: _torch.Tensor) -> str:
    if t.numel() == 0:
        return "empty"
    t = t.to(_float64)
    return f"min {float(t.min()):.4g}, max {float(t.max()):.4g}, mean {float(t.mean()):.4g}"
