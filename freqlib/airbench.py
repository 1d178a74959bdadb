"""airbench (Jordan 2024, KellerJordan/cifar10-airbench): the network of the paper profile.

airbench94 reaches 94% CIFAR-10 test accuracy in 3-4 s on an A100. The
architecture is rebuilt here from ``legacy/airbench94.py`` of the reference:

* a **2x2 whitening stem** with bias (24 = 2 x 3 x 2 x 2 filters), initialised
  from the eigenvectors of the covariance of 2x2 patches of 5,000 training
  images (each filter and its negative) and then frozen, followed by GELU;
* three **conv groups**: 3x3 conv, 2x2 max-pool, batch norm, GELU, 3x3 conv,
  batch norm, GELU; convolutions start at the identity (Dirac) on their first
  ``c_in`` output channels;
* batch norm with a **frozen unit scale**, eps 1e-12, momentum 0.4 (airbench's
  0.6 in PyTorch's convention), and a bias that learns **64 times faster**
  than the weights (airbench's ``bias_scaler``, see :class:`BatchNorm`);
* a global **max-pool head**, a linear layer without bias, logits scaled by 1/9.

The reference's training loop (its schedule from 0.2x to 0.07x of the peak,
lookahead averaging, alternating flips, the whitening-bias freeze after 3 epochs,
weight decay on biases) is :mod:`freqlib.train`'s, switched on for every airbench
network by ``freqlib.profiles.AIRBENCH_LOOP``. What the book leaves out is listed
in ``LEFT_OUT``: test-time augmentation, because every lens probes the single
forward pass.

Hyper-parameters: airbench states its optimiser in *decoupled* units (learning
rate per 1024 examples, momentum-independent step size, decay independent of
the learning rate) for a summed loss. :func:`sgd_settings` converts them to
what :class:`freqlib.train.TrainConfig` means (PyTorch SGD on a mean loss).

The whitening happens in :meth:`AirbenchNet.init_whitening` (called by the
training loop with 5,000 training images when ``TrainConfig.whiten`` is set)
or, failing that, from the first training batch the network sees.

``FREQLIB_COMPILE=1`` compiles the network's forward pass with
``torch.compile`` on CUDA (opt-in: ``bench/bench_paper.py`` measures whether
the saved time exceeds the compile time). The flag does not enter the zoo's
model hash: it changes how the same function is computed, not what is trained.
"""
from __future__ import annotations

import os

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["AIRBENCH94", "LEFT_OUT", "WHITEN_WIDTH", "AirbenchNet", "BatchNorm", "sgd_settings",
           "compile_enabled", "count_parameters", "learned_first_layer",
           "filter_lens_conv"]

# airbench94 as published (legacy/airbench94.py): the reference every setting is compared with.
AIRBENCH94 = dict(
    widths=(64, 256, 256),
    epochs=9.9,
    batch_size=1024,
    lr=11.5,                # per 1024 examples, decoupled (see sgd_settings)
    momentum=0.85,
    weight_decay=0.0153,    # per 1024 examples, decoupled from the learning rate
    bias_scaler=64.0,       # batch-norm biases learn this much faster
    label_smoothing=0.2,
    warmup=0.23,            # share of steps rising from 0.2x to 1x; then linear down to 0.07x
    lr_ends=(0.2, 0.07),    # the schedule's first and last lr, as shares of the peak
    flip=True,
    translate=2,
    batchnorm_momentum=0.6,  # airbench's convention: the running average keeps 0.6 of itself
    logit_scale=1 / 9,
    whiten_bias_epochs=3,
    tta_level=2,
)
# What the book leaves out of the reference, and why.
LEFT_OUT = {
    "tta": "test-time augmentation (flip + 1-pixel shifts) adds about 0.5 points; the book analyses "
           "the single forward pass every lens probes, so it reports accuracy without TTA "
           "(bench/bench_paper.py measures both)",
}

WHITEN_KERNEL = 2
WHITEN_WIDTH = 2 * 3 * WHITEN_KERNEL ** 2          # each eigenvector and its negative
BN_MOMENTUM = 1 - AIRBENCH94["batchnorm_momentum"]  # PyTorch's convention
BN_EPS = 1e-12
# A bias stored as b / s and used as s * b gets s^2 times the learning rate under SGD
# (with or without momentum): s = 8 gives airbench's 64x for the batch-norm biases.
BIAS_SCALE = AIRBENCH94["bias_scaler"] ** 0.5


