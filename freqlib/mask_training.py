"""Learning Fourier masks (:mod:`freqlib.masks`) as the reference code does
(nkarantzas/FourierMasks): one mask per dataset (``train_masks.py``) or per image
(``train_single_img_masks.py``). The mask is learned so that the network's loss
does not change while the mask shrinks:

    loss = exp((CE(f(masked x), y) - CE(f(x), y))^2) + lam * ||M||_1 / ||1||_1

exactly as the reference writes it: ``torch.norm(M, p=1)`` times ``lam`` divided
by the all-ones norm. The L1 norm has a zero subgradient at 0, so an entry the
clamp has put at 0 is not pushed by the regulariser any more (only the
invariance term can move it). Adam, one-cycle schedule, the mask clamped to
[0, 1] after every step, network in eval mode (frozen batch norm).

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
* Per-image losses are averaged over a batch, so the batch objective is the
  expectation of the paper's batch-size-1 objective; the batch size changes the
  gradient noise and the number of steps, not the target.
* Mask training keeps everything on the device and synchronises with the host
  once per epoch.
* Masks of several networks that share a schedule train in one loop
  (:func:`train_masks`; on CUDA one vmapped forward pass for all of them): each
  is the mask it would be alone. A step on 16 images is launch-bound on a GPU,
  so eight masks together should cost little more than one
  (``bench/bench_paper.py --only masks`` measures the ratio).
* Learned masks are cached (:func:`train_masks_cached`) under a key that covers the
  network, the images, the config and the source of the functions that define
  the method (:func:`method_digest`), so editing anything else keeps them.
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
from .masks import apply_mask, mask_correct, masked_logits, pixel_transform
from .results import cached, cached_many, digest, net_digest

__all__ = [
    "DATASET_MASKS", "IMAGE_MASK_DEFAULTS", "MaskConfig", "MaskResult", "scaled_lr", "l1_penalty",
    "keep_and_count", "image_stop_update", "train_masks", "train_mask", "train_image_masks",
    "dataset_mask_config", "dataset_mask_tag", "describe_config", "method_digest", "train_mask_cached",
    "train_masks_cached", "train_image_masks_cached", "stopped_by_rule", "cut_off_while_shrinking",
    "lr_change",
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


# --------------------------------------- the objective and its rules
def l1_penalty(mask: torch.Tensor) -> torch.Tensor:
    """``||M||_1 / ||1||_1`` per leading index: (B,) for a (B, C, H, W) stack.

    Written with ``abs`` as the reference's ``torch.norm(p=1)``: its gradient is
    ``sign(M) / size``, which is 0 for an entry at exactly 0 (the clamp's floor).
    """
    return mask.abs().flatten(1).mean(1)


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


def _frozen(model):
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    return model


def _reference_ce(model, x, y) -> torch.Tensor:
    """Per-image CE of the unmasked network in fp32 (the invariance compares with it), in the
    training passes' arithmetic (TF32 convolutions on CUDA, as the reference ran both): in IEEE
    arithmetic ``CE(masked) - CE`` would carry TF32's rounding even at M = 1."""
    return F.cross_entropy(evaluate.logits(model, x, precise=True, tf32=True), y, reduction="none")


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


# ----------------------------------------------------- dataset masks
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
        through ``masks[k]`` (the training forward pass of :func:`~freqlib.masks.masked_logits`)."""
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


# --------------------------------------------------- per-image masks
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
    logits0 = evaluate.logits(model, x, precise=True, tf32=True)     # the training passes' arithmetic
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


# ------------------------------------------- chapters 3-5's settings
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


def describe_config(cfg: MaskConfig) -> dict:
    """The config as a flat dict (for tables)."""
    return copy.deepcopy(asdict(cfg))


def lr_change(first: float, last: float, digits: int = 3) -> str:
    """How a learning rate moved over a run, as prose reads it after "it": "went from 0.008 to 0.012,
    a rise of 50%", or, where both ends print the same at ``digits`` significant digits,
    "stayed at 0.008, a rise of under 0.001%" (the bound: the smallest power of ten above the change)."""
    a, b = f"{first:.{digits}g}", f"{last:.{digits}g}"
    change = 100 * (last / first - 1)
    kind = "rise" if change >= 0 else "fall"
    if a != b:
        return f"went from {a} to {b}, a {kind} of {abs(change):.2g}%"
    if change == 0:
        return f"stayed at {a}"
    e = math.floor(math.log10(abs(change))) + 1
    return f"stayed at {a}, a {kind} of under {10.0 ** e:.{max(0, -e)}f}%"


# ------------------------------------------------------------ cached
def stopped_by_rule(result: MaskResult) -> bool:
    """Whether a dataset mask stopped by the reference's rule (patience reached), not at the epoch cap."""
    return result.stopped.startswith("sparsity_converged")


def cut_off_while_shrinking(result: MaskResult) -> bool:
    """Whether the epoch cap stopped a mask that was still losing mass, so that more epochs
    would have returned a sparser one: its last epoch was kept (the returned mask is the last
    one) and that epoch's mean sparsity fell by more than the stopping rule's tolerance.
    Not so for a mask stopped by the rule, one whose last epoch was not kept (an earlier
    epoch's mask is returned), or one whose sparsity had stopped moving."""
    h = result.history
    if stopped_by_rule(result) or len(h) < 2 or not h[-1]["kept"]:      # kept last: the returned mask is it
        return False
    return h[-2]["sparsity"] - h[-1]["sparsity"] > result.config.get("tol", 0.0)


def method_digest() -> str:
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


def _mask_entry(model, images: torch.Tensor, labels: torch.Tensor, cfg: MaskConfig, tag: str) -> tuple[str, dict]:
    return f"fmask-{tag}", {"net": net_digest(model), "cfg": asdict(cfg), "data": digest(images, labels),
                            "code": method_digest()}


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
