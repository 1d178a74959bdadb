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

Adversarial recipes follow the reference code of Wong et al. 2020
(locuslab/fast_adversarial, ``train_fgsm.py``): the attack step runs with the
network in *train* mode (batch-norm on batch statistics), and a
catastrophic-overfitting guard measures PGD-5 accuracy on the first training
batch after every epoch; if it falls by more than ``co_drop`` the run stops
and the previous epoch's weights are kept (their ``--early-stop``). The
guard's history and whether it fired go into the summary (and the zoo record).

airbench's loop (KellerJordan/cifar10-airbench, ``legacy/airbench94.py``) is five
settings, off by default and on wherever an airbench network trains
(:data:`freqlib.profiles.AIRBENCH_LOOP`): ``lr_ends`` (its schedule rises from
0.2x and ends at 0.07x of the peak), ``lookahead`` (every 5 steps the weights move
to an average that trails them ever less, and training ends on that average),
``alternating_flip`` (a fixed half of the images is flipped on even epochs, the
other half on odd ones), ``stem_bias_epochs`` (the whitening stem's bias trains for
3 epochs, then freezes) and ``decay_biases`` (weight decay on every parameter).
"""
from __future__ import annotations

import copy
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .data import DeviceLoader
from .evaluate import AutocastLogits, autocast, for_attack, prepare_model

__all__ = ["TrainConfig", "train_model", "PERTURBATIONS", "ADVERSARIAL", "random_affine", "lr_factor",
           "Lookahead"]

PERTURBATIONS = ("none", "fgsm_linf", "pgd_linf", "fgsm_l2", "pgd_l2", "gaussian", "amplitude",
                 "geometric")
ADVERSARIAL = ("fgsm_linf", "pgd_linf", "fgsm_l2", "pgd_l2")


@dataclass
class TrainConfig:
    arch: str = "fastnet"
    widths: tuple = (32, 64, 128)
    dataset: str = "cifar10"                       # or a synthetic set of freqlib.synthetic
    stem: dict = field(default_factory=dict)      # first-layer variant (Paper B)
    whiten: bool = True                            # whitening init of a plain 3x3 stem (FastNet)
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
    co_guard: bool = True                          # catastrophic-overfitting guard (adversarial recipes)
    co_drop: float = 0.2                           # PGD-5 accuracy drop that counts as a collapse
    lr_ends: tuple = (0.0, 0.0)                    # lr at the first and last step, as shares of the peak
    lookahead: bool = False                        # airbench's weight averaging every 5 steps
    alternating_flip: bool = False                 # flip a fixed half on even epochs, the rest on odd
    stem_bias_epochs: int | None = None            # epochs the whitening stem's bias trains (None: all)
    decay_biases: bool = False                     # weight decay on 1-d parameters too
    seed: int = 0

    def __post_init__(self):
        if self.perturbation not in PERTURBATIONS:
            raise ValueError(f"perturbation {self.perturbation!r} is not one of {PERTURBATIONS}")
        self.widths = tuple(self.widths)
        self.lr_ends = tuple(float(v) for v in self.lr_ends)
        if len(self.lr_ends) != 2 or not all(0.0 <= v <= 1.0 for v in self.lr_ends):
            raise ValueError(f"lr_ends={self.lr_ends} must be two shares of the peak lr in [0, 1] "
                             "(first step, last step); airbench uses (0.2, 0.07)")
        if not self.epochs > 0 or self.batch_size < 1 or self.n_train < 1:
            raise ValueError(f"epochs={self.epochs}, batch_size={self.batch_size}, n_train={self.n_train} "
                             "must all be positive")
        if not 0.0 <= self.warmup <= 1.0:
            raise ValueError(f"warmup={self.warmup} is a share of the steps; give a value in [0, 1]")
        if self.stem_bias_epochs is not None and self.stem_bias_epochs < 0:
            raise ValueError(f"stem_bias_epochs={self.stem_bias_epochs} must be >= 0 "
                             "(None trains the whitening bias throughout; airbench uses 3)")

    def to_dict(self) -> dict:
        d = asdict(self)
        d["widths"] = list(self.widths)
        d["lr_ends"] = list(self.lr_ends)
        return d


# ------------------------------------------------------------ perturbations
def _input_grad(model, x, y):
    x = x.detach().requires_grad_(True)
    with autocast(x.device):
        loss = F.cross_entropy(model(x).float(), y)
    return torch.autograd.grad(loss, x)[0]


def _l2_normalise(g):
    return g / g.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]


def _rand(shape, gen: torch.Generator) -> torch.Tensor:
    """Uniform draws on the generator's device (the loop's generator lives where the data does,
    so no host copy waits for the device); ``.to`` moves them only for a generator elsewhere."""
    return torch.rand(shape, generator=gen, device=gen.device)


def _randn(shape, gen: torch.Generator) -> torch.Tensor:
    return torch.randn(shape, generator=gen, device=gen.device)


def perturb_batch(model, x, y, cfg: TrainConfig, gen: torch.Generator):
    """The training input for batch ``x``: the clean batch or its perturbation.

    Attacks run with the model in whatever mode the caller left it (train mode
    during training, as the FGSM-RS reference does: batch-norm uses the batch's
    statistics and updates its running averages).
    """
    p = cfg.perturbation
    if p == "none":
        return x
    if p == "gaussian":
        return (x + cfg.noise_sigma * _randn(x.shape, gen).to(x.device)).clamp(0, 1)
    if p == "amplitude":
        from .spectral import perturb_amplitude
        return perturb_amplitude(x, cfg.amplitude_sigma, gen)
    if p == "geometric":
        return random_affine(x, gen, **cfg.geometric)
    if p == "fgsm_linf":
        delta = (_rand(x.shape, gen).to(x.device) * 2 - 1) * cfg.eps
        delta = ((x + delta).clamp(0, 1) - x)
        g = _input_grad(model, x + delta, y)
        delta = (delta + cfg.alpha * g.sign()).clamp(-cfg.eps, cfg.eps)
        adv = (x + delta).clamp(0, 1)
    elif p == "fgsm_l2":
        start = _l2_normalise(_randn(x.shape, gen).to(x.device))
        radius = _rand((x.shape[0], 1, 1, 1), gen).to(x.device) * cfg.eps
        delta = ((x + start * radius).clamp(0, 1) - x)
        g = _input_grad(model, x + delta, y)
        delta = delta + cfg.alpha * _l2_normalise(g)
        norm = delta.flatten(1).norm(dim=1).clamp(min=1e-12)[:, None, None, None]
        delta = delta * torch.clamp(cfg.eps / norm, max=1.0)
        adv = (x + delta).clamp(0, 1)
    else:
        attack = _torchattacks(model, p, cfg.eps, cfg.alpha, cfg.attack_steps)
        attack.set_model_training_mode(model_training=model.training, batchnorm_training=model.training)
        adv = attack(x, y)
    return adv.detach()


def _torchattacks(model, kind: str, eps: float, alpha: float, steps: int):
    import torchattacks
    # the inner attack under the training step's bf16 autocast, as FGSM's gradient is
    # (torchattacks calls the model outside any autocast: fp32, about twice the cost on a GPU)
    model = for_attack(AutocastLogits(model))
    if kind == "pgd_linf":
        return torchattacks.PGD(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    if kind == "pgd_l2":
        return torchattacks.PGDL2(model, eps=eps, alpha=alpha, steps=steps, random_start=True)
    raise ValueError(f"unknown attack {kind!r}")


def random_affine(x, gen, scale: float = 0.0, rotate: float = 0.0, translate: float = 0.0):
    """Random zoom by up to ``scale`` (fraction), rotation by up to ``rotate``
    degrees and shift by up to ``translate`` (fraction of the side), per image."""
    n = x.shape[0]
    u = lambda: (_rand((n,), gen) * 2 - 1)
    s = 1 + scale * u()
    a = math.radians(rotate) * u()
    tx, ty = translate * 2 * u(), translate * 2 * u()
    theta = torch.stack([torch.stack([torch.cos(a) / s, -torch.sin(a) / s, tx], 1),
                         torch.stack([torch.sin(a) / s, torch.cos(a) / s, ty], 1)], 1).to(x)
    grid = F.affine_grid(theta, list(x.shape), align_corners=False)
    return F.grid_sample(x, grid, padding_mode="reflection", align_corners=False)


# ----------------------------------------------------------------- training
def lr_factor(step: int, total: int, rise: int, ends: tuple = (0.0, 0.0)) -> float:
    """The learning rate at ``step`` as a share of the peak: linear from ``ends[0]`` up to 1
    over ``rise`` steps, then linear down to ``ends[1]`` at ``total`` (airbench: 0.2 and 0.07;
    0 and 0 is the triangle of Wong et al.'s cyclic schedule)."""
    first, last = ends
    if step < rise:
        return first + (1 - first) * (step + 1) / rise
    return last + (1 - last) * max(0.0, (total - step) / max(1, total - rise))


class Lookahead:
    """airbench's lookahead: every ``every`` steps the average moves toward the weights by
    ``1 - decay`` and the weights jump back to it; ``decay = 0.95**5 (step / total)**3``, so
    early on the weights lead and late in training the average holds them. Batch-norm
    statistics are averaged with the weights (the reference averages the state dict)."""

    def __init__(self, model: torch.nn.Module, total: int, every: int = 5):
        self.state = [v for v in model.state_dict().values() if v.is_floating_point()]
        self.average = [v.detach().clone() for v in self.state]
        self.total, self.every = total, every

    @torch.no_grad()
    def step(self, step: int) -> None:
        if step % self.every == 0:
            self._pull(0.95 ** 5 * (step / self.total) ** 3)

    @torch.no_grad()
    def finish(self) -> None:
        """End on the average (the reference's last update, decay 1)."""
        self._pull(1.0)

    def _pull(self, decay: float) -> None:
        torch._foreach_lerp_(self.average, self.state, 1 - decay)
        torch._foreach_copy_(self.state, self.average)


def _whitening_stem_bias(model):
    """The bias of an airbench whitening stem, or None (other stems keep training it)."""
    body = getattr(model, "body", model)
    return body.stem.bias if getattr(body, "whitening", False) and body.stem.bias is not None else None


def _pgd5_accuracy(model, x, y, cfg: TrainConfig) -> float:
    """PGD-5 accuracy (step 2/255 in L-inf, eps/4 in L2) on one batch, model in train mode:
    the reference's catastrophic-overfitting probe."""
    kind = "pgd_l2" if cfg.perturbation.endswith("l2") else "pgd_linf"
    alpha = cfg.eps / 4 if kind == "pgd_l2" else 2 / 255
    attack = _torchattacks(model, kind, cfg.eps, alpha, 5)
    attack.set_model_training_mode(model_training=True, batchnorm_training=True)
    adv = attack(x, y)
    with torch.no_grad(), autocast(x.device):
        return (model(adv).argmax(1) == y).float().mean().item()


def train_model(model, images: torch.Tensor, labels: torch.Tensor, cfg: TrainConfig,
                device="cpu", desc: str = "training", input_transform=None) -> dict:
    """Train ``model`` in place on float images in [0, 1]; return a summary dict.

    ``input_transform`` (optional, batched) is applied to every input after
    augmentation, e.g. a Fourier mask (Paper C, generalisation test).
    """
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device=device).manual_seed(cfg.seed)    # draws on the device: no copy per step
    images, labels = images[: cfg.n_train].to(device), labels[: cfg.n_train].to(device)
    model = prepare_model(model, device)       # first, so whitening sees model and images on one device
    if cfg.whiten and hasattr(model.body, "init_whitening"):
        model.body.init_whitening(model.normalize(images[:5000]))
    loader = DeviceLoader(images, labels, cfg.batch_size, shuffle=True, flip=cfg.flip,
                          translate=cfg.translate, drop_last=len(images) > cfg.batch_size,
                          seed=cfg.seed, alternating_flip=cfg.alternating_flip)
    total = max(1, int(round(cfg.epochs * len(loader))))
    decay, no_decay = [], []
    for p in model.parameters():
        (decay if p.ndim > 1 or cfg.decay_biases else no_decay).append(p)
    opt = torch.optim.SGD([{"params": decay, "weight_decay": cfg.weight_decay},
                           {"params": no_decay, "weight_decay": 0.0}],
                          lr=cfg.lr, momentum=cfg.momentum, nesterov=True)
    rise = max(1, int(cfg.warmup * total))
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, total, rise, cfg.lr_ends))
    lookahead = Lookahead(model, total) if cfg.lookahead else None
    stem_bias = _whitening_stem_bias(model) if cfg.stem_bias_epochs is not None else None
    guard = cfg.co_guard and cfg.perturbation in ADVERSARIAL
    probe, guard_history, collapsed, last_good = None, [], False, None
    start, step, epoch, seen_loss = time.time(), 0, 0, torch.zeros(())
    model.train()
    with tqdm(total=total, desc=desc, leave=False, mininterval=2.0) as bar:
        while step < total and not collapsed:
            if stem_bias is not None:     # a frozen parameter gets no gradient: SGD skips it
                stem_bias.requires_grad_(epoch < cfg.stem_bias_epochs)
            epoch += 1
            for x, y in loader:
                if step >= total:
                    break
                if probe is None:
                    probe = (x, y)   # the reference probes its first training batch
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
                if lookahead is not None:
                    lookahead.step(step)
                seen_loss = loss.detach()
                bar.update(1)
            bar.set_postfix(loss=f"{seen_loss.item():.3f}")   # one host sync per epoch
            if guard:
                acc = _pgd5_accuracy(model, *probe, cfg)
                guard_history.append(round(acc, 4))
                if len(guard_history) > 1 and acc < guard_history[-2] - cfg.co_drop:
                    collapsed = True
                    model.load_state_dict(last_good)
                else:
                    last_good = copy.deepcopy(model.state_dict())
    if lookahead is not None and not collapsed:
        lookahead.finish()
    if stem_bias is not None:
        stem_bias.requires_grad_(True)    # as built: a later fine-tune decides for itself
    model.eval()
    return {"train_seconds": time.time() - start, "steps": step, "final_loss": float(seen_loss),
            "co_guard": guard_history if guard else None, "co_collapse": collapsed}
