"""One runner for every exercise check: cases as data, a table of likely mistakes, clean feedback.

An exercise's check is an :class:`Exercise`: a function that lists its :class:`Case` s (the
arguments, the reference result or a property, a tolerance) and the :class:`Mistake` s a learner
is likely to make, each with its hint. :func:`run` serves two callers the same way:

* **Instant feedback** in the learner's notebook (``ch2.check_pixel_ascent(pixel_ascent)``):
  :class:`Local` calls the learner's function in this process. It assumes an honest learner:
  nothing here defends against code in the same kernel.
* **The sandboxed grader** (``circuitscope_course.verdicts``): the same cases, built and judged
  in the grader's own process; only the call itself crosses into the learner's sandboxed kernel,
  as data (:mod:`.wire`), and the result comes back as data. Learner code never runs where a
  verdict is computed.

What crosses the boundary is data: tensors, numbers, strings, ``None``, lists, tuples and dicts.
The course's own objects (a seeded model, a planted objective) cross as a :class:`Recipe`, rebuilt
on each side by the same library function. What the learner's function returns is converted to
data by :func:`to_data` on the side where it ran; anything else (a module, a closure) arrives as an
:class:`Opaque` that names its type. A case that needs more than the return value asks for it in
data: ``then`` steps applied to the result (call it, read an attribute, apply a course function),
or ``observe``: a course function applied to the arguments after the call (the hooks left on a
model, for example). Such an observation is what the learner's kernel reports; see
``autograder/README.md`` for what that can and cannot prove.
"""

from __future__ import annotations

import hashlib
import importlib
import math
import os
import types
from collections.abc import Callable, Iterable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..core.device import one_cpu_thread

PASS_MARK = "\u2714"  # ✔
FAIL_MARK = "\u2718"  # ✘
NOT_IMPLEMENTED_HINT = "replace `raise NotImplementedError()` with your code"

#: Modules a :class:`Recipe` or a step may name (the course's own code only).
RECIPE_PREFIX = "circuitscope."
#: The environment variable naming the grader's private key file (see :func:`hidden_seed`).
HIDDEN_KEY_ENV = "CIRCUITSCOPE_HIDDEN_KEY"


def hidden_key() -> str | None:
    """The grader's private key (the contents of the file ``$CIRCUITSCOPE_HIDDEN_KEY``), or None."""
    path = os.environ.get(HIDDEN_KEY_ENV)
    if not path:
        return None
    try:
        key = Path(path).read_text(encoding="utf-8").strip()
    except OSError:
        return None
    return key or None


def hidden_seed(n: int) -> int:
    """The seed of a hidden case: ``n`` itself in public; with the grader's private key, a number
    drawn from the key and ``n``. The package learners install holds the hidden cases' shapes and
    rules, never the values they are graded on."""
    key = hidden_key()
    if key is None:
        return n
    # 31 bits: a seed the library may multiply (sae._Stream: seed * 1_000_003) stays a valid torch seed
    return int.from_bytes(hashlib.sha256(f"{key}:{n}".encode()).digest()[:4], "big") >> 1


# =============================================================================================
# Failures
# =============================================================================================
class CheckFailed(AssertionError):
    """A check failed. The message says what was checked, expected vs got, and a hint.

    In IPython it is shown as that one block, without a traceback into the check's own code
    (``_render_traceback_`` is IPython's hook for exactly that).
    """

    def __init__(self, what: str, expected=None, got=None, hint: str | None = None):
        self.what, self.expected, self.got, self.hint = what, expected, got, hint
        self.about: str | None = None  # the failing case's property in words (see Case.about)
        # With partial credit (run(..., partial=True)): the cases that passed, of how many.
        self.passed: int | None = None
        self.total: int | None = None
        super().__init__(self.block())

    def block(self) -> str:
        lines = [self.what]
        if self.expected is not None:
            lines.append(f"  expected: {self.expected}")
        if self.got is not None:
            lines.append(f"  got:      {self.got}")
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        return "\n".join(lines)

    def _render_traceback_(self) -> list[str]:
        return [f"{FAIL_MARK} CheckFailed: {self.block()}"]


