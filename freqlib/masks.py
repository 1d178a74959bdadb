"""Fourier masks (Paper C: Karantzas et al. 2022, "Understanding robustness and
generalization of artificial neural networks through Fourier masks").

A *Fourier mask* ``M`` is a real array over the centred spectrum, values in
[0, 1]. A frozen network sees the image through it:
``body(real(F^-1(M * F normalize(x))))``. The mask is learned so that the
network's loss does not change while the mask's mean shrinks:

    loss = exp((CE(f(masked x), y) - CE(f(x), y))^2) + lam * mean(M)

(the reference code divides ``lam * ||M||_1`` by the all-ones norm, which is
``lam * mean(M)`` for a mask in [0, 1]). Adam, one-cycle schedule, the mask
clamped to [0, 1] after every step, network in eval mode (frozen batch norm).

Conventions of this module
--------------------------
* Masks are stored in the *centred* layout of :mod:`freqlib.spectral`
  (frequency (0, 0) at index (H // 2, W // 2)): the reference code stores the
  uncentred layout and shows ``fftshift(M)``; the two differ only by that shift.
* Shapes: ``(1, 1, H, W)`` one mask shared by the channels, ``(1, C, H, W)``
  per channel, ``(B, 1, H, W)`` one mask per image. They broadcast on images.
* Only the real part of the inverse DFT is kept, so ``M`` and its
  mirror-symmetrised version ``(M(f) + M(-f)) / 2`` give identical images
  (:func:`symmetrize`). Training from the all-ones mask keeps ``M`` symmetric.
* Per-image losses are averaged over a batch, so the batch objective is the
  expectation of the paper's batch-size-1 objective; the batch size changes the
  gradient noise and the number of steps, not the target.
"""
from __future__ import annotations

import copy
import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from .spectral import (angular_profile, centred_dft, frequency_angle, frequency_radius,
                       inverse_centred_dft, radial_profile)

__all__ = [
    "apply_mask", "masked_logits", "pixel_transform", "symmetrize", "complement", "support",
    "MaskConfig", "MaskResult", "train_mask", "train_image_masks", "mask_accuracy",
    "l2_normalise", "radial_energy", "radial_centroid", "angular_energy", "anisotropy",
    "bootstrap_anisotropy", "isotropic_version", "band_mass_ratio",
    "ssim", "psnr", "linear_probe", "train_through_mask", "scaled_lr",
]


