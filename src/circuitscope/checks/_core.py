"""The machinery every exercise check uses: references learners cannot patch, clear messages.

Learner code runs in the same kernel as the checks. A learner cell that replaces
``torch.softmax``, ``torch.Tensor.argmax``, ``np.allclose`` or ``isinstance`` must not turn a
wrong answer into a pass, neither through the comparisons nor through the reference answers,
which the checks compute with ordinary library code. So this module works in two layers:

* **Comparisons bound at import.** The comparisons below use the C implementations of
  ``isclose``, ``all``, ... bound when this module is imported, and never look them up again.
* **A pristine kernel during checks.** When this module is imported (the notebook's locked setup
  cell, before any learner code) it takes a :class:`snapshot <_Snapshot>` of the attributes the
  checks and the library rely on: the public (and private callable) attributes of ``torch``,
  ``torch.nn``, ``torch.nn.functional``, ``torch.linalg``, ``torch.fft``, ``numpy``,
  ``numpy.linalg``, ``math``, ``builtins``, ..., of every module in ``torch``/``numpy`` that
  defines one of their Python functions, the class attributes (dunders included) of
  ``torch.Tensor``, ``torch.nn.Module`` and the other Python classes found there, and the code,
  defaults and closures of those Python functions. The chapter modules add the library modules
  their references use (:func:`protect_package`). While a check runs (:func:`pristine`, applied by
  the :func:`check` decorator) everything that differs from the snapshot is put back, PyTorch's
  function and dispatch modes, global module hooks, default dtype and Python trace functions are
  set aside; afterwards the learner's versions return. :func:`call`, which runs the learner's
  function, does the reverse for the duration of that call: learner code behaves as written.

A check either prints one success line or raises :class:`CheckFailed`, whose message gives what
was expected, what the learner's code gave, and a hint for the common mistake. It returns None
and writes nothing to stderr (nbgrader scores a test cell that does 0, or partial credit): a
warning raised while it runs is printed to stdout as a note. A failure always reaches the cell's
output as an error, even when learner code installed an IPython exception handler
(:func:`_show_failures`).

Not defended (nothing in the same kernel can be): replacing the check functions or this module
themselves, code run before the checks were imported that swaps one genuine function for another
(a function defined in the notebook is detected and refused), patched IPython or kernel classes,
audit hooks, threads that patch while a check runs, ctypes.
"""

from __future__ import annotations

import functools
import importlib
import math
import sys
import types
import warnings

import numpy as _np

# Loaded here so that the snapshot below holds them.
import numpy.fft
import numpy.linalg
import numpy.random
import numpy.testing
import torch as _torch
import torch.fft
import torch.linalg
import torch.nn.functional
import torch.nn.init
import torch.nn.modules.module as _module_module
import torch.overrides
import torch.special
import torch.testing
import torch.utils.hooks

# ---------------------------------------------------------------------------------------------
# Bound once, at import. torch._C._VariableFunctions holds the C implementations behind torch.*
# (an immutable class), so rebinding torch.allclose or torch.isclose in a learner cell does not
# reach these.
# ---------------------------------------------------------------------------------------------
_VF = _torch._C._VariableFunctions
_isclose = _VF.isclose
_isfinite = _VF.isfinite
_all = _VF.all
_equal = _VF.equal
_as_tensor = _torch.as_tensor
_Tensor = _torch.Tensor
_TensorBase = _torch._C.TensorBase
_detach = _TensorBase.detach
_as_subclass = _TensorBase.as_subclass
_to = _TensorBase.to
_cpu = _TensorBase.cpu
_size = _TensorBase.size
_item = _TensorBase.item
_DisableTorchFunctionSubclass = _torch._C.DisableTorchFunctionSubclass
_ndarray = _np.ndarray
_float64 = _torch.float64
_print = print
_isinstance = isinstance
_issubclass = issubclass
_len = len
_id = id
_type = type
_vars = vars
_callable = callable
_tuple = tuple
_list = list
_dict = dict
_str = str
_zip = zip
_reversed = reversed
_ValueError = ValueError
_Exception = Exception
_type_setattr = type.__setattr__
_type_delattr = type.__delattr__
_object_setattr = object.__setattr__
_math_isclose = math.isclose
_FunctionType = types.FunctionType
_MethodType = types.MethodType
_ModuleType = types.ModuleType
_staticmethod = staticmethod
_classmethod = classmethod
_property = property
_partial = functools.partial
_modules = sys.modules
_sys = sys
_gettrace, _settrace = sys.gettrace, sys.settrace
_getprofile, _setprofile = sys.getprofile, sys.setprofile
_get_default_dtype = _torch.get_default_dtype
_set_default_dtype = _torch.set_default_dtype
_len_function_modes = _torch._C._len_torch_function_stack
_pop_function_mode = _torch._C._pop_torch_function_stack
_push_function_mode = _torch._C._push_on_torch_function_stack
_len_dispatch_modes = _torch._C._len_torch_dispatch_stack
_pop_dispatch_mode = _torch._C._pop_torch_dispatch_stack
_push_dispatch_mode = _torch._C._push_on_torch_dispatch_stack
_catch_warnings = warnings.catch_warnings
_warnings_module = warnings
_IMPORT_FILTERS = tuple(warnings.filters)