def fail(what: str, expected=None, got=None, hint: str | None = None):
    """Raise :class:`CheckFailed` (used by properties and the runner)."""
    raise CheckFailed(what, expected=expected, got=got, hint=hint)


def passed(message: str) -> None:
    """Print the one success line of a check."""
    print(f"{PASS_MARK} {message}", flush=True)


# =============================================================================================
# Data that crosses the boundary
# =============================================================================================
@dataclass(frozen=True)
class Opaque:
    """Something that is not data (a module, a function, a generator): only its type and a repr."""

    type: str
    text: str = ""

    def __repr__(self) -> str:
        return f"a {self.type}" + (f" ({self.text})" if self.text else "")


@dataclass(frozen=True)
class Recipe:
    """A course object rebuilt on each side: ``factory(**kwargs)``, factory ``"module:function"``.

    ``Recipe("circuitscope.checks.ch2:planted_objective", seed=5, channel=0)``. The keyword
    arguments are data (or recipes). Only modules under ``circuitscope.`` may be named.
    """

    factory: str
    kwargs: dict = field(default_factory=dict)

    def __init__(self, factory: str, **kwargs):
        object.__setattr__(self, "factory", factory)
        object.__setattr__(self, "kwargs", kwargs)

    def build(self):
        return resolve(self.factory)(**build(self.kwargs))

    def __hash__(self) -> int:
        return hash(self.factory)


@dataclass(frozen=True)
class Step:
    """One step applied to the learner's result: ``call`` it, read an ``attr``, call a
    ``method``, or ``apply`` a course function (``"module:function"``) to it."""

    kind: str  # "call" | "attr" | "method" | "apply"
    name: str = ""
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)

    def __hash__(self) -> int:
        return hash((self.kind, self.name))


def Call(*args, **kwargs) -> Step:
    return Step("call", "", args, kwargs)


def Attr(name: str) -> Step:
    return Step("attr", name)


def Method(name: str, *args, **kwargs) -> Step:
    return Step("method", name, args, kwargs)


def Apply(factory: str, **kwargs) -> Step:
    return Step("apply", factory, (), kwargs)


def resolve(factory: str):
    """The course function ``"circuitscope.module:name"`` (and nothing outside the course)."""
    module, _, name = factory.partition(":")
    if not module.startswith(RECIPE_PREFIX) or not name:
        raise ValueError(f"not a course function: {factory!r}")
    return getattr(importlib.import_module(module), name)


def build(value):
    """Arguments as the function receives them: recipes rebuilt, tensors copied (never shared)."""
    if isinstance(value, Recipe):
        return value.build()
    if isinstance(value, torch.Tensor):
        return value.clone()
    if isinstance(value, np.ndarray):
        return value.copy()
    if isinstance(value, list):
        return [build(v) for v in value]
    if isinstance(value, tuple):
        return tuple(build(v) for v in value)
    if isinstance(value, dict):
        return {k: build(v) for k, v in value.items()}
    return value


_SCALARS = (bool, int, float, str, type(None))
MAX_DEPTH = 12


