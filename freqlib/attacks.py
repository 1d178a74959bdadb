"""Adversarial perturbations for the frequency analysis of Paper A, run batch
by batch on the model's device, and the null perturbations they are compared with.

* White-box: PGD, L-inf (Madry et al. 2018) with random start (torchattacks).
* Black-box, score-based (they only query the model's output):

  - SimBA (Guo et al. 2019, "Simple black-box adversarial attacks"), the
    attacker of Paper A, written here from the paper's Algorithm 1: pick a
    direction ``q`` at random (without replacement) from an orthonormal basis,
    try ``delta + eps q``, else ``delta - eps q``, keep whichever lowers the
    probability of the true class. ``basis="pixel"`` uses single pixels (what
    Paper A's code ran: 1000 iterations, step 0.2); ``basis="dct"`` samples
    only the ``freq_dims x freq_dims`` lowest DCT frequencies per channel
    (SimBA-DCT), a low-frequency prior by construction. Images are attacked
    in parallel (the iterations are sequential by nature, the images are not).
  - Square (Andriushchenko et al. 2020), L-inf, margin loss (torchattacks).

* Nulls (:func:`null_linf`, :func:`null_simba`): random perturbations with the
  same budget on the same images, clipped the same way. An attack's spectrum
  means something only relative to its null: white noise already puts 3/4 of
  its energy in DCT bands k >= 16 because 3/4 of the coefficients lie there.

Models take images in [0, 1] and normalise them internally, so the attacks
and the perturbations ``delta = adv - x`` live in pixel space.

Note on Square: torchattacks only attacks images the model classifies
correctly and returns the clean image where it does not succeed, so
``delta`` is exactly zero there. :func:`attack_summary` and the spectra in
the chapter therefore use only images with a non-zero perturbation.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from . import evaluate, spectral
from .evaluate import AutocastLogits

__all__ = ["AttackResult", "pgd_linf", "square_linf", "simba", "SIMBA_BASES", "null_linf", "null_simba",
           "null_square", "square_schedule",
           "robust_accuracy", "attack_summary", "plot_perturbation_spectra"]

SIMBA_BASES = ("pixel", "dct")


@dataclass
class AttackResult:
    """``adv`` (N, C, H, W) on the CPU, ``delta = adv - x``, and the predictions.

    Query attacks also report ``queries`` (N,), the model evaluations each
    image used, and ``steps`` (N,), the accepted SimBA steps."""
    name: str
    adv: torch.Tensor
    delta: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    labels: torch.Tensor
    queries: torch.Tensor | None = None
    steps: torch.Tensor | None = None

    @property
    def perturbed(self) -> torch.Tensor:
        """Mask of images whose perturbation is not exactly zero."""
        return self.delta.flatten(1).abs().amax(1) > 0


def _check_attack_input(images, labels):
    if images.dim() != 4 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"need (N, C, H, W) images with N labels; got {tuple(images.shape)} and {tuple(labels.shape)}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("attacks expect images in [0, 1] (zoo models normalise internally)")


def _run(attack_factory, name: str, model, images, labels, batch_size: int, seed: int) -> AttackResult:
    _check_attack_input(images, labels)
    device = next(model.parameters()).device
    model.eval()
    attack = attack_factory(model)
    torch.manual_seed(seed)
    advs = []
    for s in range(0, images.shape[0], batch_size):
        x = images[s:s + batch_size].to(device)
        y = labels[s:s + batch_size].to(device)
        advs.append(attack(x, y).detach().cpu())
    adv = torch.cat(advs)
    clean_pred = evaluate.predict(model, images).cpu()
    adv_pred = evaluate.predict(model, adv).cpu()
    return AttackResult(name, adv, adv - images.cpu(), clean_pred, adv_pred, labels.cpu())


def pgd_linf(model, images, labels, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 20,
             batch_size: int = 500, seed: int = 0) -> AttackResult:
    """Untargeted L-inf PGD with random start (torchattacks.PGD), in fp32."""
    import torchattacks
    return _run(lambda m: torchattacks.PGD(evaluate.for_attack(m), eps=eps, alpha=alpha, steps=steps,
                                           random_start=True),
                f"PGD-{steps} L∞ {eps * 255:.0f}/255", model, images, labels, batch_size, seed)


def square_linf(model, images, labels, eps: float = 8 / 255, n_queries: int = 1000, p_init: float = 0.8,
                batch_size: int = 500, seed: int = 0) -> AttackResult:
    """Untargeted L-inf Square attack (torchattacks.Square, margin loss, one restart).

    Square re-seeds torch's global generator with ``seed``; forward passes
    run under bf16 autocast on CUDA (a query attack needs no gradients).
    """
    import torchattacks

    def factory(m):
        return torchattacks.Square(AutocastLogits(m), norm="Linf", eps=eps, n_queries=n_queries,
                                   n_restarts=1, p_init=p_init, loss="margin", resc_schedule=True,
                                   seed=seed, verbose=False)
    return _run(factory, f"Square L∞ {eps * 255:.0f}/255, {n_queries} queries", model, images, labels,
                batch_size, seed)


def _simba_space(shape, basis: str, freq_dims: int):
    """(number of directions, function mapping (m, D) coordinates to (m, C, H, W) images)."""
    if basis not in SIMBA_BASES:
        raise ValueError(f"basis={basis!r} is not one of {SIMBA_BASES}")
    c, h, w = shape
    if basis == "pixel":
        return c * h * w, lambda cf: cf.view(-1, c, h, w)
    if not 1 <= freq_dims <= min(h, w):
        raise ValueError(f"freq_dims={freq_dims} must be between 1 and {min(h, w)}")

    def to_image(cf):                                  # orthonormal DCT: each coordinate is a unit-norm image
        z = cf.new_zeros(cf.shape[0], c, h, w)
        z[:, :, :freq_dims, :freq_dims] = cf.view(-1, c, freq_dims, freq_dims)
        return spectral.idct2(z)
    return c * freq_dims * freq_dims, to_image


@torch.no_grad()
def simba(model, images, labels, basis: str = "pixel", eps: float = 0.2, max_iters: int = 1000,
          max_queries: int | None = None, freq_dims: int = 14, seed: int = 0, check_every: int = 16,
          progress: str | None = None) -> AttackResult:
    """Untargeted SimBA (Guo et al. 2019, Algorithm 1) on a batch of images at once.

    Each image walks its own random order of directions of ``basis`` (pixels,
    or the ``freq_dims x freq_dims`` lowest DCT frequencies of each channel) for at most
    ``max_iters`` iterations (and at most as many as there are directions):
    ``+eps`` is tried first, ``-eps`` only if ``+eps`` did not lower the
    true-class probability. An image stops once misclassified or when its
    next query would exceed ``max_queries`` (counting the first, clean query).

    Budget: the steps are orthogonal, so ``||delta||_2 <= eps sqrt(steps)``
    (before clipping to [0, 1], which only shrinks it); with the pixel basis
    every pixel moves at most once, so ``||delta||_inf <= eps``.

    Batched without a host sync per iteration: both candidates of every live
    image go through the model in one batch (the second is counted as a query
    only where the algorithm would have made it), and the set of live images
    is recomputed every ``check_every`` iterations.
    """
    from tqdm import tqdm
    _check_attack_input(images, labels)
    if eps <= 0 or max_iters < 1:
        raise ValueError(f"SimBA needs eps > 0 and max_iters >= 1, got eps={eps}, max_iters={max_iters}")
    device = evaluate.model_device(model)
    model.eval()
    x, y = images.to(device), labels.to(device)
    n = x.shape[0]
    n_dirs, to_image = _simba_space(x.shape[1:], basis, freq_dims)
    iters = min(max_iters, n_dirs)
    budget = max_queries if max_queries is not None else 2 * iters + 1
    if budget < 1:
        raise ValueError(f"max_queries={max_queries} leaves no query for the clean image")
    gen = torch.Generator(device=device).manual_seed(seed)
    order = torch.rand(n, n_dirs, generator=gen, device=device).argsort(1)[:, :iters]
    coef = torch.zeros(n, n_dirs, device=device)

    def true_prob(z, yy):
        return z.softmax(-1).gather(-1, yy.expand(*z.shape[:-1]).unsqueeze(-1))[..., 0]

    z0 = evaluate.logits(model, x, precise=True)       # fp32: the walk compares probabilities
    p, pred = true_prob(z0, y), z0.argmax(1)
    clean_pred = pred.clone()
    queries = torch.ones(n, device=device)
    steps = torch.zeros(n, device=device)
    active = (pred == y) & (queries + 1 <= budget)
    live = torch.arange(n, device=device)
    for t in tqdm(range(iters), desc=progress, leave=False, disable=progress is None):
        if t % check_every == 0:
            live = active.nonzero().flatten()          # the only host sync, every check_every iterations
            if live.numel() == 0:
                break
        m = live.numel()
        cf, act, q, p_live, yl = coef[live], active[live], queries[live], p[live], y[live]
        step = torch.zeros_like(cf).scatter_(1, order[live, t:t + 1], eps)
        cand = torch.stack([cf + step, cf - step])                          # +eps first (Algorithm 1)
        adv = (x[live][None] + to_image(cand.flatten(0, 1)).view(2, m, *x.shape[1:])).clamp(0, 1)
        z = evaluate.logits(model, adv.flatten(0, 1), precise=True).view(2, m, -1)
        py = true_prob(z, yl)
        take_plus = act & (py[0] < p_live)
        ask_minus = act & ~take_plus & (q + 2 <= budget)
        take_minus = ask_minus & (py[1] < p_live)
        queries[live] = q + act.float() + ask_minus.float()
        coef[live] = torch.where(take_plus[:, None], cand[0], torch.where(take_minus[:, None], cand[1], cf))
        p[live] = torch.where(take_plus, py[0], torch.where(take_minus, py[1], p_live))
        new_pred = torch.where(take_plus, z[0].argmax(1), torch.where(take_minus, z[1].argmax(1), pred[live]))
        pred[live] = new_pred
        steps[live] += (take_plus | take_minus).float()
        active[live] = act & (new_pred == yl) & (queries[live] + 1 <= budget)
    adv = (x + to_image(coef)).clamp(0, 1)
    adv_pred = evaluate.predict(model, adv)
    name = (f"SimBA-{'DCT' if basis == 'dct' else 'pixel'} ε={eps:g}, ≤{iters} iterations"
            + (f", {freq_dims}×{freq_dims} DCT" if basis == "dct" else ""))
    return AttackResult(name, adv.cpu(), (adv - x).cpu(), clean_pred.cpu(), adv_pred.cpu(), labels.cpu(),
                        queries=queries.cpu(), steps=steps.cpu())


def null_linf(images: torch.Tensor, eps: float, seed: int = 0) -> torch.Tensor:
    """The null of an L-inf attack: random-sign noise ``+-eps`` on every pixel and
    channel, added to ``images`` and clipped to [0, 1] like an attack; returns delta."""
    g = torch.Generator().manual_seed(seed)
    signs = (torch.randint(0, 2, images.shape, generator=g) * 2 - 1).to(images.device, images.dtype)
    return (images + eps * signs).clamp(0, 1) - images


def null_simba(images: torch.Tensor, steps: torch.Tensor, basis: str = "pixel", eps: float = 0.2,
               freq_dims: int = 14, seed: int = 0) -> torch.Tensor:
    """The null of SimBA: for image i, ``steps[i]`` distinct random directions of the
    same basis with random signs, each of size ``eps`` (SimBA's walk with its
    accept rule replaced by a coin), added and clipped to [0, 1]; returns delta."""
    n_dirs, to_image = _simba_space(images.shape[1:], basis, freq_dims)
    steps = torch.as_tensor(steps).to(images.device).long().view(-1, 1)
    if steps.shape[0] != images.shape[0] or steps.min() < 0 or steps.max() > n_dirs:
        raise ValueError(f"steps must be {images.shape[0]} counts between 0 and {n_dirs}")
    g = torch.Generator().manual_seed(seed)
    order = torch.rand(images.shape[0], n_dirs, generator=g).argsort(1).to(images.device)
    signs = (torch.randint(0, 2, (images.shape[0], n_dirs), generator=g) * 2 - 1).to(images.device, images.dtype)
    rank = torch.arange(n_dirs, device=images.device)[None]
    coef = torch.zeros(images.shape[0], n_dirs, device=images.device, dtype=images.dtype)
    coef.scatter_(1, order, eps * signs * (rank < steps))
    return (images + to_image(coef)).clamp(0, 1) - images


def square_schedule(n_queries: int, p_init: float = 0.8, size: int = 32) -> list[int]:
    """Side of the square Square's L-inf attack proposes at each iteration (torchattacks'
    ``p_selection`` with ``resc_schedule=True``: p_init halves at fixed fractions of
    the budget; side = max(round(sqrt(p * H * W)), 1))."""
    def p_at(i):
        it = int(i / n_queries * 10000)
        cuts = (10, 50, 200, 500, 1000, 2000, 4000, 6000, 8000)
        return p_init / 2 ** sum(it > c for c in cuts)
    return [max(int(round(math.sqrt(p_at(i) * size * size))), 1) for i in range(n_queries)]


def null_square(images: torch.Tensor, eps: float, n_queries: int, p_init: float = 0.8, accept: float = 0.5,
                seed: int = 0) -> torch.Tensor:
    """The null of Square (L-inf): its own random prior with no model. Start from
    Square's initialisation, vertical stripes (each column of each channel ``+-eps``);
    then, for each of the ``n_queries`` iterations of its schedule
    (:func:`square_schedule`), write a square of that side at a random place with a
    random ``+-eps`` per channel, kept with probability ``accept`` (Square's accept
    rule, "the model's loss improved", replaced by a coin). Added and clipped to
    [0, 1] like the attack; returns delta.

    The attack itself stops at its first success, so its images went through at most
    as many iterations as this null; the null is the prior of the whole budget."""
    if not 0 <= accept <= 1 or n_queries < 0:
        raise ValueError(f"need 0 <= accept <= 1 and n_queries >= 0, got {accept}, {n_queries}")
    n, c, h, w = images.shape
    dev = images.device
    g = torch.Generator().manual_seed(seed)
    sign = lambda *shape: (torch.randint(0, 2, shape, generator=g) * 2 - 1).to(images.dtype)  # noqa: E731
    delta = (eps * sign(n, c, 1, w).expand(n, c, h, w)).to(dev)
    sides = square_schedule(n_queries, p_init, min(h, w))
    # every iteration's draws on the CPU generator, in the attack's order, moved to the device once
    draws = []
    for s in sides:
        vh = torch.randint(0, max(h - s, 1), (n, 1, 1), generator=g)   # torchattacks: [0, h - s)
        vw = torch.randint(0, max(w - s, 1), (n, 1, 1), generator=g)
        keep = torch.rand(n, 1, 1, generator=g) < accept
        draws.append((vh, vw, keep, sign(n, c, 1, 1)))
    if draws:
        vhs, vws, keeps, signs = (torch.stack(t).to(dev) for t in zip(*draws))
        rows = torch.arange(h, device=dev).view(1, h, 1)
        cols = torch.arange(w, device=dev).view(1, 1, w)
        for i, s in enumerate(sides):
            vh, vw = vhs[i], vws[i]
            inside = ((rows >= vh) & (rows < vh + s) & (cols >= vw) & (cols < vw + s) & keeps[i]).unsqueeze(1)
            delta = torch.where(inside, eps * signs[i], delta)
    return (images + delta).clamp(0, 1) - images


def robust_accuracy(model, images, labels, norm: str = "linf", eps: float = 8 / 255, steps: int = 50,
                    restarts: int = 10, alpha: float | None = None, batch_size: int = 500, seed: int = 0,
                    among: torch.Tensor | None = None, progress: str | None = "PGD evaluation") -> torch.Tensor:
    """Per-image robustness (1.0 = still correct) under PGD with random restarts (torchattacks).

    The evaluation of the reference code (Wong et al. 2020: PGD-50, 10
    restarts, step 2/255 for L-inf 8/255): an image counts as robust only if
    every restart fails. Restart ``k`` runs only on the images that survived
    restarts ``1..k-1``, so restarts cost little once most images are broken.
    ``among`` (N,) bool, e.g. the survivors of a cheaper attack, limits the
    attack to those images and counts the others as broken: the result is then
    the worst case over both attacks.
    Returns a (N,) float tensor on the CPU; its mean is the robust accuracy.
    """
    import torchattacks
    from tqdm import tqdm
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    device = next(model.parameters()).device
    alpha = alpha if alpha is not None else (2 / 255 if norm == "linf" and abs(eps - 8 / 255) < 1e-9
                                             else 2.5 * eps / steps)
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    attack = cls(evaluate.for_attack(model), eps=eps, alpha=alpha, steps=steps, random_start=True)
    model.eval()
    torch.manual_seed(seed)
    alive = evaluate.correct(model, images, labels).bool()
    if among is not None:
        alive &= torch.as_tensor(among, dtype=torch.bool).cpu()
    for _ in tqdm(range(restarts), desc=progress, leave=False, disable=progress is None):
        idx = alive.nonzero().flatten()
        for s in range(0, len(idx), batch_size):
            part = idx[s:s + batch_size]
            x, y = images[part].to(device), labels[part].to(device)
            adv = attack(x, y)
            alive[part] = (evaluate.predict(model, adv) == y).cpu()
    return alive.float()


def attack_summary(result: AttackResult) -> dict:
    """Clean and adversarial accuracy, success rate on correctly classified images, perturbation norms."""
    correct = result.clean_pred == result.labels
    fooled = correct & (result.adv_pred != result.labels)
    linf = result.delta.flatten(1).abs().amax(1)
    l2 = result.delta.flatten(1).norm(dim=1)
    pert = result.perturbed
    return {
        "attack": result.name,
        "clean accuracy": correct.float().mean().item(),
        "adversarial accuracy": (result.adv_pred == result.labels).float().mean().item(),
        "success rate (on correct)": (fooled.sum() / correct.sum().clamp(min=1)).item(),
        "perturbed images": int(pert.sum()),
        "max L∞ (×255)": 255 * linf.max().item(),
        "mean L2 (perturbed)": l2[pert].mean().item() if pert.any() else float("nan"),
        "mean queries": result.queries[correct].mean().item() if result.queries is not None and correct.any()
        else float("nan"),
    }


def plot_perturbation_spectra(profiles: dict, title: str, reference: dict | None = None):
    """Band profiles (:func:`freqlib.attribution.band_profile`) of perturbations (coloured lines)
    beside reference profiles (grey, each its own dash and marker), bands 1..K-1 on a log
    scale; the legend sits outside the axes."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(10, 3.8))
    for name, prof in profiles.items():
        prof = torch.as_tensor(prof)
        ax.plot(range(1, len(prof)), prof[1:].cpu().numpy(), "o-", ms=3, label=name)
    # references in grey/black, each with its own dash pattern and marker
    styles = [("k", "--", None), ("0.45", ":", "s"), ("0.25", "-.", "^"), ("0.6", (0, (5, 1, 1, 1, 1, 1)), "v"),
              ("0.1", (0, (1, 3)), "x")]
    for (name, prof), (color, dash, marker) in zip((reference or {}).items(), styles * 4):
        prof = torch.as_tensor(prof)
        ax.plot(range(1, len(prof)), prof[1:].cpu().numpy(), color=color, ls=dash, marker=marker, ms=3, markevery=3,
                lw=1.3, label=name)
    ax.axvspan(15.5, 31.5, color="0.93", zorder=0, label="bands k ≥ 16 ('high', shaded)")
    ax.set(yscale="log", xlabel="DCT band k (band 0, the mean colour, left out)",
           ylabel="mean |DCT| per coefficient\n(bands 1-31 sum to 1)")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)
    fig.tight_layout()
    ax.set_title(title)
    return fig
