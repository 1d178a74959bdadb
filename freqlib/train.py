"""Training and evaluation: one loop, several input perturbations.

Hyper-parameters of a run live in :class:`TrainConfig` (the zoo hashes it).
Perturbations applied to each training batch:

==============  ===========================================================
``none``        standard training
``fgsm_linf``   L-inf adversarial, FGSM with random start (Wong et al. 2020)
``pgd_linf``    L-inf adversarial, PGD (Madry et al. 2018), via torchattacks
``fgsm_l2``     L2 adversarial, random start + one normalised-gradient step
``pgd_l2``      L2 adversarial, PGD, via torchattacks
``gaussian``    additive Gaussian noise of std ``noise_sigma``
``amplitude``   random multiplicative noise on the amplitude spectrum, phase
                kept (the power-spectrum perturbation of Paper B, rebuilt)
``geometric``   random scale / rotation / translation (``geometric``)
==============  ===========================================================
"""
from __future__ import annotations

import contextlib
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import DeviceLoader

__all__ = ["TrainConfig", "train_model", "predict_logits", "accuracy", "robust_accuracy",
           "PERTURBATIONS", "autocast", "prepare_model"]

PERTURBATIONS = ("none", "fgsm_linf", "pgd_linf", "fgsm_l2", "pgd_l2", "gaussian", "amplitude",
                 "geometric")


@dataclass
class TrainConfig:
    arch: str = "fastnet"
    widths: tuple = (32, 64, 128)
    stem: dict = field(default_factory=dict)      # first-layer variant (Paper B)
    epochs: float = 10.0
    batch_size: int = 512
    lr: float = 0.2                                # peak of the triangular schedule
    warmup: float = 0.2                            # share of steps spent rising
    momentum: float = 0.9
    weight_decay: float = 5e-4
    label_smoothing: float = 0.2
    n_train: int = 50_000                          # first n training images
    flip: bool = True
    translate: int = 2
    perturbation: str = "none"
    eps: float = 8 / 255
    alpha: float = 10 / 255
    attack_steps: int = 7
    noise_sigma: float = 0.1
    amplitude_sigma: float = 0.5
    geometric: dict = field(default_factory=lambda: {"scale": 0.0, "rotate": 0.0, "translate": 0.0})
    seed: int = 0

    def __post_init__(self):
        if self.perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation {self.perturbation!r} is not one of {PERTURBATIONS}")
        self.widths = tuple(self.widths)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        return d


def autocast(device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores), nothing on CPU (fp32 is faster there)."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def prepare_model(model: torch.nn.Module, device) -> torch.nn.Module:
    """Move to ``device`` in channels_last layout (faster convolutions on CUDA
    and, measured in bench/, about 1.5x on CPU for the fast net)."""
    return model.to(device).to(memory_format=torch.channels_last)


# ------------------------------------------------------------ perturbations
def _input_grad(model, x, y):
    x = x.detach().requires_grad_(True)
    loss = F.cross_entropy(model(x), y)
    return torch.autograd.grad(loss, x)[0]


def _l2_normalise(g):
    return g / g.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]


def perturb_batch(model, x, y, cfg: TrainConfig, gen: torch.Generator):
    p = cfg.perturbation
    if p == "none":
        return x
    if p == "gaussian":
        return (x + cfg.noise_sigma * torch.randn(x.shape, generator=gen).to(x.device)).clamp(0, 1)
    if p == "amplitude":
        from .spectral import perturb_amplitude
        return perturb_amplitude(x, cfg.amplitude_sigma, gen)
    if p == "geometric":
        return random_affine(x, gen, **cfg.geometric)
    was_training = model.training
    model.eval()  # attack against fixed BN statistics, as the torchattacks defaults do
    try:
        if p == "fgsm_linf":
            delta = (torch.rand(x.shape, generator=gen).to(x.device) * 2 - 1) * cfg.eps
            delta = ((x + delta).clamp(0, 1) - x)
            g = _input_grad(model, x + delta, y)
            delta = (delta + cfg.alpha * g.sign()).clamp(-cfg.eps, cfg.eps)
            adv = (x + delta).clamp(0, 1)
        elif p == "fgsm_l2":
            start = _l2_normalise(torch.randn(x.shape, generator=gen).to(x.device))
            radius = torch.rand(x.shape[0], 1, 1, 1, generator=gen).to(x.device) * cfg.eps
            delta = ((x + start * radius).clamp(0, 1) - x)
            g = _input_grad(model, x + delta, y)
            delta = delta + cfg.alpha * _l2_normalise(g)
            norm = delta.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]
            delta = delta * torch.clamp(cfg.eps / norm, max=1.0)
            adv = (x + delta).clamp(0, 1)
        else:
            adv = _torchattacks(model, p, cfg.eps, cfg.alpha, cfg.attack_steps)(x, y)
    finally:
        model.train(was_training)
    return adv.detach()