def to_data(value, depth: int = 0):
    """``value`` as data: plain detached CPU tensors, Python scalars, lists, tuples, dicts.

    NumPy arrays become tensors, NumPy scalars Python numbers, ``torch.Size`` a tuple. A tensor
    subclass keeps its data, not its class (its methods are learner code). Anything else becomes
    an :class:`Opaque`.
    """
    if depth > MAX_DEPTH:
        return Opaque("structure", "nested too deeply")
    if isinstance(value, torch.Tensor):
        with torch._C.DisableTorchFunctionSubclass():
            plain = torch.Tensor.as_subclass(value.detach(), torch.Tensor)
        return plain.cpu().clone()
    if type(value) in _SCALARS:
        return value
    if isinstance(value, np.ndarray):
        try:
            return torch.from_numpy(np.array(value, copy=True))
        except TypeError:
            return Opaque("numpy array", str(value.dtype))
    if isinstance(value, np.generic):
        return value.item()
    for kind in (bool, int, float, str):  # a subclass (an IntEnum, say): keep the value only
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, torch.Size):
        return tuple(int(v) for v in value)
    if isinstance(value, (list, tuple)):  # a namedtuple, torch.return_types.topk: the values only
        return (list if isinstance(value, list) else tuple)(to_data(v, depth + 1) for v in value)
    if isinstance(value, dict):  # an OrderedDict too
        out = {}
        for k, v in value.items():
            if type(k) not in (str, int):
                return Opaque("dict", f"a key of type {type(k).__name__}")
            out[k] = to_data(v, depth + 1)
        return out
    # A module's repr runs for pages; a short one-line repr of anything else helps the message.
    text = "" if isinstance(value, torch.nn.Module) else repr(value)
    return Opaque(type(value).__name__, text[:80] if "\n" not in text else "")


# =============================================================================================
# Cases and mistakes
# =============================================================================================
@dataclass
class Mistake:
    """A likely wrong answer and its hint.

    ``result(case)`` is what the mistaken code returns on ``case`` (compared within the case's
    tolerance), or ``when(case, got)`` says whether ``got`` is that mistake. Either may return
    ``None`` for a case it does not apply to.
    """

    hint: str
    result: Callable[[Case], Any] | None = None
    when: Callable[[Case, Any], bool] | None = None

    def matches(self, case: Case, got) -> bool:
        try:
            if self.when is not None:
                return bool(self.when(case, got))
            if self.result is not None:
                wrong = self.result(case)
                return wrong is not None and same(got, wrong, case.rtol, case.atol)
        except CheckFailed:
            return False
        return False


@dataclass
class Case:
    """One call of the learner's function and what its result must be.

    ``args``/``kwargs``: data or :class:`Recipe` s. ``then``: steps applied to the result.
    ``expect``: the reference result (data), compared within ``rtol``/``atol``; and/or
    ``verify(case, got)``: a property, which calls :func:`fail`. ``unchanged``: the arguments
    must not be modified in place. ``observe``: a course function ``"module:function"`` applied
    to the arguments after the call; the runner passes what it returns to ``verify`` as
    ``case.observed``. ``raises``: an error the call may raise (``"RuntimeError: text in its
    message"``, a planted failure): the case is then judged with the value ``None``. ``forbid``:
    the library's own answers to the exercise (``"module:function"``), unavailable to the learner's
    function during the call (set from the exercise's ``forbid``). ``about``: for a hidden case,
    the property it tests in words, with no value of the case (the graded feedback names it when
    the case fails, instead of the case itself). ``data``:
    anything the mistakes and properties need (a seed, a weight).
    """

    label: str
    args: tuple = ()
    kwargs: dict = field(default_factory=dict)
    expect: Any = None
    verify: Callable[[Case, Any], None] | None = None
    rtol: float = 1e-4
    atol: float = 1e-5
    then: tuple = ()
    unchanged: bool = True
    observe: str | None = None
    mistakes: tuple = ()
    hint: str | None = None
    raises: str | None = None
    forbid: tuple = ()
    about: str | None = None
    data: dict = field(default_factory=dict)
    observed: Any = None


@dataclass
class Outcome:
    """What one call gave: a value (data), or the error it raised; and any observation."""

    value: Any = None
    error: tuple[str, str] | None = None  # (exception type name, message)
    observed: Any = None
    args_after: Any = None


