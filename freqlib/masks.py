"""Fourier masks (Paper C: Karantzas et al. 2022, "Understanding robustness and
generalization of artificial neural networks through Fourier masks").

A *Fourier mask* ``M`` is a real array over the centred spectrum, values in
[0, 1]. A frozen network sees the image through it:
``body(real(F^-1(M * F normalize(x))))``. The mask is learned so that the
network's loss does not change while the mask shrinks:

    loss = exp((CE(f(masked x), y) - CE(f(x), y))^2) + lam * ||M||_1 / ||1||_1

exactly as the reference code (nkarantzas/FourierMasks, ``train_masks.py``)
writes it: ``torch.norm(M, p=1)`` times ``lam`` divided by the all-ones norm.
The L1 norm has a zero subgradient at 0, so an entry the clamp has put at 0 is
not pushed by the regulariser any more (only the invariance term can move it).
Adam, one-cycle schedule, the mask clamped to [0, 1] after every step,
network in eval mode (frozen batch norm).

Reference conventions kept here (each has a test in tests/test_masks.py)
------------------------------------------------------------------------
* A mask is *kept* only from epoch 2 on, when its accuracy on the
  mask-training images is at least ``keep_ratio`` (0.99) times the unmasked one.
* Convergence is judged on the epoch mean of the pre-step L1 sparsity (what the
  reference logs); a kept epoch whose sparsity moved by at most ``tol`` counts
  one towards ``patience``, a kept epoch that moved more resets the count, and
  an epoch that is not kept leaves the count alone.
* Accuracy is measured in-sample, on the images the mask is trained on.
* Per-image masks (``train_single_img_masks.py``): lam 0.07, nominal lr 0.2,
  but the one-cycle schedule is built for 200 times the step budget, so only
  the first 5% of its warm-up is ever used: the *effective* lr rises from
  lr/25 = 0.008 to about 0.0092 over 20,000 steps. A mask stops when its
  prediction is unchanged and, for ``patience`` (300) steps in a row, its
  invariance moved by at most 1e-6 and its sparsity by at most 1e-5; a step
  that changed the prediction leaves the count alone.

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
* Every evaluation goes through :mod:`freqlib.evaluate` with a batched
  :func:`pixel_transform`; mask training keeps everything on the device and
  synchronises with the host once per epoch.
* Masks of several networks that share a schedule train in one loop
  (:func:`train_masks`; on CUDA one vmapped forward pass for all of them): each
  is the mask it would be alone. A step on 16 images is launch-bound on a GPU,
  so eight masks together should cost little more than one
  (``bench/bench_paper.py --only masks`` measures the ratio).

Where a mask's energy lies (radial centroid, anisotropy, with their intervals) is in
:mod:`freqlib.mask_geometry`; C3's linear probe in :mod:`freqlib.probe`; SSIM and PSNR in
:mod:`freqlib.similarity`.
"""
from __future__ import annotations

import copy
import hashlib
import math
import time
from dataclasses import asdict, dataclass, field

import torch
import torch.nn.functional as F
from tqdm import tqdm

from . import evaluate
from .deadline import check_deadline
from .results import cached, cached_many, digest, net_digest, parts_digest
from .spectral import centred_dft, frequency_radius, inverse_centred_dft
from .verdicts import Claim, Criterion, Estimate, bootstrap

__all__ = [
    "apply_mask", "masked_logits", "pixel_transform", "symmetrize", "complement", "mirror_orbits", "support",
    "matched_random_masks", "annulus_shuffled_masks", "equal_support", "l1_penalty", "MaskConfig", "MaskResult",
    "keep_and_count", "image_stop_update", "train_mask", "train_image_masks", "mask_correct", "mask_accuracy",
    "reliability", "reliability_estimates", "generalisation_estimates", "at_chance", "unless_at_chance",
    "train_through_mask", "scaled_lr", "train_masks", "train_mask_cached", "train_masks_cached",
    "train_image_masks_cached", "cross_accuracy", "masked_pixels", "plot_masks", "generalisation_masks",
    "generalisation_sample", "IMAGE_MASK_DEFAULTS", "paper_claims", "DATASET_MASKS", "dataset_mask_config",
    "dataset_mask_tag",
]

# Chapter 3's dataset-mask settings per profile. Chapters 4 and 5 train their masks with these, on
# the same held-out images (the last ``n_mask`` test images) and under the same cache tags, so the
# three chapters read one cached mask per network. lr None: linear scaling from (batch 1, lr 1e-3).
DATASET_MASKS = {
    "smoke": dict(n_mask=512, batch=64, lr=0.016, max_epochs=4, tol=5e-3, keep_ratio=0.9, patience=1),
    "quick": dict(n_mask=2000, batch=64, lr=None, max_epochs=8, tol=2e-3, keep_ratio=0.99, patience=2),
    "paper": dict(n_mask=5000, batch=16, lr=None, max_epochs=100, tol=1e-5, keep_ratio=0.99, patience=7),
}

# The reference's per-image mask settings (flags.py: single_img_mask_*).
IMAGE_MASK_DEFAULTS = dict(steps=20_000, lam=0.07, lr=0.2, pct_start=0.1, schedule_steps=20_000 * 200,
                           patience=300, tol_invariance=1e-6, tol_sparsity=1e-5)


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
    ``mask`` applied to the *normalised* image (``None``: no mask). With gradients: the
    training forward pass; evaluation goes through :func:`mask_correct`."""
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


def mirror_orbits(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(representative, self_mirrored) per centred frequency (flattened): the smaller flat
    index of {f, -f}, and whether f == -f (DC and the Nyquist corners of even sizes)."""
    idx = torch.arange(h * w).view(h, w)
    mirror = idx.index_select(0, _mirror_index(h)).index_select(1, _mirror_index(w))
    return torch.minimum(idx, mirror).flatten(), (mirror == idx).flatten()