def sgd_settings(batch_size: int = 1024, lr: float = AIRBENCH94["lr"],
                 weight_decay: float = AIRBENCH94["weight_decay"],
                 momentum: float = AIRBENCH94["momentum"]) -> dict:
    """airbench's decoupled (lr, weight decay, momentum) as TrainConfig's ``lr``,
    ``weight_decay`` and ``momentum`` for a mean loss over ``batch_size`` images.

    The reference sums the loss and divides its lr by ``1024 (1 + 1/(1 - momentum))``
    (Nesterov's steady-state step gain), so with a mean loss the PyTorch lr is that
    times the batch size. Its decay per step is ``weight_decay * batch / (that divisor)``
    at the peak, which PyTorch SGD applies as ``lr * weight_decay``.
    """
    kilostep = 1024 * (1 + 1 / (1 - momentum))
    torch_lr = lr / kilostep * batch_size
    decay_per_step = weight_decay * batch_size / kilostep
    return {"lr": torch_lr, "weight_decay": decay_per_step / torch_lr, "momentum": momentum}


def compile_enabled() -> bool:
    return os.environ.get("FREQLIB_COMPILE", "0").strip().lower() in ("1", "true", "yes")


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


class BatchNorm(nn.BatchNorm2d):
    """Batch norm with a frozen unit scale and a fast-learning bias (airbench).

    The bias is stored divided by ``BIAS_SCALE`` and multiplied back in the
    forward pass, which multiplies its effective SGD learning rate by
    ``BIAS_SCALE**2`` = 64 without touching the optimiser.
    """

    def __init__(self, channels: int):
        super().__init__(channels, eps=BN_EPS, momentum=BN_MOMENTUM, affine=False)
        self.shift = nn.Parameter(torch.zeros(channels))
        # the unit scale as a buffer: the call below then has the (input, stats, weight, bias)
        # signature of an affine batch norm, the path cuDNN and bf16 autocast take everywhere
        self.register_buffer("unit", torch.ones(channels))

    def forward(self, x):
        return F.batch_norm(x, self.running_mean, self.running_var, self.unit, self.shift * BIAS_SCALE,
                            self.training, self.momentum, self.eps)


def _conv(c_in: int, c_out: int) -> nn.Conv2d:
    conv = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
    with torch.no_grad():
        nn.init.dirac_(conv.weight[: min(c_in, c_out)])   # start at the identity, as airbench
    return conv


class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = _conv(c_in, c_out)
        self.norm1 = BatchNorm(c_out)
        self.conv2 = _conv(c_out, c_out)
        self.norm2 = BatchNorm(c_out)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)      # pool before the norm: 4x cheaper
        x = F.gelu(self.norm1(x))
        return F.gelu(self.norm2(self.conv2(x)))