class Exercise:
    """An exercise's check: ``check(fn)`` runs the visible cases, ``check(fn, hidden=True)`` all.

    ``cases(hidden)`` yields :class:`Case` s (hidden ones only when asked); ``mistakes`` is the
    exercise's table of likely mistakes; ``errors`` maps an exception the learner's code raises
    (``"TypeError"``, or ``"TypeError: text in the message"``) to a hint. ``forbid`` names the
    library functions that answer the exercise (``"circuitscope.core.images:preprocess"``): while the
    learner's function runs they raise :class:`WriteItYourself`, in the notebook and when graded.
    """

    def __init__(self, name: str, title: str, cases: Callable[[bool], Iterable[Case]], *,
                 mistakes: Iterable[Mistake] = (), errors: dict | None = None, doc: str = "",
                 forbid: Iterable[str] = ()):  # fmt: skip
        self.__name__ = self.name = name
        self.title, self.cases, self.mistakes = title, cases, tuple(mistakes)
        self.forbid = tuple(forbid)  # the library's own answers: "write it yourself"
        self.errors = dict(errors or {})
        self.__doc__ = doc or f"Check the learner's ``{title}`` ({name})."

    def __call__(self, fn, hidden: bool = False) -> None:
        # The grader passes a stand-in for the learner's function that calls it across the
        # sandbox boundary (it has ``invoke``); in a notebook, ``fn`` is the function itself.
        run(self, fn if hasattr(fn, "invoke") else Local(fn), hidden)

    def __repr__(self) -> str:
        return f"<exercise check {self.name}>"


# =============================================================================================
# Calling the learner's function
# =============================================================================================
def apply_steps(value, steps: Iterable[Step]):
    for step in steps:
        if step.kind == "call":
            value = value(*build(step.args), **build(step.kwargs))
        elif step.kind == "attr":
            value = getattr(value, step.name)
        elif step.kind == "method":
            value = getattr(value, step.name)(*build(step.args), **build(step.kwargs))
        elif step.kind == "apply":
            value = resolve(step.name)(value, **build(step.kwargs))
        else:
            raise ValueError(f"unknown step {step.kind!r}")
    return value


def execute(fn, args: tuple, kwargs: dict, then: tuple = (), observe: str | None = None,
            want_args: bool = False, forbid: tuple = ()) -> Outcome:  # fmt: skip
    """Call ``fn`` on freshly built arguments: the same code on both sides of the boundary."""
    built_args, built_kwargs = build(args), build(kwargs)
    outcome = Outcome()
    try:
        # the cases are small: extra threads cost more than they save
        with one_cpu_thread(), unavailable(forbid):
            outcome.value = to_data(apply_steps(fn(*built_args, **built_kwargs), then))
    except Exception as err:  # noqa: BLE001 -- the learner's error is part of the answer
        outcome.error = (type(err).__name__, str(err)[:2000])
    if observe:
        try:
            outcome.observed = to_data(resolve(observe)(*built_args, **built_kwargs))
        except Exception as err:  # noqa: BLE001
            outcome.observed = Opaque("error", f"{type(err).__name__}: {err}")
    if want_args:
        outcome.args_after = to_data((built_args, built_kwargs))
    return outcome


class WriteItYourself(RuntimeError):
    """The learner's function called the library's own answer to the exercise."""


_UNAVAILABLE = "__circuitscope_unavailable__"


def _raise_unavailable(*args, **kwargs):
    raise __circuitscope_unavailable__  # noqa: F821 -- set in the function's module while forbidden