def matched_random_masks(mask: torch.Tensor, k: int, seed: int = 0, by_annulus: bool = False) -> torch.Tensor:
    """``k`` random masks matched to ``mask``: its (symmetrised) values, put at random frequencies.

    The values of the ``{f, -f}`` pairs are permuted among the pairs (and the
    few self-mirrored frequencies among themselves), independently per draw
    and per channel. Each draw is therefore Hermitian-symmetric like a learned
    mask and has exactly its value distribution, its mean and its support size;
    only *where* the values sit is random. This is the same-budget null of a
    learned mask (and ``complement`` of a draw, of its complement). Returns
    ``(k, C, H, W)`` on the mask's device.

    ``by_annulus=True`` permutes only within each unit annulus (``k <= |f| < k+1``),
    the shuffle of C2's anisotropy null applied to the mask itself: each draw
    also keeps the mask's values per annulus, hence its radial profile, and
    only the direction is random (:func:`annulus_shuffled_masks`).
    """
    if k < 1:
        raise ValueError(f"k={k}: ask for at least one random mask")
    h, w = mask.shape[-2:]
    m = symmetrize(mask.detach().float()).reshape(-1, h * w).cpu()        # (C, HW)
    rep, single = mirror_orbits(h, w)
    reps = rep.unique()
    g = torch.Generator().manual_seed(seed)
    values = torch.empty(k, m.shape[0], h * w)
    groups = (reps[single[reps]], reps[~single[reps]])
    if by_annulus:
        ring = frequency_radius(h, w).flatten().floor().long()
        groups = tuple(gr[ring[gr] == r] for gr in groups for r in ring[gr].unique())
    for group in groups:
        perm = torch.argsort(torch.rand(k, m.shape[0], len(group), generator=g), dim=-1)
        values[..., group] = m[:, group].expand(k, -1, -1).gather(-1, perm)
    return values[..., rep].view(k, m.shape[0], h, w).to(mask.device)


def annulus_shuffled_masks(mask: torch.Tensor, k: int, seed: int = 0) -> torch.Tensor:
    """``k`` masks with ``mask``'s values shuffled within each unit annulus: the same
    budget *and* the same radial profile, only the direction random. The null of
    "this network's essential frequencies" against "any mask of this radial shape"
    (a low-pass mask beats values scattered over all radii just because image
    energy falls off with frequency)."""
    return matched_random_masks(mask, k, seed, by_annulus=True)


def equal_support(mask: torch.Tensor, like: torch.Tensor, seed: int = 0) -> torch.Tensor:
    """``mask`` (symmetrised) cut to as many frequencies as ``like`` keeps (``like > 0``):
    its largest values stay, the rest become 0.

    Whole ``{f, -f}`` pairs are kept or dropped (largest values first, ties in a
    seeded random order), until the next pair would exceed ``like``'s support
    size, per channel. Used to compare radial centroids of masks of different
    sparsity at the same support: a sparser mask that keeps the lowest
    frequencies has a lower centroid whatever the network.
    """
    h, w = mask.shape[-2:]
    m = symmetrize(mask.detach().float()).reshape(-1, h * w).cpu()
    n = (symmetrize(like.detach().float()).reshape(-1, h * w).cpu() > 0).sum(1)
    if len(n) != m.shape[0]:
        n = n.max().expand(m.shape[0])
    rep, single = mirror_orbits(h, w)
    reps = rep.unique()
    size = torch.where(single[reps], 1, 2)
    g = torch.Generator().manual_seed(seed)
    keep = torch.zeros_like(m)
    for c in range(m.shape[0]):
        shuffle = torch.randperm(len(reps), generator=g)              # random order among ties
        order = shuffle[torch.argsort(m[c, reps[shuffle]], descending=True, stable=True)]
        chosen = reps[order][size[order].cumsum(0) <= n[c]]
        keep[c, chosen] = 1.0
        keep[c] = keep[c, rep]                                         # both members of a kept pair
    return (m * keep).view(*mask.shape[:-2], h, w).to(mask.device) if mask.dim() > 2 else (m * keep).view(h, w)


def l1_penalty(mask: torch.Tensor) -> torch.Tensor:
    """``||M||_1 / ||1||_1`` per leading index: (B,) for a (B, C, H, W) stack.

    Written with ``abs`` as the reference's ``torch.norm(p=1)``: its gradient is
    ``sign(M) / size``, which is 0 for an entry at exactly 0 (the clamp's floor).
    """
    return mask.abs().flatten(1).mean(1)


# ------------------------------------------------------------ mask training
@dataclass
class MaskConfig:
    """Hyper-parameters of one (dataset-level) mask; the defaults are the reference code's."""
    lam: float = 0.2              # weight of ||M||_1 / ||1||_1
    lr: float = 1e-3              # Adam peak learning rate (one-cycle)
    batch_size: int = 1           # the paper used 1; see scaled_lr for larger batches
    max_epochs: int = 100
    pct_start: float = 0.1        # share of the one-cycle schedule spent rising
    keep_ratio: float = 0.99      # keep a mask (epoch >= 2) if masked acc >= keep_ratio * unmasked acc
    tol: float = 1e-5             # |change of the epoch-mean sparsity| that counts as "not changing"
    patience: int = 7             # stop after this many kept, unchanged epochs (failed epochs do not reset)
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
    kept: bool                         # whether any epoch (>= 2) met the accuracy criterion
    kept_epoch: int                    # epoch of the returned mask
    acc_unmasked: float                # on the mask-training split (in-sample, as the reference)
    acc_masked: float                  # of the returned mask, on the mask-training split
    epochs: int
    steps: int
    seconds: float
    stopped: str                       # why training stopped
    history: list = field(default_factory=list)   # per epoch: sparsity, invariance, accuracy, kept, count
    config: dict = field(default_factory=dict)
    correct_unmasked: torch.Tensor | None = None  # (n,) 0/1 per mask-training image, unmasked
    correct_masked: torch.Tensor | None = None    # (n,) 0/1 per mask-training image, through the mask
    joint: int = 1                     # masks trained in one loop (train_masks); seconds: until this one stopped

    @property
    def sparsity(self) -> float:
        """mean(M) of the returned mask (1 = all frequencies fully kept)."""
        return float(self.mask.mean())


def mask_correct(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None,
                 **kw) -> torch.Tensor:
    """Per-image 0/1 (CPU) of ``model`` on ``images`` seen through ``mask`` (None: unmasked),
    through :func:`freqlib.evaluate.correct` with a batched :func:`pixel_transform`."""
    transform = None if mask is None else pixel_transform(mask, model.normalize)
    return evaluate.correct(model, images, labels, transform=transform, **kw)


def mask_accuracy(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor | None,
                  **kw) -> float:
    """Accuracy of ``model`` on ``images`` seen through ``mask`` (None: unmasked)."""
    return float(mask_correct(model, images, labels, mask, **kw).mean())


def _frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _reference_ce(model, x, y) -> torch.Tensor:
    """Per-image CE of the unmasked network in fp32 (the invariance compares with it)."""
    return F.cross_entropy(evaluate.logits(model, x, precise=True), y, reduction="none")


