"""The two architectures of the book, behind one wrapper.

* ``FastNet``: a small airbench-style CNN (Jordan 2024): a whitening-initialised
  3x3 first conv, then three conv-pool-BN-GELU blocks and a max-pooled linear
  head. Width comes from the profile.
* ``ResNet18``: the CIFAR variant (3x3 stem, no max-pool) of He et al. 2016.

Every model is a :class:`Classifier`: it takes images in [0, 1] and
normalises them itself, so attacks, filters and masks all work in pixel space.
``model.normalize`` and ``model.body`` are exposed for methods that act on the
normalised image (Fourier masks).
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F

__all__ = ["ARCHS", "CIFAR_MEAN", "CIFAR_STD", "Classifier", "FastNet", "ResNet18", "build_model",
           "first_conv"]

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2470, 0.2435, 0.2616)


class Normalize(nn.Module):
    def __init__(self, mean=CIFAR_MEAN, std=CIFAR_STD):
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, x):
        return (x - self.mean) / self.std


class Classifier(nn.Module):
    """``body(normalize(x))`` for x in [0, 1]."""

    def __init__(self, body: nn.Module):
        super().__init__()
        self.normalize = Normalize()
        self.body = body

    def forward(self, x):
        return self.body(self.normalize(x))


def make_stem(spec: dict | None, in_ch: int, out_ch: int) -> nn.Module:
    """The first 3x3 convolution. ``spec['kind']`` picks a constrained variant
    from :mod:`freqlib.filters` (Paper B); the default is a plain conv."""
    spec = dict(spec or {})
    kind = spec.pop("kind", "plain")
    if kind == "plain":
        return nn.Conv2d(in_ch, out_ch, 3, padding=1, bias=False)
    from . import filters  # constrained first layers live with the filter analysis
    return filters.make_constrained_stem(kind, in_ch, out_ch, **spec)


# -------------------------------------------------------------- fast net
class ConvGroup(nn.Module):
    def __init__(self, c_in: int, c_out: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.norm1 = nn.BatchNorm2d(c_out, momentum=0.4)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.norm2 = nn.BatchNorm2d(c_out, momentum=0.4)

    def forward(self, x):
        x = F.max_pool2d(self.conv1(x), 2)  # pool before BN: 4x cheaper, as airbench
        x = F.gelu(self.norm1(x))
        return F.gelu(self.norm2(self.conv2(x)))


class FastNet(nn.Module):
    def __init__(self, widths=(32, 64, 128), num_classes: int = 10, stem: dict | None = None,
                 logit_scale: float = 1 / 9):
        super().__init__()
        self.stem = make_stem(stem, 3, widths[0])
        self.stem_norm = nn.BatchNorm2d(widths[0], momentum=0.4)
        c = widths[0]
        groups = []
        for w in widths:
            groups.append(ConvGroup(c, w))
            c = w
        self.groups = nn.Sequential(*groups)
        self.head = nn.Linear(c, num_classes, bias=False)
        self.logit_scale = logit_scale  # airbench's small output scale steadies early training

    def forward(self, x):
        x = F.gelu(self.stem_norm(self.stem(x)))
        x = self.groups(x)
        x = F.adaptive_max_pool2d(x, 1).flatten(1)
        return self.head(x) * self.logit_scale

    @torch.no_grad()
    def init_whitening(self, images: torch.Tensor, eps: float = 5e-4) -> None:
        """Initialise the 3x3 stem as a whitening filter bank of the data's patches.

        Half the filters are the scaled top eigenvectors of the patch covariance,
        the other half their negatives (so GELU passes both signs). The stem stays
        trainable, because Paper B studies the learned first-layer filters.
        """
        conv = self.stem if isinstance(self.stem, nn.Conv2d) else None
        if conv is None:
            return  # constrained stems have their own parametrisation
        patches = F.unfold(images, 3).transpose(1, 2).reshape(-1, images.shape[1] * 9)
        patches = patches - patches.mean(0)
        cov = patches.T @ patches / patches.shape[0]
        eigval, eigvec = torch.linalg.eigh(cov)
        order = eigval.argsort(descending=True)
        half = conv.out_channels // 2
        idx = order[torch.arange(half) % len(order)]
        filt = (eigvec[:, idx] / torch.sqrt(eigval[idx] + eps)).T.reshape(half, -1, 3, 3)
        weight = torch.cat([filt, -filt])
        if weight.shape[0] < conv.out_channels:
            weight = torch.cat([weight, torch.zeros_like(weight[:1])])
        conv.weight.copy_(weight[: conv.out_channels])


# -------------------------------------------------------------- ResNet-18
class BasicBlock(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Sequential()
        if stride != 1 or c_in != c_out:
            self.shortcut = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                          nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        return F.relu(self.bn2(self.conv2(out)) + self.shortcut(x))


class ResNet18(nn.Module):
    def __init__(self, num_classes: int = 10, width: int = 64, stem: dict | None = None):
        super().__init__()
        self.stem = make_stem(stem, 3, width)
        self.stem_norm = nn.BatchNorm2d(width)
        layers, c = [], width
        for i, mult in enumerate((1, 2, 4, 8)):
            for j in range(2):
                stride = 2 if (i > 0 and j == 0) else 1
                layers.append(BasicBlock(c, width * mult, stride))
                c = width * mult
        self.layers = nn.Sequential(*layers)
        self.head = nn.Linear(c, num_classes)

    def forward(self, x):
        x = F.relu(self.stem_norm(self.stem(x)))
        x = self.layers(x)
        return self.head(F.adaptive_avg_pool2d(x, 1).flatten(1))


ARCHS = ("fastnet", "resnet18", "airbench")


def build_model(arch: str, widths=None, num_classes: int = 10, stem: dict | None = None) -> Classifier:
    """``arch`` is ``"fastnet"`` (``widths`` = three channel counts), ``"resnet18"``
    (``widths`` = its base width) or ``"airbench"`` (:mod:`freqlib.airbench`, the
    GPU-fast network of the paper profile)."""
    if arch == "fastnet":
        body = FastNet(tuple(widths or (32, 64, 128)), num_classes, stem)
    elif arch == "resnet18":
        body = ResNet18(num_classes, width=(widths or [64])[0], stem=stem)
    elif arch == "airbench":
        from .airbench import AirbenchNet   # its own module: editing it retrains only airbench models
        body = AirbenchNet(widths, num_classes, stem)
    else:
        raise ValueError(f"unknown architecture {arch!r}; use one of {ARCHS}")
    return Classifier(body)


def first_conv(model: nn.Module) -> nn.Module:
    """The first-layer convolution of a zoo model (Paper B analyses its kernels)."""
    body = model.body if isinstance(model, Classifier) else model
    return body.stem
