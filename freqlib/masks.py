"""Fourier masks (Paper C: Karantzas et al. 2022, "Understanding robustness and
generalization of artificial neural networks through Fourier masks"): the operation,
masks of the same budget, and what a network does through a mask.

A *Fourier mask* ``M`` is a real array over the centred spectrum, values in
[0, 1]. A frozen network sees the image through it:
``body(real(F^-1(M * F normalize(x))))``. How a mask is learned (the reference
code's loss, schedule and stopping rules) is :mod:`freqlib.mask_training`; what a
learned mask shows against masks of the same budget is :mod:`freqlib.mask_reliability`
(C1: the network through its mask) and :mod:`freqlib.mask_generalisation` (C3:
networks trained through it). Where a mask's energy lies (radial centroid,
anisotropy) is :mod:`freqlib.mask_geometry`; C3's linear probe :mod:`freqlib.probe`;
SSIM and PSNR :mod:`freqlib.similarity`.

Conventions
-----------
* Masks are stored in the *centred* layout of :mod:`freqlib.spectral`
  (frequency (0, 0) at index (H // 2, W // 2)): the reference code stores the
  uncentred layout and shows ``fftshift(M)``; the two differ only by that shift.
* Shapes: ``(1, 1, H, W)`` one mask shared by the channels, ``(1, C, H, W)``
  per channel, ``(B, 1, H, W)`` one mask per image. They broadcast on images.
* Only the real part of the inverse DFT is kept, so ``M`` and its
  mirror-symmetrised version ``(M(f) + M(-f)) / 2`` give identical images
  (:func:`symmetrize`). Training from the all-ones mask keeps ``M`` symmetric.
* Every evaluation goes through :mod:`freqlib.evaluate` with a batched
  :func:`pixel_transform` (:func:`mask_correct`).
"""
from __future__ import annotations

import torch

from . import evaluate
from .spectral import centred_dft, frequency_radius, inverse_centred_dft
from .verdicts import PCT, PTS, Claim, Criterion, bootstrap, judge_setting_aside

__all__ = [
    "apply_mask", "masked_logits", "pixel_transform", "symmetrize", "support", "complement", "mirror_orbits",
    "matched_random_masks", "annulus_shuffled_masks", "kept_frequencies", "equal_support", "mask_correct",
    "mask_accuracy",
    "masked_pixels", "cross_accuracy", "plot_masks", "paper_claims", "unfinished_aside", "judge_c4",
]


# ----------------------------------------------------- the operation
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


# ------------------------------------------ masks of the same budget
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


def kept_frequencies(mask: torch.Tensor) -> int:
    """How many frequencies ``mask`` keeps (value > 0 once symmetrised): the support
    :func:`equal_support` cuts other masks to."""
    return int((symmetrize(mask.detach().float()) > 0).sum())


