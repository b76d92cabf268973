"""The kernel's side of a graded call (runs inside the sandbox, as untrusted as the learner's code).

The grader sends ``serve(request)``: the learner's function name, its arguments and steps
(:mod:`.wire` data), as the user expression of an execute request (evaluated with ``eval``, not
run as a cell: see ``circuitscope_course.verdicts``). This looks the function up among the
notebook's names, calls it with :func:`.runner.execute` (the same code instant feedback uses) and
publishes the :class:`~.runner.Outcome` as display data of type :data:`.wire.MIME`. Nothing here
is trusted: whatever the kernel sends back is only the learner's answer, judged in the grader's
process.
"""

from __future__ import annotations

from . import wire
from .runner import Outcome, execute


def _namespace() -> dict:
    try:
        from IPython import get_ipython

        shell = get_ipython()
    except ImportError:  # pragma: no cover
        shell = None
    if shell is not None:
        return shell.user_ns
    import __main__

    return vars(__main__)


def answer(request: dict, namespace: dict | None = None) -> Outcome:
    """Call the learner's function named in ``request`` (looked up in ``namespace``, by default
    the notebook's); its outcome (never raises)."""
    name = request["function"]
    fn = (_namespace() if namespace is None else namespace).get(name)
    if fn is None:
        return Outcome(error=("NameError", f"the notebook defines no {name!r}: run the cell that defines it"))
    if not callable(fn):
        return Outcome(error=("TypeError", f"{name} is a {type(fn).__name__}, not a function"))
    return execute(fn, tuple(request["args"]), dict(request["kwargs"]), tuple(request["then"]),
                   request["observe"], bool(request["unchanged"]), tuple(request.get("forbid", ())))  # fmt: skip


def serve(text: str) -> None:
    """Answer one request, or a list of them (base64 :mod:`.wire` data), with display data of type
    ``wire.MIME``: an :class:`Outcome`, or the list of them."""
    from IPython.display import publish_display_data

    try:
        request = wire.decode(text)
        # a list: every case of an exercise in one round trip, answered in order
        reply = wire.encode([answer(r) for r in request] if isinstance(request, list) else answer(request))
    except Exception as err:  # noqa: BLE001 -- an answer that cannot be encoded is a wrong answer
        reply = wire.encode(Outcome(error=(type(err).__name__, f"the result could not be sent as data: {err}")))
    publish_display_data({wire.MIME: reply})