PASS_MARK = "\u2714"  # ✔

_MISSING = object()
_SCALARS = (int, float, bool, str, bytes, complex, type(None))
_frozenset = frozenset
_HEAPTYPE = 1 << 9
_IMMUTABLETYPE = 1 << 8
_DEFAULT_DTYPE = _get_default_dtype()


from .runner import CheckFailed  # noqa: E402 -- one failure class while chapters move to the runner


# =============================================================================================
# The snapshot
# =============================================================================================
#: Modules whose attributes are snapshotted when this module is imported. Packages in
#: _CLOSURE_ROOTS are followed: the module that defines each of their Python functions and
#: classes is snapshotted too (torch.nn.functional.interpolate looks up its helpers there).
_PROTECTED_MODULES = (
    "builtins", "math", "operator", "functools", "copy", "contextlib",
    "torch", "torch.nn", "torch.nn.functional", "torch.nn.init", "torch.nn.modules.module",
    "torch.linalg", "torch.fft", "torch.special", "torch.testing", "torch.overrides",
    "torch.utils.hooks", "torch._C", "torch._C._nn", "torch._C._linalg", "torch._C._fft",
    "torch._C._special",
    "numpy", "numpy.linalg", "numpy.fft", "numpy.random", "numpy.testing",
)  # fmt: skip
_CLOSURE_ROOTS = {"torch", "numpy", "circuitscope"}
#: Private data that matters: nn.Module.__call__ reads these dicts of global hooks at run time.
_PRIVATE_DATA = {"torch.nn.modules.module": {n for n in _vars(_module_module) if n.startswith("_global_")}}
#: Builtins with a leading underscore that code reaches implicitly.
_BUILTIN_DUNDERS = ("__import__", "__build_class__")
#: Names that IPython and ipykernel rebind on every cell; nothing the checks use.
_VOLATILE = {"builtins": {"input", "display", "get_ipython", "exit", "quit"}}


#: Parts of those packages that nothing in the checks or the library's references runs (the
#: compiler, JIT, distributed, serialization, ...): not followed, to keep each comparison fast.
_NOT_FOLLOWED = (
    "torch._C", "torch.fx", "torch.distributed", "torch.jit", "torch._jit_internal", "torch._subclasses",
    "torch.package", "torch._higher_order_ops", "torch._library", "torch._guards", "torch._functorch",
    "torch._logging", "torch._strobelight", "torch._vendor", "torch.serialization", "torch.storage",
    "torch.amp", "torch.multiprocessing", "torch.cuda", "torch.backends", "torch._dynamo",
    "torch._inductor", "torch.export", "torch.onnx", "torch.utils", "torch.library", "torch._ops",
    "torch._prims", "torch._prims_common", "torch._refs", "torch._decomp", "torch.profiler",
    "torch.compiler", "torch.ao", "torch.quantization", "torch.mps", "torch.xpu", "torch.mtia",
    "torch._utils_internal", "torch.testing._internal", "torch._sources", "torch.types",
    "numpy.testing._private", "numpy.matrixlib", "numpy.ma", "numpy.polynomial", "numpy.f2py",
)  # fmt: skip