@contextmanager
def unavailable(names: Iterable[str]):
    """While the block runs, each library function ``"module:name"`` raises :class:`WriteItYourself`.

    The function's code is swapped (not only the module attribute), so a reference the learner
    took before (``from circuitscope.core.images import preprocess as p``) is caught too. A function
    with a closure cannot take another code object: its module attribute is replaced instead.
    This is a rule for honest learners, not a fence: code that copies the function's code
    beforehand gets around it, and the grader cannot tell who computed an answer.
    """
    swapped, patched = [], []
    try:
        for name in names:
            function = resolve(name)
            error = WriteItYourself(f"{name.replace(':', '.')} is the library's own answer to this exercise: "
                                    "it is unavailable while your function is checked; write it yourself")  # fmt: skip
            if isinstance(function, types.FunctionType) and not function.__code__.co_freevars:
                function.__globals__[_UNAVAILABLE] = error
                swapped.append((function, function.__code__))
                function.__code__ = _raise_unavailable.__code__
            else:
                module, _, attr = name.partition(":")
                module = importlib.import_module(module)
                patched.append((module, attr, function))
                setattr(module, attr, _raiser(error))
        yield
    finally:
        for function, code in swapped:
            function.__code__ = code
            function.__globals__.pop(_UNAVAILABLE, None)
        for module, attr, function in patched:
            setattr(module, attr, function)


def _raiser(error: Exception):
    def unavailable_function(*args, **kwargs):
        raise error

    return unavailable_function


class Local:
    """Calls the learner's function in this process (instant feedback: an honest learner)."""

    def __init__(self, fn):
        self.fn = fn

    def invoke(self, case: Case) -> Outcome:
        if not callable(self.fn):
            return Outcome(error=("TypeError", f"{self.fn!r} is not a function"))
        return execute(self.fn, case.args, case.kwargs, case.then, case.observe, case.unchanged, case.forbid)


# =============================================================================================
# Comparing
# =============================================================================================
def summary(t: torch.Tensor) -> str:
    if t.numel() == 0:
        return "empty"
    t = t.double()
    return f"min {float(t.min()):.4g}, max {float(t.max()):.4g}, mean {float(t.mean()):.4g}"


