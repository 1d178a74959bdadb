"""Where a Fourier mask lives: its energy by radius and by direction, with intervals over mask
frequencies (chapter 3, claim C2; chapters 4 and 5 read the radial centroid).

A mask's *energy* is its square after L2 normalisation, averaged over colour channels, so two
masks of different sparsity compare by where their values sit, not by how many there are.
Two summaries, following Paper C's figures:

* the **radial centroid** ``sum_f |f| Mhat(f)^2`` (cycles per image; lower = more low-frequency;
  the all-ones 32 x 32 mask: about 12.25), and its ratio to a reference mask cut to the same
  support (:func:`centroid_ratio_equal_support`), which a mask that is only sparser does not move;
* the **anisotropy** of the energy per orientation wedge (coefficient of variation over eight
  wedges), measured against its own null: the same mask shuffled within each unit annulus
  (:func:`permutation_anisotropy`), which keeps the radial profile and removes any direction.

Intervals resample the frequencies of an annulus or wedge (one per ``{f, -f}`` pair); the same
``seed`` gives the same resamples, so two masks bootstrapped with one seed are paired.
"""
from __future__ import annotations

import math

import torch

from .masks import equal_support, mirror_orbits, symmetrize
from .spectral import angular_profile, frequency_angle, frequency_radius, radial_profile
from .verdicts import Estimate