def _root(name) -> str:
    return name.split(".", 1)[0] if _isinstance(name, _str) else ""


def _followed(module_name) -> bool:
    """Whether a module (by name) is snapshotted when one of its functions or classes is met."""
    if not _isinstance(module_name, _str):
        return False
    if module_name in _PROTECTED_MODULES:
        return True
    if _root(module_name) not in _CLOSURE_ROOTS:
        return False
    for prefix in _NOT_FOLLOWED:
        if module_name == prefix or module_name.startswith(prefix + "."):
            return False
    return True


def _is(value, classes) -> bool:
    """``isinstance`` by the value's real type: never reads ``__class__``, which some objects
    (torch.distributed.reduce_op) turn into a deprecation warning."""
    return _issubclass(_type(value), classes)


def _unwrap(value):
    """The function behind a descriptor, bound method or partial (else the value itself)."""
    if _is(value, (_staticmethod, _classmethod)):
        return value.__func__
    if _is(value, _property):
        return value.fget
    if _is(value, _MethodType):
        return value.__func__
    if _is(value, _partial):
        return value.func
    return value


def _from_notebook(value) -> bool:
    """True when ``value`` was defined in the notebook (``__main__``), not by a library."""
    try:
        value = _unwrap(value)
        if _is(value, (_FunctionType, type)):
            return value.__module__ == "__main__"
        return _type(value).__module__ == "__main__"
    except _Exception:
        return False