def _descend(opt, sched, loss: torch.Tensor, mask: torch.Tensor) -> None:
    """One optimiser and schedule step on ``loss``, then clamp the mask(s) to [0, 1]."""
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()
    sched.step()
    with torch.no_grad():
        mask.clamp_(0.0, 1.0)


def keep_and_count(epoch: int, acc: float, acc0: float, sparsity: float, prev: float | None, count: int,
                   cfg: MaskConfig) -> tuple[bool, int]:
    """The reference's rule after one epoch: (is the mask kept, the new patience count).

    Kept only from epoch 2 on and only if ``acc >= keep_ratio * acc0``; a kept
    epoch adds one to the count if the epoch-mean sparsity moved by at most
    ``tol`` since the previous epoch, and resets it otherwise; an epoch that is
    not kept leaves the count alone.
    """
    ok = epoch >= 2 and acc >= cfg.keep_ratio * acc0
    if ok:
        count = count + 1 if abs(sparsity - prev) <= cfg.tol else 0
    return ok, count


def image_stop_update(count: torch.Tensor, done: torch.Tensor, same: torch.Tensor, still: torch.Tensor,
                      patience: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The reference's per-image rule after one step, for a stack of masks: (count, newly done).

    A mask whose prediction is unchanged (``same``) adds one to its count if its
    invariance and sparsity did not move (``still``) and resets it otherwise; a
    step that changed the prediction leaves the count alone. Masks already
    ``done`` are frozen.
    """
    active = ~done & same
    count = torch.where(active, torch.where(still, count + 1, torch.zeros_like(count)), count)
    return count, ~done & (count >= patience)


# Fields a joint run shares: they fix the batches per epoch and the learning-rate schedule.
_SCHEDULE = ("batch_size", "max_epochs", "lr", "pct_start", "per_channel")


def _architecture(model) -> tuple:
    """What must agree for networks to share one vmapped forward pass: class, modules, tensors."""
    return (type(model.body), repr(model.body)) + tuple((k, tuple(v.shape), v.dtype)
                                                       for k, v in model.body.state_dict().items())


class _Bodies:
    """The frozen bodies of K networks as one forward pass over a (K, B, C, H, W) stack.

    ``vmapped``: one call over their stacked weights (``torch.func.vmap``), for
    networks of one architecture. A mask step on a few images is launch-bound on
    a GPU, so K networks in one set of kernels should cost little more than one; on a
    CPU the loop is faster than the grouped convolutions vmap turns into
    (bench/bench_paper.py, section masks).
    """

    def __init__(self, models: list, vmapped: bool):
        self.models = models
        self.mean = torch.stack([m.normalize.mean for m in models])     # (K, 1, C, 1, 1)
        self.std = torch.stack([m.normalize.std for m in models])
        self.vmapped = vmapped and len(models) > 1 and len({_architecture(m) for m in models}) == 1
        if self.vmapped:
            from torch.func import stack_module_state
            params, buffers = stack_module_state([m.body for m in models])
            self.params = {k: v.detach() for k, v in params.items()}
            self.buffers = buffers
            self.base = copy.deepcopy(models[0].body).to("meta")
            self.base.compilable = False      # FREQLIB_COMPILE's torch.compile is not for vmapped calls
        self.select(torch.arange(len(models), device=self.mean.device))

    def select(self, active: torch.Tensor) -> None:
        """Run only the networks ``active`` (indices) from now on."""
        self.active, self.active_list = active, active.tolist()   # the list: no device sync per step
        self.mean_a, self.std_a = self.mean[active], self.std[active]
        if self.vmapped:
            self.params_a = {k: v[active] for k, v in self.params.items()}
            self.buffers_a = {k: v[active] for k, v in self.buffers.items()}

    def logits(self, x: torch.Tensor, masks: torch.Tensor) -> torch.Tensor:
        """(K', B, classes) for pixel images ``x`` (K', B, C, H, W), network k seeing ``x[k]``
        through ``masks[k]`` (the training forward pass of :func:`masked_logits`)."""
        z = apply_mask((x - self.mean_a) / self.std_a, masks)
        if self.vmapped:
            from torch.func import functional_call, vmap
            return vmap(lambda p, b, zk: functional_call(self.base, (p, b), (zk,)))(self.params_a, self.buffers_a, z)
        return torch.stack([self.models[k].body(zk) for k, zk in zip(self.active_list, z)])


def train_masks(models: list, images: torch.Tensor, labels: torch.Tensor, cfgs: list[MaskConfig],
                device=None, progress: str | None = None, vmapped: bool | None = None) -> list[MaskResult]:
    """Learn one Fourier mask per (frozen network, config) on the same ``images``,
    all in one loop; mask ``k`` follows exactly the run it would have alone.

    The losses are summed, so each mask gets its own gradient; Adam's state is
    per entry, so stacking the masks into one (K, 1, C, H, W) parameter changes
    nothing; each mask draws its batches from its own ``cfg.seed``. The configs
    must share ``batch_size``, ``max_epochs``, ``lr``, ``pct_start`` and
    ``per_channel`` (the steps per epoch and the learning rate of every step);
    ``lam``, ``keep_ratio``, ``tol``, ``patience`` and ``seed`` may differ. ``vmapped`` (default: on CUDA) runs networks of one architecture as
    one ``torch.func.vmap`` call over their stacked weights; elsewhere a loop runs them.

    Stopping rule (the reference code's; ``tol`` / ``patience`` from ``cfg``):
    after every epoch the masked accuracy on ``images`` is measured. From epoch
    2 on, a mask whose accuracy is at least ``keep_ratio`` times the unmasked
    accuracy is *kept* (it replaces the previously kept one); then the count
    grows by one if the epoch-mean sparsity moved by at most ``tol`` since the
    previous epoch and is reset to 0 otherwise. An epoch that is not kept
    leaves the count as it is. A mask stops when its count reaches
    ``patience`` (the others go on without it), or after ``max_epochs``. If no
    epoch is kept, the mask of the epoch with the highest masked accuracy is
    returned with ``kept=False`` (the reference would have saved no mask at
    all). Everything stays on ``device``; one host synchronisation per epoch.
    """
    models, cfgs = list(models), list(cfgs)
    if len(models) != len(cfgs) or not models:
        raise ValueError(f"train_masks needs one MaskConfig per network: got {len(models)} networks "
                         f"and {len(cfgs)} configs")
    for f in _SCHEDULE:
        if len({getattr(c, f) for c in cfgs}) > 1:
            raise ValueError(f"masks trained together must share {f} (they share one schedule); got "
                             f"{sorted({getattr(c, f) for c in cfgs})}: train them in separate calls")
    cfg0 = cfgs[0]
    device = device or evaluate.model_device(models[0])
    vmapped = torch.device(device).type == "cuda" if vmapped is None else vmapped
    models = [_frozen(m.to(device)) for m in models]
    x_all, y_all = images.to(device), labels.to(device)
    n, c, h, w = x_all.shape
    K = len(models)
    torch.manual_seed(cfg0.seed)
    gens = {s: torch.Generator(device="cpu").manual_seed(s) for s in {cfg.seed for cfg in cfgs}}
    ce_ref = torch.stack([_reference_ce(m, x_all, y_all) for m in models])          # (K, n)
    correct0 = [mask_correct(m, x_all, y_all, None) for m in models]
    acc0 = [float(v.mean()) for v in correct0]
    lam = torch.tensor([cfg.lam for cfg in cfgs], device=device)
    mask = torch.ones(K, 1, c if cfg0.per_channel else 1, h, w, device=device, requires_grad=True)
    opt = torch.optim.Adam([mask], lr=cfg0.lr)
    per_epoch = math.ceil(n / cfg0.batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, cfg0.lr, total_steps=cfg0.max_epochs * per_epoch,
                                                pct_start=cfg0.pct_start)
    bodies = _Bodies(models, vmapped)
    kept = [None] * K                 # (epoch, mask, per-image correct) of the last kept epoch
    best = [None] * K                 # the same for the most accurate epoch (used if none is kept)
    history, count, prev = [[] for _ in range(K)], [0] * K, [None] * K
    stopped, seconds = ["max_epochs"] * K, [0.0] * K
    active = list(range(K))
    start = time.time()
    for epoch in tqdm(range(1, cfg0.max_epochs + 1), desc=progress, leave=False, disable=progress is None):
        by_seed = {s: torch.randperm(n, generator=g) for s, g in gens.items()}
        order = torch.stack([by_seed[cfgs[k].seed] for k in active]).to(device)     # (K', n)
        act = bodies.active
        inv_sum = torch.zeros(K, device=device)   # summed on the device: no host sync per batch
        l1_sum = torch.zeros(K, device=device)
        for s in range(0, n, cfg0.batch_size):
            idx = order[:, s:s + cfg0.batch_size]                                     # (K', B)
            m_act = mask if len(active) == K else mask[act]
            logits = bodies.logits(x_all[idx], m_act)
            ce = F.cross_entropy(logits.flatten(0, 1).float(), y_all[idx].flatten(), reduction="none")
            diff2 = (ce.view(idx.shape) - ce_ref[act[:, None], idx]) ** 2
            l1 = l1_penalty(m_act)                # before the step, as the reference logs it
            _descend(opt, sched, (torch.exp(diff2).mean(1) + lam[act] * l1).sum(), mask)
            inv_sum.index_add_(0, act, diff2.detach().sum(1))
            l1_sum.index_add_(0, act, l1.detach())
        sparsities = (l1_sum / per_epoch).tolist()   # epoch mean of ||M||_1 / ||1||_1 (reference's log)
        inv_means = (inv_sum / n).tolist()
        for k in list(active):
            m = mask[k].detach().clone()
            correct = mask_correct(models[k], x_all, y_all, m)
            acc = float(correct.mean())
            ok, count[k] = keep_and_count(epoch, acc, acc0[k], sparsities[k], prev[k], count[k], cfgs[k])
            if ok:
                kept[k] = (epoch, m, correct)
            if best[k] is None or acc > best[k][0]:
                best[k] = (acc, epoch, m, correct)
            prev[k] = sparsities[k]
            history[k].append({"epoch": epoch, "sparsity": sparsities[k], "mean(M)": float(m.mean()),
                               "invariance": inv_means[k], "masked_accuracy": acc, "kept": ok,
                               "count": count[k], "support": float((m > 0).float().mean())})
            seconds[k] = time.time() - start
            if count[k] >= cfgs[k].patience:
                stopped[k] = "sparsity_converged"
                active.remove(k)
        if not active:
            break
        if len(active) < len(bodies.active):
            bodies.select(torch.tensor(active, device=device))
    results = []
    for k in range(K):
        if kept[k] is None:
            # No epoch met the criterion: report the learned mask closest to it (flagged
            # kept=False) rather than the all-ones start, which would say nothing.
            _, epoch_r, mask_r, correct_r = best[k]
            stopped[k] += "; criterion never met, best epoch's mask"
        else:
            epoch_r, mask_r, correct_r = kept[k]
        results.append(MaskResult(
            mask=mask_r.cpu(), kept=kept[k] is not None, kept_epoch=epoch_r, acc_unmasked=acc0[k],
            acc_masked=float(correct_r.mean()), epochs=len(history[k]), steps=len(history[k]) * per_epoch,
            seconds=seconds[k], stopped=stopped[k], history=history[k], config=asdict(cfgs[k]),
            correct_unmasked=correct0[k].to(torch.uint8), correct_masked=correct_r.to(torch.uint8), joint=K))
    return results


def train_mask(model, images: torch.Tensor, labels: torch.Tensor, cfg: MaskConfig | None = None,
               device=None, progress: str | None = None) -> MaskResult:
    """Learn one Fourier mask for a frozen ``model`` on ``images`` (pixel space, [0, 1]):
    :func:`train_masks` with one network (its docstring gives the stopping rule)."""
    return train_masks([model], images, labels, [cfg or MaskConfig()], device, progress)[0]


def train_image_masks(model, images: torch.Tensor, targets: torch.Tensor, steps: int = 20_000,
                      lam: float = 0.07, lr: float = 0.2, pct_start: float = 0.1, schedule_steps: int = 20_000 * 200,
                      patience: int = 300, tol_invariance: float = 1e-6, tol_sparsity: float = 1e-5,
                      check_every: int = 100, device=None, progress: str | None = None) -> dict:
    """One mask per image, all optimised at once as a (B, 1, H, W) stack, with the
    reference's schedule and stopping rule (module docstring; defaults are its flags).

    Each image has its own loss ``exp((CE_i(masked) - CE_i)^2) + lam * ||M_i||_1 / ||1||_1``;
    the losses are summed, so every mask gets exactly its own gradient (Adam's
    state is per entry, so the masks are independent). The target is usually
    the network's prediction (as in the reference code). The one-cycle schedule
    is built for ``schedule_steps`` steps, the reference's 20,000 "epochs" of
    200 steps each (it takes one step per epoch), whatever budget ``steps`` is
    used here: step ``t`` has exactly the reference's learning rate. A mask that meets the
    stopping rule is frozen at that step; the others run to ``steps``. The
    prediction of step ``t`` is read off the forward pass of step ``t + 1``
    (same mask), so the rule costs no extra forward pass; the host is
    synchronised every ``check_every`` steps only, to stop once all are done.
    Returns ``{"masks": (B,1,H,W) cpu, "same_prediction": (B,) bool, "stopped": (B,) bool,
    "stop_step": (B,) int, "lr": (first, last), "seconds": s}``.
    """
    device = device or evaluate.model_device(model)
    model = _frozen(model.to(device))
    x, y = images.to(device), targets.to(device)
    b, _, h, w = x.shape
    logits0 = evaluate.logits(model, x, precise=True)
    ce_ref = F.cross_entropy(logits0, y, reduction="none")
    pred0 = logits0.argmax(1)
    masks = torch.ones(b, 1, h, w, device=device, requires_grad=True)
    opt = torch.optim.Adam([masks], lr=lr)
    if schedule_steps < steps:
        raise ValueError(f"schedule_steps={schedule_steps} is shorter than the step budget steps={steps}")
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=schedule_steps, pct_start=pct_start)
    first_lr = sched.get_last_lr()[0]
    final, final_pred = masks.detach().clone(), pred0.clone()
    done = torch.zeros(b, dtype=torch.bool, device=device)
    count = torch.zeros(b, dtype=torch.long, device=device)
    stop_step = torch.full((b,), steps, dtype=torch.long, device=device)
    logs = []                                   # (invariance, sparsity) of the last two steps
    start = time.time()
    for t in tqdm(range(1, steps + 1), desc=progress, leave=False, disable=progress is None):
        logits = masked_logits(model, x, masks)   # the mask after step t - 1
        diff2 = (F.cross_entropy(logits.float(), y, reduction="none") - ce_ref) ** 2
        l1 = l1_penalty(masks)
        if t >= 3:                                 # judge step j = t - 1 >= 2 (the reference's epoch > 1)
            (inv_a, sp_a), (inv_b, sp_b) = logs    # steps j - 1 and j
            pred = logits.detach().argmax(1)
            still = ((inv_b - inv_a).abs() <= tol_invariance) & ((sp_b - sp_a).abs() <= tol_sparsity)
            count, newly = image_stop_update(count, done, pred == pred0, still, patience)
            final = torch.where(newly[:, None, None, None], masks.detach(), final)
            final_pred = torch.where(newly, pred, final_pred)
            stop_step = torch.where(newly, t - 1, stop_step)
            done |= newly
        _descend(opt, sched, (torch.exp(diff2) + lam * l1).sum(), masks)
        logs = (logs[-1:] + [(diff2.detach(), l1.detach())])
        if t % check_every == 0 and bool(done.all()):
            break
    last_lr = sched.get_last_lr()[0]
    with torch.no_grad():
        pred = evaluate.predict(model, x, transform=pixel_transform(masks.detach(), model.normalize))
    final = torch.where(done[:, None, None, None], final, masks.detach())
    final_pred = torch.where(done, final_pred, pred)
    return {"masks": final.cpu(), "same_prediction": (final_pred == pred0).cpu(), "stopped": done.cpu(),
            "stop_step": stop_step.cpu(), "lr": (first_lr, last_lr), "seconds": time.time() - start}


# ------------------------------------------------- reliability of a mask
def reliability(model, mask: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                n_random: int = 8, seed: int = 0) -> dict:
    """Per-image 0/1 of ``model`` unmasked, through ``mask``, through its complement, and
    through ``n_random`` :func:`matched_random_masks` and their complements, and through
    ``n_random`` :func:`annulus_shuffled_masks` (same radial profile) and their complements.

    Returns ``{"unmasked", "masked", "complement": (n,), "random", "random_complement",
    "radial", "radial_complement": (n, k)}`` (CPU), the paired samples of
    :func:`reliability_estimates`.
    """
    out = {"unmasked": mask_correct(model, images, labels, None),
           "masked": mask_correct(model, images, labels, mask),
           "complement": mask_correct(model, images, labels, complement(symmetrize(mask)))}
    for key, by_annulus in (("random", False), ("radial", True)):
        rand = matched_random_masks(mask, n_random, seed, by_annulus=by_annulus)
        out[key] = torch.stack([mask_correct(model, images, labels, r[None]) for r in rand], 1)
        out[f"{key}_complement"] = torch.stack([mask_correct(model, images, labels, complement(r[None]))
                                                for r in rand], 1)
    return out


def _pick_columns(k: int, n_boot: int, seed: int):
    """A statistic helper: mean over ``k`` columns, resampled with replacement per bootstrap
    replicate (the random masks are a sample too); the plain mean for the point value."""
    idx = torch.randint(0, k, (n_boot, k), generator=torch.Generator().manual_seed(seed + 1))

    def mean_of(values: torch.Tensor) -> torch.Tensor:
        if values.shape[0] != n_boot:
            return values.mean(1)
        return values.gather(1, idx.to(values.device)).mean(1)
    return mean_of


def _pick_one(k: int, n_boot: int, seed: int):
    """A statistic helper for a *single* null draw: each bootstrap replicate takes one of the
    ``k`` columns at random (the mean over them for the point value). A difference to it
    has an interval that covers how much the null draws differ from each other, so a mask
    that is itself a draw from the null holds only when it beats (nearly) every one of the
    ``k`` draws, with probability about 1 / (k + 1); a difference to the *mean* of the
    draws would let it hold far more often (its interval ignores the spread between draws)."""
    idx = torch.randint(0, k, (n_boot, 1), generator=torch.Generator().manual_seed(seed + 2))

    def one_of(values: torch.Tensor) -> torch.Tensor:
        if values.shape[0] != n_boot:
            return values.mean(1)
        return values.gather(1, idx.to(values.device))[:, 0]
    return one_of


# A comparison of two accuracies has no power when both sit at chance: both upper interval ends
# at most chance + this margin (fixed before any number, the same 1.5 x chance as C3's leak check).
CHANCE, CHANCE_MARGIN = 0.1, 0.05


def at_chance(*sides: Estimate, chance: float = CHANCE, margin: float = CHANCE_MARGIN) -> bool:
    """Whether every accuracy in ``sides`` has its upper interval end at most ``chance + margin``."""
    return all(e.high <= chance + margin for e in sides)


def unless_at_chance(diff: Estimate, *sides: Estimate, chance: float = CHANCE,
                     margin: float = CHANCE_MARGIN) -> Estimate:
    """``diff`` (a difference of the accuracies ``sides``), or a nan estimate without power
    (:meth:`~freqlib.verdicts.Estimate.no_power`) when both sides are :func:`at_chance`: two
    complements that both leave the network at chance cannot say which hurts more (a zero-width
    interval at 0 there would read as "fails")."""
    return Estimate.no_power(diff) if at_chance(*sides, chance=chance, margin=margin) else diff


def reliability_estimates(sample: dict, n_boot: int = 2000, seed: int = 0, device=None) -> dict:
    """Estimates from one :func:`reliability` sample, all paired over the same images:

    ``unmasked``, ``masked``, ``complement`` accuracies; ``ratio`` = masked / unmasked;
    ``random`` / ``random_complement`` accuracies (mean over the random masks);
    ``vs_random`` = masked - random (> 0: the learned mask beats same-budget random masks);
    ``complement_vs_random`` = random complement - complement (> 0: the learned mask's
    complement hurts more than a random one's). Where ``sample`` has ``radial`` /
    ``radial_complement`` (annulus-shuffled masks), the same four for them: ``radial``,
    ``radial_complement`` (means over the draws), ``vs_radial`` and ``complement_vs_radial``:
    differences to *one* draw picked at random per replicate (``_pick_one``), so their
    intervals cover the spread between draws and a mask that is itself a draw of the null
    does not pass. Intervals involving random masks resample the images *and* the random
    masks (two-way bootstrap). ``complement_vs_radial`` is nan ("undecided") when the complement
    and the annulus-shuffled complements are both :func:`at_chance` (no power);
    ``complement_vs_radial_raw`` keeps the difference.
    """
    k = sample["random"].shape[1]
    cols = _pick_columns(k, n_boot, seed)
    kw = dict(n_boot=n_boot, seed=seed, device=device)
    two = dict(kw, over="images × random masks")
    keys = ("unmasked", "masked", "complement", "random", "random_complement", "radial", "radial_complement")
    s = {key: sample[key] for key in keys if key in sample}
    radial = {}
    if "radial" in s:
        one = _pick_one(s["radial"].shape[1], n_boot, seed)
        single = dict(kw, over="images × random masks")
        radial = {
            "radial": bootstrap(lambda m: cols(m["radial"]), s, **two),
            "radial_complement": bootstrap(lambda m: cols(m["radial_complement"]), s, **two),
            "vs_radial": bootstrap(lambda m: m["masked"] - one(m["radial"]), s, **single),
            "complement_vs_radial_raw": bootstrap(lambda m: one(m["radial_complement"]) - m["complement"], s,
                                                  **single),
        }
        radial["complement_vs_radial"] = unless_at_chance(radial["complement_vs_radial_raw"],
                                                          radial["radial_complement"],
                                                          bootstrap(lambda m: m["complement"], s, **kw))
    return {**radial,
        "unmasked": bootstrap(lambda m: m["unmasked"], s, **kw),
        "masked": bootstrap(lambda m: m["masked"], s, **kw),
        "complement": bootstrap(lambda m: m["complement"], s, **kw),
        "ratio": bootstrap(lambda m: m["masked"] / m["unmasked"].clamp(min=1e-9), s, **kw),
        "random": bootstrap(lambda m: cols(m["random"]), s, **two),
        "random_complement": bootstrap(lambda m: cols(m["random_complement"]), s, **two),
        "vs_random": bootstrap(lambda m: m["masked"] - cols(m["random"]), s, **two),
        "complement_vs_random": bootstrap(lambda m: cols(m["random_complement"]) - m["complement"], s, **two),
    }


def generalisation_estimates(sample: dict, n_boot: int = 2000, seed: int = 0, device=None) -> dict:
    """Estimates from per-image 0/1 of networks *trained* through masks, on the same clean images.

    ``sample`` has ``normal``, ``masked``, ``complement``, ``random`` and
    ``random_complement`` (n,) arrays. Returns their accuracies and ``ratio`` =
    masked / normal, ``vs_random`` = masked - random, ``complement_vs_random`` =
    random complement - complement, paired over the images (the random mask is
    one draw: a training run each). With ``radial`` / ``radial_complement``, (n,) or (n, k)
    for ``k`` :func:`annulus_shuffled_masks` draws (a training run each), also their means and
    ``vs_radial`` and ``complement_vs_radial``, differences to one draw picked per replicate
    (``_pick_one``; with k = 1 the interval covers the images only). ``complement_vs_radial`` is nan
    when both complements' runs are :func:`at_chance` (``complement_vs_radial_raw`` keeps it). Each
    condition is one training run: the intervals of the single-run keys cover the test images only.
    """
    kw = dict(n_boot=n_boot, seed=seed, device=device)
    keys = ("normal", "masked", "complement", "random", "random_complement", "radial", "radial_complement")
    s = {k: sample[k] for k in keys if k in sample}
    # one draw each (n,); the radial draws (n, k) get their two-way intervals below
    out = {k: bootstrap(lambda m, k=k: m[k], s, **kw) for k in s if not k.startswith("radial")}
    out["ratio"] = bootstrap(lambda m: m["masked"] / m["normal"].clamp(min=1e-9), s, **kw)
    out["vs_random"] = bootstrap(lambda m: m["masked"] - m["random"], s, **kw)
    out["complement_vs_random"] = bootstrap(lambda m: m["random_complement"] - m["complement"], s, **kw)
    if "radial" in s:
        r = torch.as_tensor(s["radial"])
        s["radial"], s["radial_complement"] = r.reshape(len(r), -1), torch.as_tensor(
            s["radial_complement"]).reshape(len(r), -1)
        one = _pick_one(s["radial"].shape[1], n_boot, seed)
        two = dict(kw, over="images × random masks")
        out["radial"] = bootstrap(lambda m: m["radial"].mean(1), s, **two)
        out["radial_complement"] = bootstrap(lambda m: m["radial_complement"].mean(1), s, **two)
        out["vs_radial"] = bootstrap(lambda m: m["masked"] - one(m["radial"]), s, **two)
        out["complement_vs_radial_raw"] = bootstrap(lambda m: one(m["radial_complement"]) - m["complement"], s,
                                                    **two)
        out["complement_vs_radial"] = unless_at_chance(out["complement_vs_radial_raw"], out["radial_complement"],
                                                       out["complement"])
    return out


def generalisation_masks(mask: torch.Tensor, n_radial: int = 1, seed: int = 0) -> dict:
    """The training conditions of the generalisation test (one network trained through each):
    ``normal`` (``None``: no mask), ``masked``, ``complement``, one scattered ``random``
    :func:`matched_random_masks` draw and ``random_complement``, and ``n_radial``
    :func:`annulus_shuffled_masks` draws ``radial 1``, ... with their ``radial 1 complement``, ..."""
    rnd = matched_random_masks(mask, 1, seed=seed)
    out = {"normal": None, "masked": mask, "complement": complement(mask), "random": rnd,
           "random_complement": complement(rnd)}
    for j, r in enumerate(annulus_shuffled_masks(mask, n_radial, seed=seed)):
        out[f"radial {j + 1}"], out[f"radial {j + 1} complement"] = r[None], complement(r[None])
    return out


def generalisation_sample(correct: dict) -> dict:
    """Per-image 0/1 of the :func:`generalisation_masks` runs as :func:`generalisation_estimates`
    reads them: the ``radial j`` draws stacked into ``radial`` / ``radial_complement`` (n, k)."""
    draws = [k for k in correct if k.startswith("radial ") and not k.endswith(" complement")]
    out = {k: v for k, v in correct.items() if not k.startswith("radial ")}
    if draws:
        out["radial"] = torch.stack([correct[k] for k in draws], 1)
        out["radial_complement"] = torch.stack([correct[f"{k} complement"] for k in draws], 1)
    return out


# ------------------------------------------- generalisation through a mask
def dataset_mask_config(row: dict, seed: int = 0, lam: float = 0.2, lr: float = 0.0, batch: int = 0,
                        per_channel: bool = False) -> MaskConfig:
    """The :class:`MaskConfig` of a ``DATASET_MASKS`` row (or a chapter's settings holding its
    keys); ``lr`` and ``batch`` (0: the row's) are chapter 3's parameters."""
    batch = batch or row["batch"]
    return MaskConfig(lam=lam, lr=lr or row.get("lr") or scaled_lr(batch), batch_size=batch,
                      max_epochs=row["max_epochs"], tol=row["tol"], keep_ratio=row["keep_ratio"],
                      patience=row["patience"], per_channel=per_channel, seed=seed)


def dataset_mask_tag(name: str, profile: str, seed: int = 0) -> str:
    """Cache tag of network ``name``'s dataset mask (the same in chapters 3, 4 and 5)."""
    return f"{name}-{profile}-s{seed}"


def _method_digest() -> str:
    """Hash of the source of the functions that define a dataset-mask run (not the whole
    module, so editing an analysis helper does not invalidate cached masks)."""
    import inspect
    parts = [apply_mask, masked_logits, pixel_transform, l1_penalty, _reference_ce, _descend,
             mask_correct, keep_and_count, _architecture, _Bodies, train_masks, train_mask, MaskConfig, MaskResult]
    return hashlib.sha256("".join(inspect.getsource(p) for p in parts).encode()).hexdigest()[:16]


def _image_method_digest() -> str:
    """The same for per-image masks."""
    import inspect
    parts = [apply_mask, masked_logits, pixel_transform, l1_penalty, _descend, image_stop_update, train_image_masks]
    return hashlib.sha256("".join(inspect.getsource(p) for p in parts).encode()).hexdigest()[:16]


def _mask_digest(mask: torch.Tensor | None) -> str:
    return "none" if mask is None else digest(mask.float())


def train_through_mask(mask: torch.Tensor | None, profile: str, device="cpu", tag: str = "masked",
                       cache: bool = True, **overrides):
    """Train a fresh standard-recipe model on training images seen through ``mask``.

    ``mask`` is applied to the normalised image (the same operation the mask
    was learned with); ``None`` trains the unmasked baseline with the same
    budget. ``overrides`` change the recipe (e.g. ``epochs``, ``n_train``, ``seed``).
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
    for name in ("models.py", "train.py", "data.py", "spectral.py", "evaluate.py"):
        code.update((repo_root() / "freqlib" / name).read_bytes())
    key = parts_digest({"config": cfg.to_dict(), "mask": _mask_digest(mask), "variant": variant,
                        "code": code.hexdigest()})
    path = zoo_dir() / f"{tag}-{profile}-{key}.pt"
    model = build_model(cfg.arch, cfg.widths)
    if cache and path.is_file():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            if ckpt.get("key") == key:
                model.load_state_dict(ckpt["state_dict"])
                model.record = dict(ckpt["record"], cached=True)
                return evaluate.prepare_model(model, device).eval()
        except Exception:
            pass  # unreadable: retrain below and overwrite atomically
    check_deadline(f"training through {tag}")
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
def masked_pixels(model, images: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Images as the network sees them through ``mask``, back in pixel space, clipped to [0, 1]."""
    with torch.no_grad():
        return pixel_transform(mask.to(images.device), model.normalize.to(images.device))(images).clamp(0, 1)


def cross_accuracy(models: dict, masks: dict, images: torch.Tensor, labels: torch.Tensor,
                   known: dict | None = None, n_boot: int = 2000, seed: int = 0, device=None):
    """Each network on images seen through each network's mask, over its clean accuracy.

    ``known`` (optional) maps ``(mask owner, evaluator)`` (``None`` as owner:
    unmasked) to per-image 0/1 already computed, so nothing is evaluated twice.
    Returns (DataFrame: row = whose mask, column = which network, entry = masked /
    clean accuracy; :class:`~freqlib.verdicts.Estimate` of the mean entry off the diagonal, paired
    over the images, the ratio of means per pair).
    """
    import pandas as pd
    if len(models) < 2:
        raise ValueError("cross_accuracy needs at least two networks (it compares each with the others' masks)")
    known = dict(known or {})

    def correct(owner, ev):
        if (owner, ev) not in known:
            known[(owner, ev)] = mask_correct(models[ev], images, labels, None if owner is None else masks[owner])
        return known[(owner, ev)].float()
    table, masked, clean = {}, [], []
    for owner in masks:
        table[owner] = {ev: float(correct(owner, ev).mean() / correct(None, ev).mean().clamp(min=1e-9))
                        for ev in models}
        for ev in models:
            if ev != owner:
                masked.append(correct(owner, ev))
                clean.append(correct(None, ev))
    est = bootstrap(lambda m: (m["masked"] / m["clean"].clamp(min=1e-9)).mean(1),
                    {"masked": torch.stack(masked, 1), "clean": torch.stack(clean, 1)},
                    n_boot=n_boot, seed=seed, device=device)
    return pd.DataFrame(table).T, est


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
        ax.set_xticks([-(w // 2), 0, w - w // 2 - 1]), ax.set_yticks([-(h // 2), 0, h - h // 2 - 1])
        ax.tick_params(labelleft=ax is axes[0, 0], labelsize=8)
    axes[0, 0].set_ylabel("vertical frequency\n(cycles / image)", fontsize=8)
    fig.supxlabel("horizontal frequency (cycles / image)", fontsize=8)
    fig.colorbar(im, ax=axes[0, -1], shrink=0.8).set_label("mask value M(f)", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def _mask_entry(model, images: torch.Tensor, labels: torch.Tensor, cfg: MaskConfig, tag: str) -> tuple[str, dict]:
    return f"fmask-{tag}", {"net": net_digest(model), "cfg": asdict(cfg), "data": digest(images, labels),
                            "code": _method_digest()}


def train_mask_cached(model, images: torch.Tensor, labels: torch.Tensor, cfg: MaskConfig, tag: str,
                      device=None, progress: str | None = None) -> MaskResult:
    """:func:`train_mask`, cached under ``data/models/results/fmask-<tag>-<hash>.pt``
    (:func:`freqlib.results.cached`: resumable, carried by paper-run).

    The key covers the network's zoo key (or its weights when it has none), the
    mask config, a digest of the training images and labels, and the code of
    the mask method, so a change to any of them trains again.
    """
    return train_masks_cached([model], images, labels, [cfg], [tag], device, progress)[0]


def train_masks_cached(models: list, images: torch.Tensor, labels: torch.Tensor, cfgs: list[MaskConfig],
                       tags: list[str], device=None, progress: str | None = None) -> list[MaskResult]:
    """:func:`train_masks`, each mask cached as :func:`train_mask_cached` caches it: the
    masks not stored yet are trained together, in one loop."""
    if not len(models) == len(cfgs) == len(tags):
        raise ValueError(f"train_masks_cached needs one config and one tag per network: got {len(models)} "
                         f"networks, {len(cfgs)} configs, {len(tags)} tags")
    entries = [_mask_entry(m, images, labels, cfg, tag) for m, cfg, tag in zip(models, cfgs, tags)]

    def compute(todo):
        fresh = train_masks([models[i] for i in todo], images, labels, [cfgs[i] for i in todo], device, progress)
        return [asdict(r) for r in fresh]
    return [MaskResult(**r) for r in cached_many(entries, compute)]


def train_image_masks_cached(model, images: torch.Tensor, targets: torch.Tensor, tag: str, **kw) -> dict:
    """:func:`train_image_masks`, cached under ``data/models/results/fimask-<tag>-<hash>.pt`` (key: the
    network, the images and targets, the keyword arguments and the method's code)."""
    key = {"net": net_digest(model), "data": digest(images, targets),
           "kw": {k: v for k, v in kw.items() if k not in ("device", "progress")}, "code": _image_method_digest()}
    return cached(f"fimask-{tag}", key, lambda: train_image_masks(model, images, targets, **kw))


# ------------------------------------------------------ the claims of Paper C
def paper_claims() -> list[Claim]:
    """The four claims of chapter 3 with their criteria, declared before any number exists.

    Keys name per-network quantities ``"<quantity>/<network>"``; a ``"<quantity>/*"``
    criterion must hold for every network so named (every masked network for
    C1's accuracy rules and C4's SSIM, every *robust* network for the centroid
    and the anisotropy). Accuracies are fractions on held-out test images.
    """
    paper = "Karantzas et al. 2022"
    return [
        Claim("C1", paper,
              "A mask that keeps the network's performance exists; adversarially robust networks' masks "
              "favour low frequencies.",
              "acc. unmasked vs masked on the mask-training images: 89.56 vs 89.20 (standard), 79.62 vs 78.97 "
              "(adversarial); adversarial masks concentrate on low frequencies",
              [Criterion("through its mask every network keeps > 0.98 of its held-out accuracy",
                         "ratio/*", above=0.98),
               Criterion("every network's mask beats annulus-shuffled masks (its values shuffled within "
                         "each annulus: same budget, same radial profile) on held-out accuracy",
                         "vs_radial/*", above=0.0),
               Criterion("every mask's complement costs more held-out accuracy than the annulus-shuffled "
                         "masks' complements", "complement_vs_radial/*", above=0.0),
               Criterion("every robust network's mask has a radial centroid < 0.95 × that of the standard mask "
                         "cut to the same support (its largest values)", "centroid_ratio_eq/*", below=0.95)]),
        Claim("C2", paper,
              "The low-frequency bias of robust networks depends on the direction in frequency space.",
              "qualitative: robust masks extend further along some orientations than others (mask figures)",
              [Criterion("every robust mask's excess anisotropy (over the mean of its within-annulus-shuffled "
                         "null) exceeds that of the standard mask cut to the same support (paired over frequencies, "
                         "basic bootstrap interval)", "aniso_vs_standard_eq/*", above=0.0)]),
        Claim("C3", paper,
              "The essential frequencies are the ones the network uses to generalise.",
              "qualitative: networks trained on masked images generalise to clean images; "
              "per-image masks are class-specific",
              [Criterion("a network trained through the standard mask reaches > 0.9 × the clean held-out "
                         "accuracy of the same-budget network trained on normal images", "gen_ratio", above=0.9),
               Criterion("trained through the mask it beats a network trained through an annulus-shuffled "
                         "mask (same budget, same radial profile)", "gen_vs_radial", above=0.0),
               Criterion("trained through the mask's complement it falls below a network trained through the "
                         "annulus-shuffled mask's complement", "gen_complement_vs_radial", above=0.0),
               Criterion("a linear probe reads the class off per-image masks better than the same probe off "
                         "the same images' log-amplitude spectra (same folds, paired)", "probe_vs_spectrum",
                         above=0.0),
               Criterion("with scrambled labels the same probe stays < 1.5× chance (15%)",
                         "probe_scrambled", below=0.15)]),
        Claim("C4", paper,
              "Images seen through the masks are not recognisable and look like textures.",
              "qualitative: masked images look like texture patterns (figures)",
              [Criterion("mean SSIM between a held-out image and its masked version < 0.5 for every mask",
                         "ssim/*", below=0.5),
               Criterion("the other networks keep < 0.5 of their clean accuracy on images seen through a "
                         "network's mask (mean over pairs)", "cross_other", below=0.5)]),
    ]