def equal_support(mask: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """``mask`` (symmetrised) cut to as many frequencies as ``like`` keeps (``like > 0``):
    its largest values stay, the rest become 0.

    Whole ``{f, -f}`` pairs are kept or dropped, largest values first, per channel. Where
    several pairs tied at the cut's value do not all fit, the slots left are spread evenly over
    them: each keeps its value scaled by the square root of the share that fits, so their energy
    (what centroids and anisotropies weigh) is that of a random order among the ties on average,
    and no seed can move a centroid. Used to compare radial centroids of masks
    of different sparsity at the same support: a sparser mask that keeps the lowest
    frequencies has a lower centroid whatever the network.
    """
    h, w = mask.shape[-2:]
    m = symmetrize(mask.detach().float()).reshape(-1, h * w).cpu()
    n = (symmetrize(like.detach().float()).reshape(-1, h * w).cpu() > 0).sum(1)
    if len(n) != m.shape[0]:
        n = n.max().expand(m.shape[0])
    rep, single = mirror_orbits(h, w)
    reps = rep.unique()
    size = torch.where(single[reps], 1, 2).float()
    keep = torch.ones_like(m)
    for c in range(m.shape[0]):
        v = m[c, reps]
        order = torch.argsort(v, descending=True, stable=True)
        fits = size[order].cumsum(0) <= n[c]
        if fits.all():
            continue
        cut = v[order][~fits][0]                      # the value of the first pair that does not fit
        above, tied = v > cut, v == cut
        share = (n[c] - size[above].sum()) / size[tied].sum() if tied.sum() > 1 else 0.0   # a lone pair: dropped
        keep[c, reps] = torch.where(above, 1.0, torch.where(tied, share ** 0.5, 0.0))
        keep[c] = keep[c, rep]                        # both members of a pair alike
    return (m * keep).view(*mask.shape[:-2], h, w).to(mask.device) if mask.dim() > 2 else (m * keep).view(h, w)


# ------------------------------------------ a network through a mask
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
            mask = None if owner is None else masks[owner].to(evaluate.model_device(models[ev]))
            known[(owner, ev)] = mask_correct(models[ev], images, labels, mask)
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


# --------------------------------------------- the claims of Paper C
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
                         "ratio/*", above=0.98, name="mask keeps accuracy"),
               Criterion("every network's mask beats annulus-shuffled masks (its values shuffled within "
                         "each annulus: same budget, same radial profile) on held-out accuracy",
                         "vs_radial/*", above=0.0, name="mask beats shuffled", **PTS),
               Criterion("every mask's complement costs more held-out accuracy than the annulus-shuffled "
                         "masks' complements", "complement_vs_radial/*", above=0.0, name="complement costs more",
                         **PTS),
               Criterion("every robust network's mask has a radial centroid < 0.95 × that of the standard mask "
                         "cut to the same support (its largest values)", "centroid_ratio_eq/*", below=0.95, name="lower centroid")]),
        Claim("C2", paper,
              "The low-frequency bias of robust networks depends on the direction in frequency space.",
              "qualitative: robust masks extend further along some orientations than others (mask figures)",
              [Criterion("every robust mask's excess anisotropy (over the mean of its within-annulus-shuffled "
                         "null) exceeds that of the standard mask cut to the same support (paired over frequencies, "
                         "basic bootstrap interval)", "aniso_vs_standard_eq/*", above=0.0, name="more anisotropic")]),
        Claim("C3", paper,
              "The essential frequencies are the ones the network uses to generalise.",
              "qualitative: networks trained on masked images generalise to clean images; "
              "per-image masks are class-specific",
              [Criterion("a network trained through the standard mask reaches > 0.9 × the clean held-out "
                         "accuracy of the same-budget network trained on normal images", "gen_ratio", above=0.9, name="generalises"),
               Criterion("trained through the mask it beats a network trained through an annulus-shuffled "
                         "mask (same budget, same radial profile)", "gen_vs_radial", above=0.0, name="beats shuffled mask", **PTS),
               Criterion("trained through the mask's complement it falls below a network trained through the "
                         "annulus-shuffled mask's complement", "gen_complement_vs_radial", above=0.0,
                         name="complement below shuffled", **PTS),
               Criterion("a linear probe reads the class off per-image masks better than the same probe off "
                         "the same images' log-amplitude spectra (same folds, paired)", "probe_vs_spectrum",
                         above=0.0, name="probe beats spectra", **PTS),
               Criterion("with scrambled labels the same probe stays < 1.5× chance (15%)",
                         "probe_scrambled", below=0.15, name="scrambled near chance", **PCT)]),
        Claim("C4", paper,
              "Images seen through the masks are not recognisable and look like textures.",
              "qualitative: masked images look like texture patterns (figures)",
              [Criterion("mean SSIM between a held-out image and its masked version < 0.5 for every mask",
                         "ssim/*", below=0.5, name="SSIM"),
               Criterion("the other networks keep < 0.5 of their clean accuracy on images seen through a "
                         "network's mask (mean over pairs)", "cross_other", below=0.5, name="other networks fail")]),
    ]


def unfinished_aside(claim: Claim, numbers: dict, unfinished) -> list[str]:
    """C4's numbers that fail only on a mask cut off while still shrinking: keys to set aside.

    C4 asks how much a mask removes. ``unfinished`` names the masks the epoch cap stopped
    while they were still losing mass (:func:`freqlib.mask_training.cut_off_while_shrinking`):
    more epochs would have returned sparser masks, so a number that *fails* on one (SSIM
    not below 0.5, cross accuracy not below 0.5) says the budget ended too early, not that
    the claim is false; a number that *holds* on it stays judged, and every other mask is
    judged as measured. Keys ``"<quantity>/<network>"`` name their mask; a key without a
    network (a mean over every pair of masks) depends on every mask.
    """
    unfinished = set(unfinished)
    aside = []
    for c in claim.criteria:
        for k in c.keys(numbers):
            mask = k.split("/", 1)[1] if "/" in k else None
            if (mask in unfinished if mask else bool(unfinished)) and c.judge_one(numbers[k]) == "fails":
                aside.append(k)
    return aside


def judge_c4(claim: Claim, per_seed: list[dict], ours: str, unfinished) -> dict:
    """Judge C4 on ``per_seed`` numbers, then again with :func:`unfinished_aside`'s keys
    undecided (:func:`freqlib.verdicts.judge_setting_aside`; the text names them).

    Returns ``{"aside": keys, "measured_states": [...], "measured_verdict": str}``.
    """
    return judge_setting_aside(claim, per_seed, ours, lambda numbers: unfinished_aside(claim, numbers, unfinished),
                               lambda keys: f"not judged: {', '.join(keys)}, whose masks the epoch cap cut off "
                                            "while still losing mass")