class _Snapshot:
    """Attributes as they were before any learner code ran, and how to restore them.

    Three kinds of owners: modules (their public attributes and private callables; names added
    later are left alone), classes (their whole ``__dict__``: names added later are removed while
    a check runs, so ``torch.Tensor.argmax = ...`` stops shadowing the C method) and Python
    functions (``__code__``, ``__defaults__``, ``__kwdefaults__`` and closure cells).
    """

    def __init__(self):
        self.modules: list[tuple] = []  # (module, its __dict__, names, values, its type)
        self.classes: list[tuple] = []  # (class, {name: value})
        self.functions: list[tuple] = []  # (function, code, defaults, kwdefaults)
        self.cells: list[tuple] = []  # (cell, contents)
        self.tampered: list[str] = []  # "torch.softmax": defined in the notebook before import
        self._seen: set[int] = set()
        self._keep: list = []  # keeps every owner alive, so ids stay unique

    # -- taking it ---------------------------------------------------------------------------
    def add_modules(self, modules, follow: bool = True) -> None:
        todo = _list(modules)
        classes: list[type] = []
        functions: list = []
        while todo:
            module = todo.pop()
            if _id(module) in self._seen:
                continue
            self._seen.add(_id(module))
            self._keep.append(module)
            name = module.__name__
            extra = _PRIVATE_DATA.get(name, ())
            skip = _VOLATILE.get(name, ())
            names, values = [], []
            for key, value in _list(_vars(module).items()):
                if key in skip:
                    continue
                if key.startswith("_"):
                    wanted = (
                        (name == "builtins" and key in _BUILTIN_DUNDERS)
                        or key in extra
                        or (not key.startswith("__") and (_callable(value) or _is(value, _ModuleType)))
                    )
                    if not wanted:
                        continue
                names.append(key)
                values.append(value)
                if _from_notebook(value):
                    self.tampered.append(f"{name}.{key}")
                inner = _unwrap(value)
                if _is(inner, (_FunctionType, type)) and _followed(inner.__module__):
                    (functions if _is(inner, _FunctionType) else classes).append(inner)
                    owner = _modules.get(inner.__module__) if follow else None
                    if owner is not None and _id(owner) not in self._seen:
                        todo.append(owner)
            self.modules.append((module, _vars(module), _tuple(names), _tuple(values), _type(module)))
        for cls in classes:
            self.add_class(cls)
        for function in functions:
            self.add_function(function)

    def add_class(self, cls) -> None:
        if _id(cls) in self._seen or not _is(cls, type):
            return
        flags = cls.__flags__
        if not flags & _HEAPTYPE or flags & _IMMUTABLETYPE or not _followed(cls.__module__):
            return  # a C type (immutable), or a class the checks never use
        self._seen.add(_id(cls))
        self._keep.append(cls)
        namespace, state = {}, set()
        for key, value in _list(_vars(cls).items()):
            if _type(value) in _SCALARS and not (key.startswith("__") and key.endswith("__")):
                state.add(key)  # a counter (RemovableHandle.next_id) or a setting: state, not code
            else:
                namespace[key] = value
        self.classes.append((cls, namespace, _frozenset(state)))
        for key, value in namespace.items():
            if _from_notebook(value):
                self.tampered.append(f"{cls.__module__}.{cls.__qualname__}.{key}")
            for part in (value, _unwrap(value)) + ((value.fset, value.fdel) if _is(value, _property) else ()):
                if _is(part, _FunctionType) and _followed(part.__module__):
                    self.add_function(part)

    def add_function(self, function) -> None:
        if _id(function) in self._seen:
            return
        self._seen.add(_id(function))
        self._keep.append(function)
        self.functions.append((function, function.__code__, function.__defaults__, function.__kwdefaults__))
        for cell in function.__closure__ or ():
            try:
                contents = cell.cell_contents
            except _ValueError:  # an empty cell
                contents = _MISSING
            self.cells.append((cell, contents))
            if _is(contents, _FunctionType) and _followed(contents.__module__):
                self.add_function(contents)

    # -- comparing and restoring -------------------------------------------------------------
    def differences(self) -> list[tuple]:
        """``[(kind, owner, name, pristine, current)]`` for everything that differs now."""
        out = []
        for module, namespace, names, values, kind in self.modules:
            if _type(module) is not kind:
                out.append(("module_type", module, "__class__", kind, _type(module)))
            get = namespace.get
            for name, value in _zip(names, values):
                current = get(name, _MISSING)
                if current is not value:
                    out.append(("module", namespace, name, value, current))
        for cls, namespace, state in self.classes:
            current_ns = cls.__dict__
            changed = _len(current_ns) != _len(namespace) + _len(state)
            get = current_ns.get
            for name, value in namespace.items():
                current = get(name, _MISSING)
                if current is not value:
                    out.append(("class", cls, name, value, current))
                    changed = True
            if changed:
                for name in [n for n in current_ns if n not in namespace and n not in state]:
                    out.append(("class", cls, name, _MISSING, current_ns[name]))
        for function, code, defaults, kwdefaults in self.functions:
            if function.__code__ is not code:
                out.append(("function", function, "__code__", code, function.__code__))
            if function.__defaults__ is not defaults:
                out.append(("function", function, "__defaults__", defaults, function.__defaults__))
            if function.__kwdefaults__ is not kwdefaults:
                out.append(("function", function, "__kwdefaults__", kwdefaults, function.__kwdefaults__))
        for cell, contents in self.cells:
            try:
                current = cell.cell_contents
            except _ValueError:
                current = _MISSING
            if current is not contents:
                out.append(("cell", cell, "cell_contents", contents, current))
        return out


def _put(kind: str, owner, name: str, value) -> None:
    """Set (or, for ``_MISSING``, remove) one attribute without going through learner code."""
    if kind == "module":
        if value is _MISSING:
            owner.pop(name, None)
        else:
            owner[name] = value
    elif kind == "class":
        if value is _MISSING:
            if name in owner.__dict__:
                _type_delattr(owner, name)
        else:
            _type_setattr(owner, name, value)
    elif kind == "module_type":
        _object_setattr(owner, "__class__", value)
    elif kind == "cell":
        if value is _MISSING:
            del owner.cell_contents
        else:
            owner.cell_contents = value
    else:  # a function's __code__, __defaults__ or __kwdefaults__
        _object_setattr(owner, name, value)