def _torchattacks(model, kind: str, eps: float, alpha: float, steps: int):
    import torchattacks
    if kind == "pgd_linf":
        return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    if kind == "pgd_l2":
        return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    raise ValueError(f"unknown attack {kind!r}")


def random_affine(x, gen, scale: float = 0.0, rotate: float = 0.0, translate: float = 0.0):
    """Random zoom by up to ``scale`` (fraction), rotation by up to ``rotate``
    degrees and shift by up to ``translate`` (fraction of the side), per image."""
    n = x.shape[0]
    u = lambda: (torch.rand(n, generator=gen) * 2 - 1)
    s = 1 + scale * u()
    a = math.radians(rotate) * u()
    tx, ty = translate * 2 * u(), translate * 2 * u()
    theta = torch.stack([torch.stack([torch.cos(a) / s, -torch.sin(a) / s, tx], 1),
                         torch.stack([torch.sin(a) / s, torch.cos(a) / s, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


# ----------------------------------------------------------------- training
def train_model(model, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                device="cpu", desc: str = "training", input_transform=None) -> dict:
    """Train ``model`` in place on float images in [0, 1]; return a summary dict.

    ``input_transform`` (optional, batched) is applied to every input after
    augmentation, e.g. a Fourier mask (Paper C, generalisation test).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    images, labels = images[: cfg.n_train].to(device), labels[: cfg.n_train].to(device)
    if hasattr(model.body, "init_whitening"):
        model.body.init_whitening(model.normalize(images[:5000]))
    model = prepare_model(model, device)
    loader = DeviceLoader(images, labels, cfg.batch_size, shuffle=True, flip=cfg.flip,
                          translate=cfg.translate, drop_last=len(images) > cfg.batch_size,
                          seed=cfg.seed)
    total = max(1, int(round(cfg.epochs * len(loader))))
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 else no_decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    rise = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: (s + 1) / rise if s < rise else max(0.0, (total - s) / max(1, total - rise)))
    start, step, seen_loss = time.time(), 0, float("nan")
    model.train()
    with tqdm(total=total, desc=desc, leave=False, mininterval=2.0) as bar:
        while step < total:
            for x, y in loader:
                if step >= total:
                    break
                x = perturb_batch(model, x, y, cfg, gen)
                if input_transform is not None:
                    x = input_transform(x)
                x = x.contiguous(memory_format=torch.channels_last)
                with autocast(device):
                    loss = F.cross_entropy(model(x), y, label_smoothing=cfg.label_smoothing)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                sched.step()
                step += 1
                if step % 10 == 0 or step == total:
                    seen_loss = loss.item()
                    bar.set_postfix(loss=f"{seen_loss:.3f}")
                bar.update(1)
    model.eval()
    return {"train_seconds": time.time() - start, "steps": total, "final_loss": seen_loss}


# --------------------------------------------------------------- evaluation
@torch.no_grad()
def predict_logits(model, images: torch.Tensor, batch_size: int = 1000, device=None,
                   transform=None, progress: str | None = None) -> torch.Tensor:
    """Logits for float images in [0, 1], batched; optional batched ``transform``."""
    device = device or next(model.parameters()).device
    model.eval()
    out = []
    batches = range(0, images.shape[0], batch_size)
    for s in tqdm(batches, desc=progress, leave=False, disable=progress is None):
        x = images[s:s + batch_size].to(device, non_blocking=True)
        if transform is not None:
            x = transform(x)
        with autocast(device):
            out.append(model(x).float())
    return torch.cat(out)


def accuracy(model, images, labels, batch_size: int = 1000, transform=None) -> float:
    pred = predict_logits(model, images, batch_size, transform=transform).argmax(1)
    return (pred.cpu() == labels.cpu()).float().mean().item()


def robust_accuracy(model, images, labels, norm: str = "linf", eps: float = 8 / 255,
                    steps: int = 10, alpha: float | None = None, batch_size: int = 500,
                    progress: str | None = "PGD evaluation") -> float:
    """Accuracy under PGD (torchattacks) with random start."""
    device = next(model.parameters()).device
    alpha = alpha if alpha is not None else (2.5 * eps / steps)
    attack = _torchattacks(model, "pgd_linf" if norm == "linf" else "pgd_l2", eps, alpha, steps)
    correct = 0
    model.eval()
    for s in tqdm(range(0, images.shape[0], batch_size), desc=progress, leave=False,
                  disable=progress is None):
        x = images[s:s + batch_size].to(device)
        y = labels[s:s + batch_size].to(device)
        adv = attack(x, y)
        with torch.no_grad():
            correct += (model(adv).argmax(1) == y).sum().item()
    return correct / images.shape[0]
