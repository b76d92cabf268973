"""``circuitscope sae``: train a sparse autoencoder on a layer over a folder of images."""

from __future__ import annotations

from ..core import distributed
from ..core.datasets import ImageFolderStream
from ..methods.sae import train_layer_sae
from .model_options import add_model_arguments, start

__all__ = ["add_arguments", "run"]


def add_arguments(parser):
    """The arguments of ``circuitscope sae``."""
    parser.add_argument("layer", help="the layer whose activations to learn a dictionary of, e.g. mixed4a")
    parser.add_argument("--images", required=True, help="a folder of images (ImageFolder conventions)")
    parser.add_argument("--checkpoint", required=True, help="the checkpoint file (resumed when it exists)")
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--expansion", type=int, default=4, help="features per channel")
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--l1-coeff", type=float, default=0.1)
    parser.add_argument("--batch-size", type=int, default=1024, help="vectors per step (over all processes)")
    parser.add_argument("--positions", choices=("all", "centre"), default="all")
    parser.add_argument("--image-size", type=int, default=None, help="image size (default 224)")
    parser.add_argument("--image-batch-size", type=int, default=None, help="images per forward pass")
    parser.add_argument("--checkpoint-every", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    return add_model_arguments(parser)


def run(args) -> int:
    """Run ``circuitscope sae``: :func:`train_layer_sae` over a folder of images (under
    ``torchrun``: DistributedDataParallel, image batches dealt out to the ranks)."""
    model, main = start(args)
    images = ImageFolderStream(args.images, size=args.image_size, batch_size=args.image_batch_size)
    sae, history = train_layer_sae(model, images, args.layer, expansion=args.expansion, steps=args.steps,
                                   lr=args.lr, l1_coeff=args.l1_coeff, batch_size=args.batch_size,
                                   positions=args.positions, checkpoint=args.checkpoint,
                                   checkpoint_every=args.checkpoint_every, progress=not args.no_progress,
                                   seed=args.seed)  # fmt: skip
    if main and history.steps:
        print(f"SAE on {args.layer}: {sae.d_hidden} features; step {history.steps[-1]}: loss "
              f"{history.loss[-1]:.4g}, mse {history.mse[-1]:.4g}, L0 {history.l0[-1]:.1f}; "
              f"checkpoint {args.checkpoint}")  # fmt: skip
    distributed.shutdown()
    return 0