_SNAPSHOT = _Snapshot()
_SNAPSHOT.add_modules([importlib.import_module(name) for name in _PROTECTED_MODULES])
for _cls in (_torch.Tensor, _torch.nn.Module, _torch.nn.Parameter):
    _SNAPSHOT.add_class(_cls)


def protect(*owners) -> None:
    """Add modules or classes to the snapshot (call at import, before any learner code)."""
    modules = [o for o in owners if _isinstance(o, _ModuleType)]
    _SNAPSHOT.add_modules(modules)
    for owner in owners:
        if _isinstance(owner, type):
            _SNAPSHOT.add_class(owner)


def protect_package(prefix: str, exclude: tuple[str, ...] = ()) -> None:
    """Add every loaded module of a package (``"circuitscope"``) to the snapshot, but ``exclude``."""
    modules = [
        module
        for name, module in _list(_modules.items())
        if _is(module, _ModuleType)
        and name.startswith(prefix + ".")
        and not any(name == e or name.startswith(e + ".") for e in exclude)
    ]
    _SNAPSHOT.add_modules(modules)


# =============================================================================================
# Pristine while a check runs; the learner's world while the learner's code runs
# =============================================================================================
class _Outside:
    """What the kernel looked like outside the check (the learner's state), to put back."""

    __slots__ = ("changes", "dispatch_modes", "dtype", "function_modes", "global_hooks", "profile", "trace")

    def __init__(self):
        self.changes: list[tuple] = []
        self.function_modes: list = []
        self.dispatch_modes: list = []
        self.global_hooks: dict[str, dict] = {}
        self.dtype = None
        self.trace = None
        self.profile = None


class _State:
    active = False  # True while a check runs outside learner code
    outside: _Outside | None = None
    diffs = 0  # how many times the snapshot was compared (for measuring the overhead)


_STATE = _State()
_GLOBAL_HOOK_DICTS = {name: _vars(_module_module)[name] for name in _PRIVATE_DATA["torch.nn.modules.module"]}


def _describe(owner, name: str) -> str:
    if _isinstance(owner, (_ModuleType, type)):
        return f"{getattr(owner, '__qualname__', owner.__name__)}.{name}"
    if _isinstance(owner, dict):
        return f"{owner.get('__name__', '?')}.{name}"
    return f"{getattr(owner, '__qualname__', type(owner).__name__)}.{name}"


def _tamper_message() -> str:
    names = _SNAPSHOT.tampered
    shown = ", ".join(names[:4]) + (f" and {len(names) - 4} more" if _len(names) > 4 else "")
    return (
        f"the checks cannot trust this kernel: {shown} had been replaced by notebook code before "
        "the checks were imported.\n  hint: restart the kernel and run the notebook from the top "
        "(the setup cell first); do not replace library functions"
    )


def _enter() -> _Outside:
    """Make the kernel pristine; return what has to be put back afterwards."""
    outside = _Outside()
    # Trace and profile functions first: they would run learner code on every line below.
    outside.trace, outside.profile = _gettrace(), _getprofile()
    if outside.trace is not None:
        _settrace(None)
    if outside.profile is not None:
        _setprofile(None)
    changes = _SNAPSHOT.differences()
    _STATE.diffs += 1
    done = []
    for change in changes:
        kind, owner, name, pristine_value, current = change
        try:
            _put(kind, owner, name, pristine_value)
        except _Exception as err:
            for kind, owner, name, _p, current in _reversed(done):
                _put(kind, owner, name, current)
            if outside.profile is not None:
                _setprofile(outside.profile)
            if outside.trace is not None:
                _settrace(outside.trace)
            raise CheckFailed(
                f"the checks could not restore {_describe(owner, name)} ({type(err).__name__}: {err})."
                "\n  hint: restart the kernel and run the notebook from the top; do not replace library "
                "functions"
            ) from None
        done.append(change)
    outside.changes = changes
    while _len_function_modes() > 0:  # torch.overrides.TorchFunctionMode, set_default_device
        outside.function_modes.append(_pop_function_mode())
    while _len_dispatch_modes() > 0:  # torch.utils._python_dispatch.TorchDispatchMode
        outside.dispatch_modes.append(_pop_dispatch_mode())
    for name, live in _GLOBAL_HOOK_DICTS.items():  # global forward hooks can rewrite any output
        if live:
            outside.global_hooks[name] = _dict(live)
            live.clear()
    outside.dtype = _get_default_dtype()
    if outside.dtype is not _DEFAULT_DTYPE:
        _set_default_dtype(_DEFAULT_DTYPE)
    return outside