__all__ = [
    "l2_normalise", "radial_energy", "radial_centroid", "bootstrap_centroid", "centroid_ratio_equal_support",
    "angular_energy", "anisotropy", "isotropic_version", "bootstrap_anisotropy", "permutation_anisotropy",
    "basic_interval", "excess_anisotropy", "anisotropy_vs_equal_support", "full_annuli", "band_mass_ratio",
]


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

    Lower = more low-frequency (the all-ones mask of a 32x32 image: about 12.25).
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
                         r_max: float = 16.0, seed: int = 0, level: float = 0.95) -> Estimate:
    """Anisotropy of a mask's angular energy profile as an :class:`~freqlib.verdicts.Estimate` over mask frequencies.

    The frequencies of each wedge (one per +/- pair) are resampled with
    replacement ``n_boot`` times; the interval is the percentile interval of
    the resampled anisotropies (``boot`` keeps them). The resamples depend only
    on ``seed`` and the grid, so two masks bootstrapped with the same seed are
    resampled *paired* (the same frequencies), and differences of their
    replicates are paired differences.
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
    n = sum(len(m) for m in _wedge_members(h, w, n_bins, r_min, r_max))
    return Estimate.from_boot(float(anisotropy(torch.stack(point))), boot, over="mask frequencies", n=n,
                              level=level)


def basic_interval(value: float, boot: torch.Tensor, over: str = "mask frequencies", n: int = 0,
                   level: float = 0.95) -> Estimate:
    """An :class:`~freqlib.verdicts.Estimate` with the *basic* (reverse-percentile) bootstrap interval
    ``[2 v - q_hi, 2 v - q_lo]`` of replicates ``boot`` around ``value``.

    A percentile interval inherits a bootstrap bias (resampling the frequencies of a wedge
    inflates the spread of the wedge means, so a resampled coefficient of variation is larger
    than the observed one: the interval sits too high); the basic interval reflects the
    replicates about the point value, which removes that bias to first order. ``boot`` of the
    result keeps the reflected replicates (their percentiles are the interval)."""
    b = torch.as_tensor(boot, dtype=torch.float64).flatten().cpu()
    b = b[torch.isfinite(b)]
    if len(b) == 0:
        return Estimate.exact(value)
    q_lo, q_hi = b.quantile(torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)).tolist()
    return Estimate(value, min(2 * value - q_hi, value), max(2 * value - q_lo, value), over, n,
                    (2 * value - b).float())


def excess_anisotropy(mask: torch.Tensor, n_boot: int = 1000, seed: int = 0, **kw) -> Estimate:
    """:func:`anisotropy` of the mask minus the *mean* anisotropy of its within-annulus shuffles
    (:func:`permutation_anisotropy`, the same radial profile and grid, no direction): about 0 for a
    mask without a preferred direction at any sparsity. Basic interval (:func:`basic_interval`)
    over mask frequencies (:func:`bootstrap_anisotropy`'s paired resamples for a given ``seed``)."""
    a = bootstrap_anisotropy(mask, n_boot, seed=seed, **kw)
    null = float(permutation_anisotropy(mask, n_boot, seed=seed, **kw).mean())
    return basic_interval(a.value - null, a.boot - null, n=a.n)


def anisotropy_vs_equal_support(mask: torch.Tensor, reference: torch.Tensor, n_boot: int = 1000,
                                seed: int = 0, **kw) -> Estimate:
    """:func:`excess_anisotropy` of ``mask`` minus that of ``reference`` cut to ``mask``'s support
    (:func:`~freqlib.masks.equal_support`), paired over mask frequencies, basic interval.

    Above 0: ``mask`` prefers some directions more than ``reference``'s largest values do at the same
    number of kept frequencies. The null's anisotropy grows as a mask gets sparser, and each side is
    measured against its own null, so a mask that is only sparser than ``reference`` gives about 0;
    a mask that *is* ``reference`` cut to its support gives exactly 0."""
    a = excess_anisotropy(mask, n_boot, seed, **kw)
    b = excess_anisotropy(equal_support(reference, mask), n_boot, seed, **kw)
    # the reflected replicates are 2v - b*: their difference reflects the paired difference
    diff = (2 * a.value - a.boot.double()) - (2 * b.value - b.boot.double())
    return basic_interval(a.value - b.value, diff, n=a.n)


def bootstrap_centroid(mask: torch.Tensor, n_boot: int = 1000, seed: int = 0, level: float = 0.95) -> Estimate:
    """:func:`radial_centroid` of the symmetrised mask as an :class:`~freqlib.verdicts.Estimate` over mask frequencies.

    The {f, -f} pairs of each unit annulus are resampled with replacement (the
    radial analogue of :func:`bootstrap_anisotropy`): the interval says how much
    the centroid depends on which frequencies of an annulus the mask happened to
    keep. It does not cover the optimisation's own noise (the spread over
    training seeds, pooled when a chapter runs several). Same ``seed``: paired resamples.
    """
    h, w = mask.shape[-2:]
    sym = symmetrize(mask.detach().float().cpu())
    e = _energy(sym).reshape(-1, h, w)[0].flatten()
    rad = frequency_radius(h, w).flatten()
    rep, single = mirror_orbits(h, w)
    reps = rep.unique()
    size = torch.where(single[reps], 1.0, 2.0)           # an orbit {f, -f} counts twice
    ring = rad[reps].floor().long()
    g = torch.Generator().manual_seed(seed)
    num, den = torch.zeros(n_boot, dtype=torch.float64), torch.zeros(n_boot, dtype=torch.float64)
    for r in ring.unique():
        sel = ring == r
        members, wts = reps[sel], size[sel].double()
        draw = torch.randint(0, len(members), (n_boot, len(members)), generator=g)
        num += (wts * rad[members].double() * e[members].double())[draw].sum(1)
        den += (wts * e[members].double())[draw].sum(1)
    return Estimate.from_boot(float(radial_centroid(sym)), num / den.clamp(min=1e-12), over="mask frequencies",
                              n=len(reps), level=level)


def centroid_ratio_equal_support(mask: torch.Tensor, reference: torch.Tensor, n_boot: int = 1000,
                                 seed: int = 0) -> Estimate:
    """Radial centroid of ``mask`` over that of ``reference`` cut to ``mask``'s support
    (:func:`~freqlib.masks.equal_support`), paired over mask frequencies (:func:`bootstrap_centroid`, same seed).

    Below 1: at the same number of kept frequencies, ``mask`` sits at lower
    frequencies than ``reference``'s largest values. A mask that is only
    sparser than ``reference`` (its largest values, nothing else) gives 1.
    """
    a = bootstrap_centroid(mask, n_boot, seed)
    b = bootstrap_centroid(equal_support(reference, mask), n_boot, seed)
    return Estimate.from_boot(a.value / b.value, a.boot / b.boot, over="mask frequencies")


def full_annuli(mask: torch.Tensor) -> int:
    """How many innermost unit annuli (``k <= |f| < k + 1`` for k = 0, 1, ...) the mask keeps whole
    (every frequency > 0). An annulus shuffle cannot move anything there: every draw keeps those
    annuli too, and every complement (the mask's and the draws') lacks them."""
    m = mask.float().reshape(-1, *mask.shape[-2:]).amin(0)
    ring = frequency_radius(*m.shape, device=m.device).floor().long()
    k = 0
    while (ring == k).any() and bool((m[ring == k] > 0).all()):
        k += 1
    return k


def band_mass_ratio(mask: torch.Tensor, band: torch.Tensor) -> float:
    """Mean mask value inside ``band`` (a 0/1 centred map) over the mean outside."""
    m = mask.float().reshape(-1, *mask.shape[-2:]).mean(0)
    band = band.to(m.device).bool()
    return float(m[band].mean() / m[~band].mean().clamp(min=1e-6))


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