# ------------------------------------------------------------ the operation
def apply_mask(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """``real(F^-1(mask * F x))`` with a centred-layout mask, batched.

    ``x`` is (N, C, H, W); ``mask`` broadcasts against it: (1, 1, H, W),
    (1, C, H, W), (N, 1, H, W) or (H, W).
    """
    if mask.shape[-2:] != x.shape[-2:]:
        raise ValueError(f"mask is {tuple(mask.shape[-2:])} but images are {tuple(x.shape[-2:])}; "
                         "a Fourier mask must have the images' height and width")
    return inverse_centred_dft(centred_dft(x) * mask.to(x.dtype))


def masked_logits(model, x: torch.Tensor, mask: torch.Tensor | None) -> torch.Tensor:
    """Logits of a ``freqlib.models.Classifier`` for pixel images ``x`` seen through
    ``mask`` applied to the *normalised* image (``None``: no mask)."""
    z = model.normalize(x)
    return model.body(z if mask is None else apply_mask(z, mask))


def pixel_transform(mask: torch.Tensor, normalize):
    """A batched transform of pixel images such that ``model(t(x)) == masked_logits(model, x, mask)``.

    Normalisation is affine per channel and the mean image has only a DC
    component, so ``t(x) = std * apply_mask(normalize(x), mask) + mean``. The
    result is *not* clipped to [0, 1] (clipping would change what the network sees).
    """
    def transform(x: torch.Tensor) -> torch.Tensor:
        m = mask.to(x.device)
        return apply_mask(normalize(x), m) * normalize.std + normalize.mean
    return transform


def _mirror_index(n: int) -> torch.Tensor:
    # centred index i holds frequency i - n//2; its mirror -f sits at (n - i) mod n (n even)
    # and at (n - 1 - i) for odd n
    i = torch.arange(n)
    return (n - i) % n if n % 2 == 0 else (n - 1 - i)


def symmetrize(mask: torch.Tensor) -> torch.Tensor:
    """``(M(f) + M(-f)) / 2``: the mask that real(F^-1(M F x)) actually applies."""
    h, w = mask.shape[-2:]
    mirror = mask.index_select(-2, _mirror_index(h).to(mask.device)).index_select(-1, _mirror_index(w).to(mask.device))
    return 0.5 * (mask + mirror)


def support(mask: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """``1[M > threshold]`` as a float mask."""
    return (mask > threshold).to(mask.dtype)


def complement(mask: torch.Tensor, threshold: float = 0.0) -> torch.Tensor:
    """The complement mask ``1 - 1[M > threshold]`` (every frequency the mask drops)."""
    return 1.0 - support(mask, threshold)


# ------------------------------------------------------------ mask training
@dataclass
class MaskConfig:
    """Hyper-parameters of one (dataset-level) mask; the defaults are the paper's."""
    lam: float = 0.2              # weight of mean(M)
    lr: float = 1e-3              # Adam peak learning rate (one-cycle)
    batch_size: int = 1           # the paper used 1; see scaled_lr for larger batches
    max_epochs: int = 100
    pct_start: float = 0.1        # share of the one-cycle schedule spent rising
    keep_ratio: float = 0.99      # keep a mask only if masked acc >= keep_ratio * unmasked acc
    tol: float = 1e-5             # |sparsity change| per epoch that counts as "not changing"
    patience: int = 7             # stop after this many kept epochs in a row that do not change
    per_channel: bool = False     # one mask per colour channel (1, C, H, W) instead of (1, 1, H, W)
    seed: int = 0

    def __post_init__(self):
        if self.batch_size < 1 or self.max_epochs < 1 or self.patience < 1:
            raise ValueError("batch_size, max_epochs and patience must be positive integers")
        if not 0 < self.keep_ratio <= 1:
            raise ValueError(f"keep_ratio={self.keep_ratio} must lie in (0, 1]")


def scaled_lr(batch_size: int, base: float = 1e-3, cap: float = 0.2) -> float:
    """Linear scaling rule from the paper's (batch 1, lr 1e-3), capped at ``cap``.

    Adam moves each mask entry by about ``lr`` per step whatever the gradient's
    size, so with ``B`` times fewer steps per epoch the mask needs ``B`` times
    the step to travel as far in the same number of epochs.
    """
    return min(base * batch_size, cap)


@dataclass
class MaskResult:
    mask: torch.Tensor                 # the kept mask, centred layout, on the CPU
    kept: bool                         # whether any epoch met the accuracy criterion
    kept_epoch: int                    # epoch of the returned mask (0: the all-ones start)
    acc_unmasked: float                # on the mask-training split
    acc_masked: float                  # of the kept mask, on the mask-training split
    epochs: int
    steps: int
    seconds: float
    stopped: str                       # why training stopped
    history: list = field(default_factory=list)   # per epoch: sparsity, invariance, accuracy, kept
    config: dict = field(default_factory=dict)

    @property
    def sparsity(self) -> float:
        """mean(M) of the kept mask (1 = all frequencies fully kept)."""
        return float(self.mask.mean())


@torch.no_grad()
def _logits(model, x, mask=None, batch_size: int = 1000):
    return torch.cat([masked_logits(model, x[s:s + batch_size], mask).float()
                      for s in range(0, x.shape[0], batch_size)])


def mask_accuracy(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None,
                  batch_size: int = 1000) -> float:
    """Accuracy of ``model`` on ``images`` seen through ``mask`` (None: unmasked), batched."""
    model.eval()
    dev = next(model.parameters()).device
    correct = 0
    for s in range(0, images.shape[0], batch_size):
        x = images[s:s + batch_size].to(dev)
        m = None if mask is None else mask.to(dev)
        correct += (masked_logits(model, x, m).argmax(1) == labels[s:s + batch_size].to(dev)).sum().item()
    return correct / max(1, images.shape[0])


def _frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _invariance(model, x, y, ce_ref, mask):
    """Per-image exp((CE(masked) - CE(unmasked))^2) and the squared difference."""
    ce = F.cross_entropy(masked_logits(model, x, mask).float(), y, reduction="none")
    diff2 = (ce - ce_ref) ** 2
    return torch.exp(diff2), diff2


def _descend(opt, sched, loss: torch.Tensor, mask: torch.Tensor) -> None:
    """One optimiser and schedule step on ``loss``, then clamp the mask(s) to [0, 1]."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    with torch.no_grad():
        mask.clamp_(0.0, 1.0)


def train_mask(model, images: torch.Tensor, labels: torch.Tensor, cfg: MaskConfig | None = None,
               device=None, progress: str | None = None) -> MaskResult:
    """Learn one Fourier mask for a frozen ``model`` on ``images`` (pixel space, [0, 1]).

    Stopping rule (the reference code's, with our ``tol`` / ``patience``): after
    every epoch the masked accuracy on ``images`` is measured; if it is at least
    ``keep_ratio`` times the unmasked accuracy the mask is kept (it replaces
    the previously kept one). Training stops once the sparsity mean(M) of
    ``patience`` consecutive kept epochs changed by at most ``tol`` each, or
    after ``max_epochs``. If no epoch meets the criterion, the mask of the epoch
    with the highest masked accuracy is returned with ``kept=False`` (never the
    all-ones start). Everything stays on ``device``.
    """
    cfg = cfg or MaskConfig()
    device = device or next(model.parameters()).device
    model = _frozen(model.to(device))
    x_all, y_all = images.to(device), labels.to(device)
    n, c, h, w = x_all.shape
    torch.manual_seed(cfg.seed)
    gen = torch.Generator(device="cpu").manual_seed(cfg.seed)
    ce_ref = F.cross_entropy(_logits(model, x_all), y_all, reduction="none")
    acc0 = mask_accuracy(model, x_all, y_all, None)
    mask = torch.ones(1, c if cfg.per_channel else 1, h, w, device=device, requires_grad=True)
    opt = torch.optim.Adam([mask], lr=cfg.lr)
    per_epoch = math.ceil(n / cfg.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg.lr, total_steps=cfg.max_epochs * per_epoch,
                                                pct_start=cfg.pct_start)
    kept_mask, kept_epoch, kept_acc = mask.detach().clone(), 0, acc0
    best = None                       # (accuracy, epoch, mask) of the best epoch that missed the criterion
    history, count, steps, stopped = [], 0, 0, "max_epochs"
    start = time.time()
    prev_sparsity = 1.0
    for epoch in tqdm(range(1, cfg.max_epochs + 1), desc=progress, leave=False, disable=progress is None):
        order = torch.randperm(n, generator=gen).to(device)
        inv_sum = torch.zeros((), device=device)   # summed on the device: no host sync per batch
        for s in range(0, n, cfg.batch_size):
            idx = order[s:s + cfg.batch_size]
            inv, diff2 = _invariance(model, x_all[idx], y_all[idx], ce_ref[idx], mask)
            _descend(opt, sched, inv.mean() + cfg.lam * mask.mean(), mask)
            inv_sum += diff2.detach().sum()
            steps += 1
        inv_sum = inv_sum.item()
        m = mask.detach()
        acc = mask_accuracy(model, x_all, y_all, m)
        sparsity = float(m.mean())
        ok = acc >= cfg.keep_ratio * acc0
        history.append({"epoch": epoch, "sparsity": sparsity, "invariance": inv_sum / n,
                        "masked_accuracy": acc, "kept": ok, "support": float((m > 0).float().mean())})
        if ok:
            kept_mask, kept_epoch, kept_acc = m.clone(), epoch, acc
            count = count + 1 if abs(sparsity - prev_sparsity) <= cfg.tol else 0
        else:
            count = 0
            if best is None or acc > best[0]:
                best = (acc, epoch, m.clone())
        prev_sparsity = sparsity
        if count >= cfg.patience:
            stopped = "sparsity_converged"
            break
    kept = kept_epoch > 0
    if not kept and best is not None:
        # No epoch met the criterion: report the learned mask closest to it (flagged
        # kept=False) rather than the all-ones start, which would say nothing.
        kept_acc, kept_epoch, kept_mask = best
        stopped += "; criterion never met, best epoch's mask"
    return MaskResult(mask=kept_mask.cpu(), kept=kept, kept_epoch=kept_epoch,
                      acc_unmasked=acc0, acc_masked=kept_acc, epochs=len(history), steps=steps,
                      seconds=time.time() - start, stopped=stopped, history=history,
                      config=asdict(cfg))


def train_image_masks(model, images: torch.Tensor, targets: torch.Tensor, steps: int = 200,
                      lam: float = 0.07, lr: float = 0.2, pct_start: float = 0.1,
                      device=None, progress: str | None = None) -> dict:
    """One mask per image, all optimised at once as a (B, 1, H, W) stack.

    Each image has its own loss ``exp((CE_i(masked) - CE_i)^2) + lam * mean(M_i)``;
    the losses are summed, so every mask gets exactly its own gradient. The
    target is usually the network's prediction (as in the reference code).
    Returns ``{"masks": (B,1,H,W) cpu, "same_prediction": (B,) bool, "seconds": s}``.
    """
    device = device or next(model.parameters()).device
    model = _frozen(model.to(device))
    x, y = images.to(device), targets.to(device)
    b, _, h, w = x.shape
    with torch.no_grad():
        ce_ref = F.cross_entropy(masked_logits(model, x, None).float(), y, reduction="none")
        pred0 = masked_logits(model, x, None).argmax(1)
    masks = torch.ones(b, 1, h, w, device=device, requires_grad=True)
    opt = torch.optim.Adam([masks], lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps, pct_start=pct_start)
    start = time.time()
    for _ in tqdm(range(steps), desc=progress, leave=False, disable=progress is None):
        inv, _ = _invariance(model, x, y, ce_ref, masks)
        _descend(opt, sched, (inv + lam * masks.mean((1, 2, 3))).sum(), masks)
    with torch.no_grad():
        pred = masked_logits(model, x, masks.detach()).argmax(1)
    return {"masks": masks.detach().cpu(), "same_prediction": (pred == pred0).cpu(),
            "seconds": time.time() - start}


# ------------------------------------------------------- where a mask lives
def l2_normalise(mask: torch.Tensor) -> torch.Tensor:
    """Each (H, W) map divided by its L2 norm (the paper normalises before profiling)."""
    return mask / mask.flatten(-2).norm(dim=-1).clamp(min=1e-12)[..., None, None]


def _energy(mask: torch.Tensor) -> torch.Tensor:
    """Squared L2-normalised mask averaged over channels: (H, W) for one mask
    ((H, W), (C, H, W) or (1, C, H, W)), (B, H, W) for a stack (B, C, H, W)."""
    e = l2_normalise(mask.float()) ** 2
    if e.dim() == 4 and e.shape[0] == 1:
        e = e[0]                      # one mask: (1, C, H, W) -> (C, H, W)
    return e.mean(-3) if e.dim() >= 3 else e


def radial_energy(mask: torch.Tensor) -> torch.Tensor:
    """Mean energy of the L2-normalised mask per unit-width annulus (bin k: k <= r < k+1)."""
    return radial_profile(_energy(mask))


def radial_centroid(mask: torch.Tensor) -> torch.Tensor:
    """Energy-weighted mean frequency radius ``sum_f |f| * Mhat(f)^2`` (cycles / image).

    Lower = more low-frequency. The all-ones mask of a 32x32 image gives 12.2.
    """
    e = _energy(mask)
    r = frequency_radius(*e.shape[-2:], device=e.device)
    return (e * r).flatten(-2).sum(-1) / e.flatten(-2).sum(-1).clamp(min=1e-12)


def angular_energy(mask: torch.Tensor, n_bins: int = 8, r_min: float = 1.0, r_max: float = 16.0) -> torch.Tensor:
    """Mean energy of the L2-normalised mask per orientation wedge (``r_min <= r < r_max``).

    Wedge k is centred on angle k * pi / n_bins; 0 = horizontal frequencies
    (vertical stripes), pi/2 = vertical frequencies.
    """
    return angular_profile(_energy(mask), n_bins, r_min, r_max)


def anisotropy(profile: torch.Tensor) -> torch.Tensor:
    """Coefficient of variation (std / mean) over the last axis of an angular profile."""
    return profile.std(-1, unbiased=False) / profile.mean(-1).clamp(min=1e-12)


def isotropic_version(mask: torch.Tensor) -> torch.Tensor:
    """The mask with every frequency replaced by its annulus mean (no direction preference)."""
    e = mask.float()
    h, w = e.shape[-2:]
    idx = frequency_radius(h, w, e.device).floor().long()
    prof = radial_profile(e, int(idx.max()) + 1)
    return prof[..., idx]


def _wedge_members(h: int, w: int, n_bins: int, r_min: float, r_max: float):
    """Index lists of one frequency per +/- pair in each wedge (pairs counted once)."""
    rad = frequency_radius(h, w).flatten()
    ang = frequency_angle(h, w).flatten()
    fy = (torch.arange(h) - h // 2)[:, None].expand(h, w).flatten()
    fx = (torch.arange(w) - w // 2)[None, :].expand(h, w).flatten()
    half = (fy > 0) | ((fy == 0) & (fx > 0))
    width = math.pi / n_bins
    wedge = torch.floor(torch.remainder(ang + width / 2, math.pi) / width).long().clamp(max=n_bins - 1)
    keep = half & (rad >= r_min) & (rad < r_max)
    return [torch.nonzero(keep & (wedge == k)).flatten() for k in range(n_bins)]


def bootstrap_anisotropy(mask: torch.Tensor, n_boot: int = 1000, n_bins: int = 8, r_min: float = 1.0,
                         r_max: float = 16.0, seed: int = 0, level: float = 0.95) -> dict:
    """Anisotropy of a mask's angular energy profile with a bootstrap interval.

    The frequencies of each wedge (one per +/- pair) are resampled with
    replacement ``n_boot`` times; the interval is the percentile interval of
    the resampled anisotropies. Returns ``{"value", "low", "high", "boot"}``.
    """
    e = _energy(mask).reshape(-1, *mask.shape[-2:])[0].cpu().flatten()
    h, w = mask.shape[-2:]
    g = torch.Generator().manual_seed(seed)
    means, point = [], []
    for members in _wedge_members(h, w, n_bins, r_min, r_max):
        vals = e[members]
        point.append(vals.mean())
        draw = torch.randint(0, len(vals), (n_boot, len(vals)), generator=g)
        means.append(vals[draw].mean(1))
    boot = anisotropy(torch.stack(means, 1))
    a = (1 - level) / 2
    return {"value": float(anisotropy(torch.stack(point))), "low": float(boot.quantile(a)),
            "high": float(boot.quantile(1 - a)), "boot": boot}


def band_mass_ratio(mask: torch.Tensor, band: torch.Tensor) -> float:
    """Mean mask value inside ``band`` (a 0/1 centred map) over the mean outside."""
    m = mask.float().reshape(-1, *mask.shape[-2:]).mean(0)
    band = band.to(m.device).bool()
    return float(m[band].mean() / m[~band].mean().clamp(min=1e-6))


# ------------------------------------------------------ image similarity
def _gauss_window(size: int, sigma: float, channels: int, device, dtype):
    ax = torch.arange(size, dtype=dtype, device=device) - (size - 1) / 2
    g = torch.exp(-ax ** 2 / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).expand(channels, 1, size, size).contiguous()


def ssim(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0, window: int = 7,
         sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004) of two (N, C, H, W) batches, Gaussian window,
    valid region only, averaged over channels and positions. Returns (N,)."""
    if x.shape != y.shape:
        raise ValueError(f"ssim needs equal shapes, got {tuple(x.shape)} and {tuple(y.shape)}")
    c = x.shape[1]
    win = _gauss_window(window, sigma, c, x.device, x.dtype)
    f = lambda t: F.conv2d(t, win, groups=c)
    mx, my = f(x), f(y)
    vx, vy, cxy = f(x * x) - mx ** 2, f(y * y) - my ** 2, f(x * y) - mx * my
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx ** 2 + my ** 2 + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1)


def psnr(x: torch.Tensor, y: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Per-image PSNR in dB of two (N, C, H, W) batches."""
    mse = (x - y).pow(2).flatten(1).mean(1).clamp(min=1e-12)
    return 10 * torch.log10(data_range ** 2 / mse)


# -------------------------------------------------------------- linear probe
def linear_probe(features: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None,
                 folds: int = 5, weight_decay: float = 1e-2, steps: int = 100, seed: int = 0) -> float:
    """k-fold cross-validated accuracy of a multinomial logistic regression.

    Features are standardised with the training folds' statistics; each fold is
    fitted with full-batch L-BFGS and an L2 penalty.
    """
    x = features.float().flatten(1).cpu()
    y = labels.long().cpu()
    n = x.shape[0]
    if n < folds:
        raise ValueError(f"linear_probe needs at least {folds} samples, got {n}")
    n_classes = n_classes or int(y.max()) + 1
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    correct = 0
    for k in range(folds):
        test = order[k::folds]
        train = torch.cat([order[j::folds] for j in range(folds) if j != k])
        mu, sd = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
        xt, xv = (x[train] - mu) / sd, (x[test] - mu) / sd
        lin = torch.nn.Linear(x.shape[1], n_classes)
        torch.nn.init.zeros_(lin.weight), torch.nn.init.zeros_(lin.bias)
        opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(lin(xt), y[train]) + weight_decay * lin.weight.pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        with torch.no_grad():
            correct += (lin(xv).argmax(1) == y[test]).sum().item()
    return correct / n


# ------------------------------------------- generalisation through a mask
def _method_digest() -> str:
    """Hash of the source of the functions that define a mask run (not the whole module,
    so editing an analysis helper does not invalidate cached masks)."""
    import inspect
    parts = [apply_mask, masked_logits, pixel_transform, _invariance, _descend, train_mask, MaskConfig, MaskResult]
    return hashlib.sha256("".join(inspect.getsource(p) for p in parts).encode()).hexdigest()[:16]


def _mask_digest(mask: torch.Tensor | None) -> str:
    if mask is None:
        return "none"
    return hashlib.sha256(mask.detach().float().cpu().contiguous().numpy().tobytes()).hexdigest()[:16]


def train_through_mask(mask: torch.Tensor | None, profile: str, device="cpu", tag: str = "masked",
                       cache: bool = True, **overrides):
    """Train a fresh standard-recipe model on training images seen through ``mask``.

    ``mask`` is applied to the normalised image (the same operation the mask
    was learned with); ``None`` trains the unmasked baseline with the same
    budget. ``overrides`` change the recipe (e.g. ``epochs``, ``n_train``).
    The model is cached under ``data/models/<tag>-<profile>-<hash>.pt``, keyed
    by the mask's bytes, the config, the data variant and the code. Returns the
    model (eval mode) with ``model.record`` (config, seconds, cached flag).
    """
    from .io import atomic_torch_save, repo_root
    from .models import build_model
    from .profiles import recipe_config
    from .train import train_model
    from .zoo import cifar10_tensors, zoo_dir

    cfg = recipe_config("standard", profile, **overrides)
    train_x, train_y, variant = cifar10_tensors("train", "cpu")
    code = hashlib.sha256(_method_digest().encode())
    for name in ("models.py", "train.py", "data.py", "spectral.py"):
        code.update((repo_root() / "freqlib" / name).read_bytes())
    key = hashlib.sha256(json.dumps({"config": cfg.to_dict(), "mask": _mask_digest(mask),
                                     "variant": variant, "code": code.hexdigest()},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = zoo_dir() / f"{tag}-{profile}-{key}.pt"
    model = build_model(cfg.arch, cfg.widths)
    if cache and path.is_file():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            if ckpt.get("key") == key:
                model.load_state_dict(ckpt["state_dict"])
                model.record = dict(ckpt["record"], cached=True)
                return model.to(device).eval()
        except Exception:
            pass  # unreadable: retrain below and overwrite atomically
    torch.manual_seed(cfg.seed)
    transform = None if mask is None else pixel_transform(mask.to(device), model.normalize.to(device))
    info = train_model(model, train_x, train_y, cfg, device=device, desc=f"training through {tag}",
                       input_transform=transform)
    record = {"key": key, "config": cfg.to_dict(), "mask": _mask_digest(mask), "variant": variant,
              "train_seconds": info["train_seconds"], "steps": info["steps"]}
    if cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_torch_save({"key": key, "state_dict": state, "record": record}, path)
    model.record = dict(record, cached=False)
    return model.eval()


def describe_config(cfg: MaskConfig) -> dict:
    """The config as a flat dict (for tables)."""
    return copy.deepcopy(asdict(cfg))


# ------------------------------------------------------------ chapter helpers
def reliability_row(model, mask: torch.Tensor, images: torch.Tensor, labels: torch.Tensor) -> dict:
    """Test accuracy unmasked, through the mask and through its complement; mask statistics."""
    return {
        "unmasked": mask_accuracy(model, images, labels, None),
        "masked": mask_accuracy(model, images, labels, mask),
        "complement": mask_accuracy(model, images, labels, complement(mask)),
        "mean(M)": float(mask.mean()),
        "support": float(support(mask).mean()),
    }


def masked_pixels(model, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images as the network sees them through ``mask``, back in pixel space, clipped to [0, 1]."""
    with torch.no_grad():
        return pixel_transform(mask.to(images.device), model.normalize.to(images.device))(images).clamp(0, 1)


def cross_accuracy(models: dict, masks: dict, images: torch.Tensor, labels: torch.Tensor):
    """DataFrame: row = whose mask, column = which network; masked / clean accuracy."""
    import pandas as pd
    clean = {n: mask_accuracy(m, images, labels, None) for n, m in models.items()}
    rows = {}
    for owner, mask in masks.items():
        rows[owner] = {n: mask_accuracy(m, images, labels, mask) / max(clean[n], 1e-9)
                       for n, m in models.items()}
    return pd.DataFrame(rows).T


def plot_masks(masks: dict, title: str, cmap: str = "viridis"):
    """One panel per mask (centred layout, i.e. fftshifted), colour scale 0..1."""
    import matplotlib.pyplot as plt
    n = len(masks)
    fig, axes = plt.subplots(1, n, figsize=(2.6 * n, 2.9), squeeze=False)
    for ax, (name, m) in zip(axes[0], masks.items()):
        img = m.float().reshape(-1, *m.shape[-2:]).mean(0).cpu().numpy()
        h, w = img.shape
        im = ax.imshow(img, cmap=cmap, vmin=0, vmax=1,
                       extent=(-w // 2 - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -h // 2 - 0.5))
        ax.set_title(f"{name}\nmean {img.mean():.2f}", fontsize=9)
        ax.set_xticks([-16, 0, 15]), ax.set_yticks([-16, 0, 15])
    fig.colorbar(im, ax=axes[0, -1], shrink=0.8)
    fig.suptitle(title, fontsize=10)
    return fig


def train_mask_cached(model, images: torch.Tensor, labels: torch.Tensor, cfg: MaskConfig, tag: str,
                      device=None, progress: str | None = None) -> MaskResult:
    """:func:`train_mask`, cached under ``data/models/fmask-<tag>-<hash>.pt``.

    The key covers the network's zoo key (or its weights when it has none), the
    mask config, a digest of the training images and labels, and this module's
    code, so a change to any of them trains again.
    """
    from .io import atomic_torch_save
    from .zoo import zoo_dir
    rec = getattr(model, "record", {}) or {}
    net = rec.get("key") or hashlib.sha256(b"".join(
        v.detach().cpu().numpy().tobytes() for v in model.state_dict().values())).hexdigest()[:16]
    data = hashlib.sha256(images.detach().cpu().numpy().tobytes() + labels.cpu().numpy().tobytes()).hexdigest()[:16]
    code = _method_digest()
    key = hashlib.sha256(json.dumps({"net": net, "cfg": asdict(cfg), "data": data, "code": code},
                                    sort_keys=True).encode()).hexdigest()[:16]
    path = zoo_dir() / f"fmask-{tag}-{key}.pt"
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
            if saved.get("key") == key:
                return MaskResult(**saved["result"])
        except Exception:
            pass  # unreadable: train again and overwrite atomically
    result = train_mask(model, images, labels, cfg, device, progress)
    atomic_torch_save({"key": key, "result": asdict(result)}, path)
    return result


def permutation_anisotropy(mask: torch.Tensor, n_perm: int = 1000, n_bins: int = 8, r_min: float = 1.0,
                           r_max: float = 16.0, seed: int = 0) -> torch.Tensor:
    """Null distribution of the anisotropy: the mask's values shuffled among the
    frequencies of each unit annulus (one per +/- pair), which keeps its radial
    profile and the grid's discretisation but removes any preferred direction.
    Returns ``n_perm`` anisotropies; compare the observed one with a high quantile."""
    e = _energy(mask).reshape(-1, *mask.shape[-2:])[0].cpu().flatten()
    h, w = mask.shape[-2:]
    members = _wedge_members(h, w, n_bins, r_min, r_max)
    idx = torch.cat(members)
    wedge = torch.cat([torch.full((len(m),), k) for k, m in enumerate(members)])
    ring = frequency_radius(h, w).flatten()[idx].floor().long()
    g = torch.Generator().manual_seed(seed)
    vals = e[idx].expand(n_perm, -1).clone()
    for r in ring.unique():                      # shuffle within each annulus, all permutations at once
        pos = torch.nonzero(ring == r).flatten()
        perm = torch.argsort(torch.rand(n_perm, len(pos), generator=g), dim=1)
        vals[:, pos] = vals[:, pos].gather(1, perm)
    sums = torch.zeros(n_perm, n_bins).index_add_(1, wedge, vals)
    counts = torch.bincount(wedge, minlength=n_bins).float()
    return anisotropy(sums / counts)