def _leave(outside: _Outside) -> None:
    """Put the learner's state back (the inverse of :func:`_enter`)."""
    if outside.dtype is not _DEFAULT_DTYPE:
        _set_default_dtype(outside.dtype)
    for name, saved in outside.global_hooks.items():
        live = _GLOBAL_HOOK_DICTS[name]
        live.clear()
        live.update(saved)
    for mode in _reversed(outside.dispatch_modes):
        _push_dispatch_mode(mode)
    for mode in _reversed(outside.function_modes):
        _push_function_mode(mode)
    for kind, owner, name, _pristine, current in _reversed(outside.changes):
        _put(kind, owner, name, current)
    if outside.profile is not None:
        _setprofile(outside.profile)
    if outside.trace is not None:
        _settrace(outside.trace)


# No contextlib and no `with` here: a learner cell could patch contextlib's or warnings' classes,
# and a `with` statement looks its __exit__ up before the kernel is made pristine.
def _begin() -> bool:
    """Make the kernel pristine for a check; False if it already is (a nested use)."""
    if _STATE.active:
        return False
    if _SNAPSHOT.tampered:
        raise CheckFailed(_tamper_message())
    outside = _enter()
    _STATE.active, _STATE.outside = True, outside
    return True


def _end(started: bool) -> None:
    """Undo :func:`_begin`: the learner's state comes back."""
    if started:
        outside = _STATE.outside
        _STATE.active, _STATE.outside = False, None
        _leave(outside)


def _to_learner():
    """Inside a check: the learner's world, for learner code. Returns what :func:`_from_learner` needs."""
    if not _STATE.active:
        return None
    outside = _STATE.outside
    _STATE.active, _STATE.outside = False, None
    _leave(outside)
    return outside


def _from_learner(outside) -> None:
    """Back to pristine after learner code. What the learner's code changed meanwhile is set
    aside too: the state as the learner's code left it (patches from before the check included)
    is what goes back after the check."""
    if outside is not None:
        _STATE.outside = _enter()
        _STATE.active = True


class _Pristine:
    __slots__ = ("started",)

    def __enter__(self):
        self.started = _begin()
        return self

    def __exit__(self, *exc) -> bool:
        _end(self.started)
        return False


class _Learner:
    __slots__ = ("outside",)

    def __enter__(self):
        self.outside = _to_learner()
        return self

    def __exit__(self, *exc) -> bool:
        _from_learner(self.outside)
        return False


def pristine() -> _Pristine:
    """``with pristine():`` runs the body with every snapshotted attribute as it was at import,
    PyTorch's modes and global hooks set aside; the learner's state comes back afterwards.

    Nested uses are free. Raises :class:`CheckFailed` if notebook code had replaced a protected
    attribute before the snapshot was taken (the checks cannot know the genuine one then).
    """
    return _Pristine()


def learner() -> _Learner:
    """Inside :func:`pristine`, ``with learner():`` runs the body in the learner's world (for
    learner code), then makes the kernel pristine again. Outside a check it changes nothing."""
    return _Learner()


def resync() -> None:
    """Inside a check, after touching objects the learner returned (their methods are learner
    code that may patch things): make the kernel pristine again, keeping the learner's changes
    for later."""
    if not _STATE.active:
        return
    _STATE.diffs += 1
    if (
        not _SNAPSHOT.differences()
        and _len_function_modes() == 0
        and _len_dispatch_modes() == 0
        and _gettrace() is None
        and _getprofile() is None
        and _get_default_dtype() is _DEFAULT_DTYPE
        and not _any_global_hooks()
    ):
        return
    # Learner code ran during the check and changed something: back to the learner's state
    # (for what the learner had changed before the check), then pristine again.
    _from_learner(_to_learner())


