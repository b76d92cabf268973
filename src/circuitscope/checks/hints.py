"""Hints for errors a learner's code meets in the course library (shown by every check).

Keys are ``"ExceptionType: text in its message"``: the exception's class name and a piece of the
message that the library (or PyTorch, for its own errors) really raises; the first key that
matches gives the hint. ``tests/test_hints.py`` raises each library error and checks its key.
"""

from __future__ import annotations

LIBRARY_ERRORS: dict[str, str] = {
    # -- optvis.param: a parameterization is called, it has no .image() (ImageParam.__getattr__)
    "AttributeError: is called, not asked for an image":
        "a parameterization (FourierImage, PixelImage) is called like a function: images = image() "
        "gives its (N, 3, H, W) images in [0, 1], and image.parameters() are what the optimiser changes",
    # -- units.parse_unit without the model that has the layer
    "ValueError: Without a model, units are looked up in InceptionV1":
        "a unit of another model (\"curves:2\" is the planted model's) is looked up in that model: "
        "pass it, parse_unit(unit, model)",
    # -- circuits.branch_of on a unit that has no branch
    "ValueError: call branch_of only for a block's channel":
        "only a block's concatenated channels (\"3b:379\") lie in a branch; a unit of conv2d0..2 "
        "or of a branch (\"mixed3b_5x5:12\") is already one convolution's channel: use "
        "parse_unit(unit) as it is, and branch_of only when the layer is a block (mixed3a..mixed5b)",
    # -- a convolution that does not exist (a block's output has none: it concatenates branches)
    "AttributeError: _pre_relu_conv'":
        "only convolutions have a <layer>_pre_relu_conv module: a block's output (mixed3b) "
        "concatenates its branches, so find the branch first: branch_of(\"3b:379\") == "
        "(\"mixed3b_5x5\", 59), then model.mixed3b_5x5_pre_relu_conv.weight[59]",
    # -- layer names (hooks.check_layer_names: activations, capture, render, forward_to)
    "KeyError: unknown layer name":
        "layers are named as in model.layer_names ('mixed3b', 'mixed3b_pre_relu', 'mixed3b_5x5'); "
        "the short form '3b' is for units only ('3b:379')",
    "KeyError: no hook point named":
        "model.hook_points is keyed by the model's layer names (model.layer_names), e.g. "
        "model.hook_points['mixed3b']",
    "TypeError: forward_to takes a list of layer names":
        "pass the layer names as a list: forward_to(model, images, [layer])[layer]",
    # -- images given to a model (models.inceptionv1.check_images) or a convolution
    "TypeError: expected float images in [0, 1]":
        "the models take float images in [0, 1]: convert 0..255 pixels with x.float() / 255",
    "TypeError: expected images as a torch.Tensor":
        "the models take torch tensors: torch.as_tensor(array), then (N, 3, H, W) float in [0, 1]",
    "ValueError: expected images of shape (N, 3, H, W)":
        "the models take a batch: one image (3, H, W) becomes x[None] (or x.unsqueeze(0)); an "
        "(H, W, 3) array needs permute(2, 0, 1) first",
    "ValueError: the classifier needs mixed5b to be at least 7x7":
        "only the logits need images of 193 px or more: for a layer's activations use "
        "cs.activations(model, images, [layer]), which stops at that layer",
    "RuntimeError: Input type (double)":
        "the images are float64 (double) but the model's weights are float32: convert with x.float()",
    "RuntimeError: Input type (torch.cuda.DoubleTensor)":
        "the images are float64 (double) but the model's weights are float32: convert with x.float()",
    "RuntimeError: double != float":
        "a float64 (double) tensor met a float32 one: convert with x.float()",
    # -- class labels
    "IndexError: logit index":
        "cs.label takes an index of the 1008 logits, 0..1007, e.g. one of "
        "logits.topk(k, dim=-1).indices[n]",
    "TypeError: label takes one logit index":
        "cs.label names one index at a time: cs.label(int(i))",
    # -- objectives (optvis.objectives)
    "IndexError: is out of range for":
        "the channel must be below the layer's channel count: model.layer_channels[layer]",
    # -- PyTorch errors a learner's code meets around the library
    "TypeError: 'Tensor' object is not callable":
        "a tensor was called like a function: did `image = image()` replace the parameterization "
        "by its images? Name the result differently (x = image())",
    "RuntimeError: does not require grad":
        "the value you differentiate does not depend on anything with requires_grad: call "
        "x.requires_grad_(True) before the forward pass, and do not compute it under torch.no_grad()",
    "TypeError: takes 2 positional arguments but 3 were given":
        "if this is a forward hook: PyTorch calls it as hook(module, inputs, output)",
}  # fmt: skip


def library_hint(name: str, message: str) -> str | None:
    """The hint of :data:`LIBRARY_ERRORS` for an exception ``name`` with ``message``, or None."""
    return first_hint(LIBRARY_ERRORS, name, message)


def first_hint(table: dict[str, str], name: str, message: str) -> str | None:
    """The first hint in ``table`` whose key (``"TypeError"`` or ``"TypeError: text"``) matches."""
    for key, hint in table.items():
        kind, _, text = key.partition(": ")
        if kind == name and text in message:
            return hint
    return None