def same(got, expected, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """Whether :func:`compare` would accept ``got``."""
    try:
        compare(got, expected, "", rtol, atol)
    except CheckFailed:
        return False
    return True


def as_tensor(got, what: str) -> torch.Tensor:
    """``got`` (data) as a tensor, or a failure saying what it was."""
    if isinstance(got, torch.Tensor):
        return got
    if isinstance(got, (list, tuple, int, float)) and not isinstance(got, bool):
        try:
            return torch.as_tensor(got)
        except (TypeError, ValueError, RuntimeError):
            pass
    fail(f"{what} should be a tensor", expected="torch.Tensor", got=describe(got))


def expect_tensor(got, shape: tuple, what: str) -> torch.Tensor:
    """``got`` as a finite float tensor of ``shape`` (float64), or a failure saying how it is not."""
    got = as_tensor(got, what)
    if tuple(got.shape) != tuple(shape):
        fail(f"{what} has the wrong shape", expected=tuple(shape), got=tuple(got.shape))
    if not got.is_floating_point():
        fail(f"{what} should hold floats", expected="a float tensor", got=str(got.dtype))
    if not bool(torch.isfinite(got).all()):
        fail(f"{what} contains inf or NaN", expected="finite values", got=summary(got))
    return got.double()


def describe(got) -> str:
    if isinstance(got, torch.Tensor):
        return f"a tensor of shape {tuple(got.shape)}"
    if isinstance(got, Opaque):
        return repr(got)
    return type(got).__name__ if not isinstance(got, _SCALARS) else repr(got)


def compare(got, expected, what: str, rtol: float = 1e-4, atol: float = 1e-5) -> None:
    """Fail unless ``got`` matches ``expected``: tensors in shape and values (within
    ``rtol``/``atol``), dicts key by key, lists and tuples item by item, floats within
    ``rtol``, everything else equal."""
    if isinstance(expected, torch.Tensor):
        got_t = as_tensor(got, what)
        if tuple(got_t.shape) != tuple(expected.shape):
            fail(f"{what} has the wrong shape", expected=tuple(expected.shape), got=tuple(got_t.shape))
        if expected.is_floating_point() and not (got_t.is_floating_point() or got_t.is_complex()):
            fail(f"{what} should hold floats", expected=str(expected.dtype), got=str(got_t.dtype))
        a, b = got_t.double(), expected.double()
        if expected.is_floating_point() and not bool(torch.isfinite(a).all()) and bool(torch.isfinite(b).all()):
            fail(f"{what} contains inf or NaN", expected="finite values", got=summary(a))
        if not bool(torch.isclose(a, b, rtol, atol).all()):
            worst = int((a - b).abs().flatten().nan_to_num(float("inf")).argmax())
            fail(f"{what} has the right shape but wrong values",
                 expected=f"{float(b.flatten()[worst]):.6g} at flat index {worst} ({summary(b)})",
                 got=f"{float(a.flatten()[worst]):.6g} at flat index {worst} ({summary(a)})")  # fmt: skip
    elif isinstance(expected, dict):
        if not isinstance(got, dict):
            fail(f"{what} should be a dict", expected=f"a dict with keys {list(expected)}", got=describe(got))
        if set(got) != set(expected):
            fail(f"{what} has the wrong keys", expected=sorted(expected, key=str), got=sorted(got, key=str))
        for key in expected:
            compare(got[key], expected[key], f"{what}[{key!r}]", rtol, atol)
    elif isinstance(expected, (list, tuple)):
        if not isinstance(got, (list, tuple)):
            fail(f"{what} should be a {type(expected).__name__}", expected=repr(expected)[:200], got=describe(got))
        if len(got) != len(expected):
            fail(f"{what} has the wrong length", expected=len(expected), got=len(got))
        for i, (g, e) in enumerate(zip(got, expected)):
            compare(g, e, f"{what}[{i}]", rtol, atol)
    elif isinstance(expected, float):
        if isinstance(got, torch.Tensor) and got.numel() == 1:
            got = float(got)
        if not isinstance(got, (int, float)) or isinstance(got, bool):
            fail(f"{what} should be a number", expected=f"{expected:.6g}", got=describe(got))
        if not math.isclose(got, expected, rel_tol=rtol, abs_tol=atol):
            fail(f"{what} is wrong", expected=f"{expected:.6g}", got=f"{got:.6g}")
    else:
        if isinstance(expected, int) and not isinstance(expected, bool) and isinstance(got, torch.Tensor) \
                and got.numel() == 1 and not got.is_floating_point():  # fmt: skip
            got = int(got)
        if type(got) is not type(expected) and not (isinstance(expected, int) and type(got) is int):
            fail(f"{what} has the wrong type", expected=type(expected).__name__, got=describe(got))
        if got != expected:
            fail(f"{what} is wrong", expected=repr(expected), got=repr(got))


# =============================================================================================
# The runner
# =============================================================================================
def error_hint(exercise: Exercise, error: tuple[str, str]) -> str | None:
    """The hint for an exception the learner's code raised: the exercise's table, then the
    library's (``circuitscope.checks.hints``)."""
    from .hints import first_hint, library_hint

    name, message = error
    return first_hint(exercise.errors, name, message) or library_hint(name, message)


def judge(exercise: Exercise, case: Case, outcome: Outcome) -> None:
    """Fail unless ``outcome`` answers ``case``; the first matching mistake gives the hint."""
    if outcome.error is not None and case.raises and _matches(case.raises, *outcome.error):
        outcome = Outcome(None, None, outcome.observed, outcome.args_after)
    if outcome.error is not None:
        name, message = outcome.error
        if name == "NotImplementedError":
            fail(f"{case.label}: not implemented yet.", hint=NOT_IMPLEMENTED_HINT)
        if name == "WriteItYourself":
            fail(f"{case.label}: your function called the library's own answer", got=message,
                 hint="this exercise asks you to write it yourself, with PyTorch; the library's version is "
                      "for the chapter's later cells")  # fmt: skip
        fail(f"{case.label} raised {name}: {message}", hint=error_hint(exercise, outcome.error) or case.hint)
    if case.unchanged and outcome.args_after is not None and not unchanged(outcome.args_after, (case.args, case.kwargs)):
        fail(f"{case.label} changed the arguments it was given", expected="its inputs left unchanged",
             got="an input was modified in place",
             hint="work on a copy (x = x.clone()), or use out-of-place operations (x = x + 1, not x += 1)")  # fmt: skip
    got = outcome.value
    case.observed = outcome.observed
    try:
        if case.expect is not None:
            compare(got, case.expect, case.label, case.rtol, case.atol)
        if case.verify is not None:
            case.verify(case, got)
    except CheckFailed as failure:
        for mistake in (*case.mistakes, *exercise.mistakes):
            if mistake.matches(case, got):
                failure.hint = mistake.hint
                break
        else:
            failure.hint = failure.hint or case.hint
        raise CheckFailed(failure.what, failure.expected, failure.got, failure.hint) from None


def unchanged(after, before) -> bool:
    """Whether the data arguments ``after`` the call equal ``before`` (recipes are not compared:
    they are course objects, whose state an observation checks where it matters)."""
    if isinstance(before, Recipe):
        return True
    if isinstance(before, (torch.Tensor, np.ndarray)):
        return same(after, to_data(before), 0.0, 0.0)
    if isinstance(before, (list, tuple)):
        return isinstance(after, (list, tuple)) and len(after) == len(before) and all(
            unchanged(a, b) for a, b in zip(after, before))
    if isinstance(before, dict):
        return isinstance(after, dict) and set(after) == set(before) and all(
            unchanged(after[k], before[k]) for k in before)
    return True


def _matches(key: str, name: str, message: str) -> bool:
    """Whether an error ``name: message`` is the one ``key`` (``"Type: text in the message"``) names."""
    kind, _, text = key.partition(": ")
    return kind == name and text in message


def run(exercise: Exercise, invoker, hidden: bool = False, partial: bool = False) -> int:
    """Run ``exercise``'s cases through ``invoker`` (:class:`Local`, or the grader's remote one).

    Prints one success line, or raises :class:`CheckFailed` at the first case that fails.
    Returns the number of cases. With ``partial`` (the grader's partial credit), every case
    runs, and the first failure raised carries ``passed`` and ``total``.
    """
    n, failures = 0, []
    # Every case is small (a tiny or planted model, a few pixels): on one CPU thread it runs many
    # times faster on a busy machine than with threads woken for it (10-40x on two cores).
    with one_cpu_thread():
        cases = list(exercise.cases(hidden))
        for case in cases:
            case.forbid = case.forbid or exercise.forbid
        # The grader's invoker can answer every case in one round trip across the sandbox
        # (``invoke_many``; a round trip per case cost about 8 ms). Not with partial credit, where
        # a case that hangs must not take the others' answers with it.
        outcomes = invoker.invoke_many(cases) if hasattr(invoker, "invoke_many") and not partial else None
        for i, case in enumerate(cases):
            n += 1
            try:
                judge(exercise, case, outcomes[i] if outcomes is not None else invoker.invoke(case))
            except CheckFailed as failure:
                failure.about = case.about
                if not partial:
                    raise
                failures.append(failure)
    if failures:
        failures[0].passed, failures[0].total = n - len(failures), n
        raise failures[0]
    extra = " (visible and hidden cases)" if hidden else ""
    passed(f"{exercise.title}: all {n} cases pass{extra}.")
    return n


__all__ = [
    "Apply",
    "Attr",
    "Call",
    "Case",
    "CheckFailed",
    "Exercise",
    "Local",
    "Method",
    "Mistake",
    "Opaque",
    "Outcome",
    "Recipe",
    "compare",
    "execute",
    "expect_tensor",
    "fail",
    "passed",
    "run",
    "same",
    "to_data",
]  # fmt: skip