def _any_global_hooks() -> bool:
    for live in _GLOBAL_HOOK_DICTS.values():
        if live:
            return True
    return False


def learner_global_hooks() -> dict[str, tuple]:
    """The learner's global module hooks (``register_module_forward_hook``), by dict name.

    During a check they are set aside; this shows them as the learner's code left them.
    """
    if _STATE.active and _STATE.outside is not None:
        saved = _STATE.outside.global_hooks
        return {name: _tuple(saved.get(name, {})) for name in _GLOBAL_HOOK_DICTS}
    return {name: _tuple(live) for name, live in _GLOBAL_HOOK_DICTS.items()}


# Warnings while a check runs are recorded (with Python's default filters, whatever a learner's
# cell set) and printed to stdout: nbgrader scores a test cell that wrote to stderr 0.
_catch_warnings_init = warnings.catch_warnings.__init__
_catch_warnings_enter = warnings.catch_warnings.__enter__
_catch_warnings_exit = warnings.catch_warnings.__exit__
_object_new = object.__new__


def _record_warnings():
    recorder = _object_new(_catch_warnings)
    _catch_warnings_init(recorder, record=True)
    log = _catch_warnings_enter(recorder)
    _warnings_module.filters[:] = _IMPORT_FILTERS
    return recorder, log


def _print_warnings(recorder, log) -> None:
    _catch_warnings_exit(recorder, None, None, None)
    seen = set()
    for w in log:
        line = f"note: a warning was raised during the check: {w.category.__name__}: {w.message}"
        if line not in seen:
            seen.add(line)
            _print(line, file=_sys.stdout, flush=True)


def _ipython_shell():
    """The IPython shell this module was imported in (None outside IPython)."""
    module = _modules.get("IPython")
    try:
        return module.get_ipython() if module is not None else None
    except _Exception:
        return None


_SHELL = _ipython_shell()
#: Methods of the shell that turn an exception into the cell's error output (what nbgrader reads).
_SHELL_ERROR_METHODS = ("run_code", "showtraceback", "_showtraceback", "showsyntaxerror")


def _show_failures() -> None:
    """Make sure a failed check reaches the cell's output as an error, as nbgrader needs.

    One line of learner code, ``get_ipython().set_custom_exc((Exception,), handler)`` or
    ``get_ipython().showtraceback = ...``, would otherwise swallow every failure, and nbgrader
    gives full marks to a test cell without an error. The learner's handler is not put back.
    """
    shell = _SHELL
    if shell is None:
        return
    try:
        if shell.custom_exceptions:
            shell.custom_exceptions = ()
        namespace = _vars(shell)
        for name in _SHELL_ERROR_METHODS:
            namespace.pop(name, None)  # an instance override; the class's method remains
    except _Exception:  # an odd shell: nothing more to do
        pass


def check(fn):
    """Decorator for a check function: it runs in :func:`pristine` and returns None; warnings
    raised while it runs are printed to stdout (nbgrader scores a test cell that wrote to stderr
    0); a failure always reaches the notebook as an error (:func:`_show_failures`).
    """

    @functools.wraps(fn)
    def run_check(*args, **kwargs) -> None:
        recorder, log = _record_warnings()
        try:
            started = _begin()
            try:
                fn(*args, **kwargs)
            finally:
                _end(started)
        except BaseException:
            _show_failures()
            raise
        finally:
            _print_warnings(recorder, log)

    run_check.__wrapped_check__ = True
    return run_check


def seeded_inception(seed: int):
    """InceptionV1 with PyTorch's default initialisation (the real structure, no weight file),
    seeded without touching the caller's random state: every call gives the same weights."""
    from ..models.inceptionv1 import InceptionV1

    with _torch.random.fork_rng(devices=[]):
        _torch.manual_seed(seed)
        return InceptionV1().eval()


# =============================================================================================
# Messages
# =============================================================================================
def passed(message: str) -> None:
    """Print the one success line of a check."""
    _print(f"{PASS_MARK} {message}", file=_sys.stdout, flush=True)


