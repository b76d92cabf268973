"""Hints for errors a learner's code meets in the course library (shown by every check).

Keys are ``"ExceptionType: text in its message"``; the first key that matches gives the hint.
"""

LIBRARY_ERRORS: dict[str, str] = {
    "AttributeError: 'FourierImage' object has no attribute 'image'":
        "a FourierImage is called, not asked: image = param() gives the (N, 3, H, W) image",
    "AttributeError: object has no attribute 'image'":
        "a parameterization is called, not asked: image = param() gives the (N, 3, H, W) image",
    "UnitError: needs the model":
        "a unit named by a family (\"curves:2\") is looked up in a model: pass model=model",
    "UnitError: not a layer of an Inception block":
        "branch_of takes a unit of a mixed layer (\"mixed3b:379\"); conv2d0-2 have no branches",
    "TypeError: 'Tensor' object is not callable":
        "a tensor was called like a function: is a name that should be a function holding a tensor?",
    "RuntimeError: does not require grad":
        "the tensor you differentiate does not depend on anything with requires_grad: call "
        "x.requires_grad_(True) before the forward pass",
}