class AirbenchNet(nn.Module):
    """airbench94's network; ``widths`` = the three conv-group widths.

    ``stem`` selects a constrained first layer of :mod:`freqlib.filters`
    (Paper B); the default is airbench's 2x2 whitening convolution.
    """

    def __init__(self, widths=None, num_classes: int = 10, stem: dict | None = None):
        super().__init__()
        widths = tuple(widths or AIRBENCH94["widths"])
        if len(widths) != 3 or any(int(w) < 1 for w in widths):
            raise ValueError(f"airbench needs three positive conv-group widths, got widths={widths}; "
                             f"airbench94 uses {AIRBENCH94['widths']}")
        spec = dict(stem or {})
        self.whitening = spec.get("kind", "plain") == "plain"
        if self.whitening:
            self.stem = nn.Conv2d(3, WHITEN_WIDTH, WHITEN_KERNEL, padding=0, bias=True)
        else:
            from .filters import make_constrained_stem    # a constrained 3x3 stem (Paper B)
            self.stem = make_constrained_stem(spec.pop("kind"), 3, WHITEN_WIDTH, **spec)
        groups, c = [], WHITEN_WIDTH
        for w in widths:
            groups.append(ConvGroup(c, int(w)))
            c = int(w)
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.logit_scale = AIRBENCH94["logit_scale"]
        # Whether the stem holds its whitening filters: a buffer, so a loaded checkpoint
        # keeps them, mirrored in a Python flag so the check costs no device sync.
        self.register_buffer("whitened", torch.tensor(not self.whitening))
        self._whitened = not self.whitening
        self.register_load_state_dict_post_hook(AirbenchNet._after_load)
        self._compiled = None
        self.compilable = True        # False for a copy run under torch.func.vmap (freqlib.mask_training)

    @staticmethod
    def _after_load(module, incompatible_keys) -> None:
        module._whitened = bool(module.whitened)
        if module.whitening and module._whitened:
            module.stem.weight.requires_grad_(False)

    def _forward(self, x):
        x = F.gelu(self.stem(x))
        x = self.groups(x)
        x = x.amax(dim=(2, 3))        # airbench's MaxPool2d(3) over the final 3x3 map
        return self.head(x) * self.logit_scale

    def forward(self, x):
        if self.training and not self._whitened:
            # No whitening yet at the first training step (a loop run with whiten=False, or
            # outside the zoo's loop): do it from this batch. The zoo's loop whitens from
            # 5,000 clean images first when TrainConfig.whiten is set (every profile).
            self.init_whitening(x.detach())
        if self.compilable and x.is_cuda and compile_enabled():
            if self._compiled is None:
                self._compiled = torch.compile(self._forward)
            return self._compiled(x)
        return self._forward(x)

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Set the 2x2 stem to whiten ``images``' patches, then freeze it (airbench).

        ``images`` are normalised training images (the loop passes 5,000). The
        patch covariance is uncentred, as in the reference; its eigenvectors are
        scaled by ``1 / sqrt(eigenvalue + eps)`` and used with both signs.
        The eigendecomposition runs in float64 on the CPU so every device gets
        the same filters.
        """
        if not self.whitening:
            return                     # constrained stems keep their own parametrisation
        c = images.shape[1]
        with torch.autocast(images.device.type, enabled=False):   # a covariance wants fp32, not bf16
            patches = F.unfold(images.float(), WHITEN_KERNEL).transpose(1, 2).reshape(-1, c * WHITEN_KERNEL ** 2)
            cov = (patches.T @ patches / patches.shape[0]).double().cpu()
        eigval, eigvec = torch.linalg.eigh(cov)
        eigval, eigvec = eigval.flip(0), eigvec.flip(1)            # largest first
        filt = (eigvec / torch.sqrt(eigval.clamp(min=0) + eps)).T.reshape(-1, c, WHITEN_KERNEL, WHITEN_KERNEL)
        weight = torch.cat([filt, -filt]).to(self.stem.weight)
        self.stem.weight.copy_(weight)
        self.stem.bias.zero_()
        self.stem.weight.requires_grad_(False)   # frozen, as in the reference; the bias keeps learning
        self.whitened.fill_(True)
        self._whitened = True


def learned_first_layer(model: nn.Module) -> bool:
    """Whether training shaped the model's first-layer kernels. False for an airbench stem that
    holds its whitening filters: frozen, as in the reference, so its kernels are the training
    images' patch statistics, the same for every recipe trained on the same images, and a
    filter lens (chapter 4's score, chapter 6's band power) would read no learning. True for
    every other first layer (FastNet's whitening start is trained with the rest)."""
    body = getattr(model, "body", model)
    return not (isinstance(body, AirbenchNet) and body.whitening and body._whitened)


def filter_lens_conv(model: nn.Module) -> nn.Module:
    """The convolution a filter lens reads: the first one training shaped.

    The stem for every network whose first layer learned (:func:`learned_first_layer`);
    for an airbench network with its frozen whitening stem, the first conv group's 3x3
    convolution, which sees the 24 whitened channels rather than pixels. The stem has
    no padding and stride 1, so a grating of the image reaches that convolution at the
    same spatial frequency: its kernels' spectra are read on the same grid as a pixel
    filter's, one layer later (a deviation from Paper B, named where a chapter uses it)."""
    body = getattr(model, "body", model)
    return body.stem if learned_first_layer(body) else body.groups[0].conv1