def done(name: str, n: int, hidden: bool) -> None:
    """The success line of an exercise check that ran ``n`` cases (hidden ones too if ``hidden``)."""
    extra = " (visible and hidden cases)" if hidden else ""
    passed(f"{name}: all {n} cases pass{extra}.")


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
    """Call the learner's ``fn`` in the learner's world; a crash becomes a :class:`CheckFailed`.

    Inside a check (:func:`pristine`), the learner's patches are put back while ``fn`` runs, so
    learner code behaves as written, and set aside again when it returns.
    """
    try:
        outside = _to_learner()
        try:
            return fn(*args, **kwargs)
        finally:
            _from_learner(outside)
    except NotImplementedError:
        fail(f"{what}: not implemented yet.", hint="replace `raise NotImplementedError()` with your code")
    except CheckFailed:
        raise
    except Exception as err:  # noqa: BLE001 -- the learner's bug, reported as a failed check
        fail(f"{what} raised {type(err).__name__}: {err}")


# =============================================================================================
# Comparisons
# =============================================================================================
def plain_tensor(value: _torch.Tensor) -> _torch.Tensor:
    """A detached CPU ``torch.Tensor`` with the data of ``value``, a tensor or tensor subclass.

    A subclass's methods and ``__torch_function__`` are learner code: they could answer any
    comparison with "equal". The data is kept, the class dropped.
    """
    with _DisableTorchFunctionSubclass():
        plain = _as_subclass(_detach(value), _Tensor)
    return _cpu(plain)


_PLAIN = (_Tensor, _ndarray, int, float, bool)


def as_tensor(value, what: str) -> _torch.Tensor:
    """``value`` as a plain CPU tensor, or a failed check saying what type it was.

    Converting a list, or a subclass, runs the learner's methods (``__float__``, ...): the kernel
    is made pristine again afterwards (:func:`resync`).
    """
    if _isinstance(value, _Tensor):
        out = plain_tensor(value)
    elif _isinstance(value, (_ndarray, list, tuple, int, float)):
        try:
            out = _cpu(_as_tensor(value))
        except (TypeError, ValueError, RuntimeError) as err:
            fail(f"{what} should be a tensor", expected="torch.Tensor", got=f"{type(value).__name__} ({err})")
    else:
        fail(f"{what} should be a tensor", expected="torch.Tensor", got=type(value).__name__)
    if _type(value) not in _PLAIN:
        resync()
    return out


def expect_shape(value: _torch.Tensor, shape: tuple, what: str, hint: str | None = None) -> None:
    if _tuple(_size(value)) != _tuple(shape):
        fail(f"{what} has the wrong shape", expected=_tuple(shape), got=_tuple(_size(value)), hint=hint)


def close(a: _torch.Tensor, b: _torch.Tensor, rtol: float = 1e-4, atol: float = 1e-5) -> bool:
    """True when tensors have equal shapes and all entries are close (NaN never is).

    Only functions bound at import: a method a learner added to ``torch.Tensor`` plays no part.
    """
    a, b = _to(plain_tensor(a), _float64), _to(plain_tensor(b), _float64)
    if _tuple(_size(a)) != _tuple(_size(b)):
        return False
    return _item(_all(_isclose(a, b, rtol, atol, False))) is True


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
    resync()
    if type(got) is not type(expected) and not (
        _isinstance(got, (int, float)) and _isinstance(expected, (int, float))
    ):
        fail(
            f"{what} has the wrong type", expected=type(expected).__name__, got=type(got).__name__, hint=hint
        )
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


def overhead() -> dict:
    """How big the snapshot is and how often it was compared (to measure what protection costs)."""
    return {
        "module_attributes": sum(_len(names) for _, _, names, _, _ in _SNAPSHOT.modules),
        "modules": _len(_SNAPSHOT.modules),
        "classes": _len(_SNAPSHOT.classes),
        "class_attributes": sum(_len(ns) for _, ns, _ in _SNAPSHOT.classes),
        "functions": _len(_SNAPSHOT.functions),
        "closure_cells": _len(_SNAPSHOT.cells),
        "comparisons": _STATE.diffs,
    }
