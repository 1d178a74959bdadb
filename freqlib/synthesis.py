"""Chapter 4's synthesis: four lenses turned into low-frequency-bias scores, each
with its interval, and how far the lenses' rankings of the models agree.

Every score is oriented so that **larger = more low-frequency bias**:

==========================  =====  =====================================================  ==================
lens                        paper  score                                                  interval over
==========================  =====  =====================================================  ==================
filtered-input accuracy     A      area under the low-pass curve minus the high-pass one  test images
occluded-frequency (OF)     A      minus the attribution-weighted mean DCT band           test images
first-layer filters         B      minus the energy share of kernels at radius >= R_CUT   first-layer kernels
Fourier mask                C      minus the energy-weighted mean radius of the mask,     mask frequencies
                                   every mask cut to the smallest support compared
==========================  =====  =====================================================  ==================

The mask ranking depends on the support the masks are cut to, so
:func:`mask_pair_orders` also orders every pair of masks at the pair's own equal
support (chapter 3's convention) and tells a pair apart only where both cuts agree.

The two image-based scores are bootstrapped with the same seed on the same
images, so their replicates are paired; :func:`rank_agreement` uses the
replicates to put an interval on each Spearman correlation between lenses, and
:func:`permutation_p` gives each correlation its exact chance level (all
orderings of the models), which :func:`pair_state` requires before it reads
two lenses as agreeing. ``VALIDITY_NAMES`` names each lens as chapter 6 does.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from . import attribution, filters, mask_geometry, masks
from .models import first_conv
from .verdicts import Estimate

__all__ = ["LENSES", "VALIDITY_NAMES", "filtered_score", "attribution_score", "filter_score", "mask_score",
           "mask_scores_equal_support", "MaskPairOrder", "mask_pair_orders", "lens_scores", "spearman",
           "permutation_p", "chance_share", "smallest_agreeing_rho", "pair_state", "STATES",
           "rank_agreement", "separated_pairs", "paired_difference"]

LENSES = ("filtered accuracy (A)", "OF attribution (A)", "first-layer filters (B)", "Fourier mask (C)")
# the same analyses as rows of chapter 6's validity table (freqlib.validity.LENSES), where they are read as maps
VALIDITY_NAMES = dict(zip(LENSES, ("filtered accuracy", "occluded frequency", "first-layer filters", "Fourier mask")))


def filtered_score(curves: dict, boot) -> Estimate:
    """Low-pass minus high-pass area of :func:`freqlib.attribution.filtered_accuracy`
    curves (normalised areas, as :func:`~freqlib.attribution.curve_area`), with
    ``boot`` (a :func:`freqlib.verdicts.bootstrap`) over the images."""
    r = curves["radius"].double()
    y = curves["labels"][:, None]
    hits = {"low": (curves["low_pred"] == y).float(), "high": (curves["high_pred"] == y).float()}

    def stat(m):
        grid = r.to(m["low"].device, m["low"].dtype)
        return (torch.trapezoid(m["low"], grid, dim=-1) - torch.trapezoid(m["high"], grid, dim=-1)) / float(r[-1] - r[0])
    return boot(stat, hits)


def attribution_score(result: attribution.BandAttribution, boot) -> Estimate:
    """Minus the band centroid of the positive-normalised mean OF profile, over images."""
    return boot(lambda m: -attribution.band_centroid(attribution.positive_normalise(m["occ"].cpu())),
                {"occ": result.occlusion})


def filter_score(model, n_boot: int = 0, seed: int = 0) -> Estimate:
    """Minus the share of first-layer kernel power at radius >= ``filters.R_CUT``: each
    kernel's :func:`~freqlib.filters.high_frequency_ratio` weighted by its energy.

    ``n_boot > 0``: percentile interval over the first-layer kernels (resampled with
    replacement), which says how much the score depends on which kernels the network
    happened to learn; ``n_boot = 0``: the point value only (exact). The resampled kernel
    indices depend on ``seed`` only, so two networks with as many kernels get the same ones and
    kernel i of one is differenced against kernel i of the other: like with like where every stem
    starts from the same whitening filters (``freqlib.models.FastNet.init_whitening``)."""
    weight = first_conv(model)
    energy = filters.kernel_power(weight).sum((-2, -1)).detach().double().cpu()
    ratio = filters.high_frequency_ratio(weight).detach().double().cpu()
    value = -float((ratio * energy).sum() / energy.sum())
    if n_boot <= 0:
        return Estimate.exact(value)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(ratio), (n_boot, len(ratio)), generator=g)
    boot = -(ratio[idx] * energy[idx]).sum(1) / energy[idx].sum(1)
    return Estimate.from_boot(value, boot, over="first-layer kernels", n=len(ratio))


def mask_score(mask: torch.Tensor, n_boot: int, seed: int = 0) -> Estimate:
    """Minus :func:`freqlib.mask_geometry.radial_centroid` of the whole mask, interval over mask
    frequencies. Confounded with sparsity (a sparser mask keeping the lowest frequencies
    has a lower centroid whatever the network): rank with :func:`mask_scores_equal_support`."""
    return mask_geometry.bootstrap_centroid(mask, n_boot=n_boot, seed=seed).scaled(-1.0)


def mask_scores_equal_support(mask_of: dict[str, torch.Tensor], n_boot: int,
                              seed: int = 0) -> tuple[dict[str, Estimate], int]:
    """(name -> minus the radial centroid at equal support, the support size used).

    Every mask (symmetrised) is cut to as many frequencies as the sparsest of them keeps,
    its largest values staying (:func:`freqlib.masks.equal_support`, the cut of chapter 3's
    ``centroid_ratio_eq``); the centroids are bootstrapped over mask frequencies with one
    seed (paired resamples)."""
    sym = {n: masks.symmetrize(m.detach().float().cpu()) for n, m in mask_of.items()}
    support = {n: masks.kept_frequencies(m) for n, m in mask_of.items()}
    like = sym[min(support, key=support.get)]
    return ({n: mask_geometry.bootstrap_centroid(masks.equal_support(s, like), n_boot=n_boot, seed=seed).scaled(-1.0)
             for n, s in sym.items()}, min(support.values()))


def _side_of_one(e: Estimate) -> int:
    """+1: the interval lies below 1 (the first mask sits lower); -1: above 1; 0: it holds 1."""
    return 1 if e.high < 1 else -1 if e.low > 1 else 0


@dataclass(frozen=True)
class MaskPairOrder:
    """One pair of masks, sparser first, ordered at two cuts. Both are the radial centroid of
    the sparser mask over the denser one's (below 1: the sparser sits at lower frequencies):

    * ``common``: every compared mask cut to the smallest support among them
      (:func:`mask_scores_equal_support`, the cut this chapter ranks with);
    * ``own``: the denser cut to the sparser one's support (``own_support`` values),
      :func:`freqlib.mask_geometry.centroid_ratio_equal_support`, chapter 3's convention."""
    common: Estimate
    own: Estimate
    own_support: int

    @property
    def told_apart(self) -> bool:
        """Both cuts order the pair the same way, each with an interval excluding 1."""
        side = _side_of_one(self.common)
        return side != 0 and side == _side_of_one(self.own)

    @property
    def reversed(self) -> bool:
        """The two cuts' point values order the pair oppositely."""
        return (self.common.value - 1) * (self.own.value - 1) < 0


def mask_pair_orders(mask_of: dict[str, torch.Tensor], n_boot: int,
                     seed: int = 0) -> dict[tuple[str, str], MaskPairOrder]:
    """(sparser, denser) -> :class:`MaskPairOrder` for every pair of the masks of ``mask_of``.

    Which of two masks is the more low-frequency can depend on the support they are cut to;
    a pair counts as told apart only when the common cut and the pair's own cut agree
    (:attr:`MaskPairOrder.told_apart`). Every centroid is bootstrapped with ``seed``, so the
    ratios' replicates are paired."""
    common, _ = mask_scores_equal_support(mask_of, n_boot, seed)     # minus centroids: their ratio is the centroids'
    support = {n: masks.kept_frequencies(m) for n, m in mask_of.items()}
    out = {}
    for a, b in itertools.combinations(mask_of, 2):
        sparse, dense = (a, b) if support[a] <= support[b] else (b, a)
        ratio = Estimate.from_boot(common[sparse].value / common[dense].value,
                                   common[sparse].boot.double() / common[dense].boot.double(), over="mask frequencies")
        own = mask_geometry.centroid_ratio_equal_support(mask_of[sparse], mask_of[dense], n_boot, seed)
        out[sparse, dense] = MaskPairOrder(ratio, own, support[sparse])
    return out


def lens_scores(model, images: torch.Tensor, labels: torch.Tensor, boot, n_boot: int,
                seed: int = 0) -> dict[str, Estimate]:
    """The three per-network scores (all of ``LENSES`` but the mask, which is scored over the
    compared networks together by :func:`mask_scores_equal_support`): lens -> Estimate."""
    curves = attribution.filtered_accuracy(model, images, labels)
    occ = attribution.band_attribution(model, images)
    return dict(zip(LENSES, (filtered_score(curves, boot), attribution_score(occ, boot),
                             filter_score(model, n_boot, seed))))


def _ranks(t: torch.Tensor) -> torch.Tensor:
    """Average ranks (1-based; ties share their mean rank) along the first axis."""
    t = torch.as_tensor(t, dtype=torch.float64)
    less = (t.unsqueeze(0) < t.unsqueeze(1)).sum(1)
    equal = (t.unsqueeze(0) == t.unsqueeze(1)).sum(1)
    return less.double() + (equal.double() + 1) / 2


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rho of ``a`` and ``b`` along the first axis (models), batched over the rest:
    Pearson correlation of the average ranks (ties share their mean rank, as scipy's)."""
    ra, rb = _ranks(a), _ranks(b)
    ra, rb = ra - ra.mean(0), rb - rb.mean(0)
    return (ra * rb).sum(0) / ((ra ** 2).sum(0) * (rb ** 2).sum(0)).sqrt()


EXACT_UP_TO = 8          # models: 8! = 40,320 orderings enumerated; more are sampled


def _orderings(n: int, n_perm: int, seed: int) -> tuple[torch.Tensor, bool]:
    if n <= EXACT_UP_TO:
        return torch.tensor(list(itertools.permutations(range(n)))), True
    g = torch.Generator().manual_seed(seed)
    # all orderings in one draw: the ranks of i.i.d. uniforms are a uniform random permutation
    return torch.rand(n_perm, n, generator=g, dtype=torch.float64).argsort(1), False


def permutation_p(a, b, n_perm: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """(upper, lower) one-sided p-values of Spearman's rho of ``a`` and ``b`` (one value
    per model) under random rankings: the share of the orderings of ``b`` against ``a``
    whose rho is at least (upper) or at most (lower) the observed one.

    Exact up to ``EXACT_UP_TO`` models (all n! orderings, the observed one among them;
    ties handled by average ranks, so tied values permute as values); beyond, ``n_perm``
    random orderings with the add-one estimate. Four untied models: rho = 1 has p = 1/24."""
    a, b = torch.as_tensor(a, dtype=torch.float64), torch.as_tensor(b, dtype=torch.float64)
    if a.shape != b.shape or a.dim() != 1 or len(a) < 2:
        raise ValueError(f"permutation_p needs two 1-d score vectors of equal length >= 2, got "
                         f"{tuple(a.shape)} and {tuple(b.shape)}")
    observed = float(spearman(a, b))
    if math.isnan(observed):
        return 1.0, 1.0
    perms, exact = _orderings(len(a), n_perm, seed)
    rho = spearman(a[:, None].expand(-1, len(perms)), b[perms].T)
    eps = 1e-9
    up, low = int((rho >= observed - eps).sum()), int((rho <= observed + eps).sum())
    if exact:
        return up / len(perms), low / len(perms)
    return (1 + up) / (1 + len(perms)), (1 + low) / (1 + len(perms))


def chance_share(n: int, rho: float) -> float:
    """Share of the orderings of ``n`` untied models whose rho with a fixed ranking is at least ``rho``
    (exact up to ``EXACT_UP_TO`` models): how often random rankings reach ``rho``."""
    ranks = torch.arange(n, dtype=torch.float64)
    perms, _ = _orderings(n, 20_000, 0)
    return float((spearman(ranks[:, None].expand(-1, len(perms)), ranks[perms].T) >= rho - 1e-9).double().mean())


def smallest_agreeing_rho(n: int, alpha: float) -> tuple[float, float]:
    """(the smallest rho of ``n`` untied models whose upper p is <= ``alpha``, that p);
    (nan, smallest attainable p) when no rho reaches ``alpha``. What ``n`` models can show."""
    ranks = torch.arange(n, dtype=torch.float64)
    perms, _ = _orderings(n, 20_000, 0)
    rho = spearman(ranks[:, None].expand(-1, len(perms)), ranks[perms].T)
    best = (math.nan, 1.0)
    for r in sorted({round(float(v), 9) for v in rho}, reverse=True):
        p = float((rho >= r - 1e-9).double().mean())
        if p > alpha:
            return best if not math.isnan(best[0]) else (math.nan, float((rho >= 1 - 1e-9).double().mean()))
        best = (r, p)
    return best


# "not shown to agree" is no finding of disagreement: few models put every rho but the largest within chance
STATES = ("agree", "opposite", "undecided", "not shown to agree")


def pair_state(e: Estimate, p_upper: float, p_lower: float, agree_at: float, alpha: float) -> str:
    """Reading of one lens pair's rho (``e``, with its interval over the scores' resamples):

    * agree: beyond chance (upper permutation p <= ``alpha``) and the whole interval at or above ``agree_at``;
    * opposite: beyond chance in the other direction (lower p <= ``alpha``) and the whole interval below 0;
    * undecided: beyond chance at the point value, but the interval reaches past the threshold;
    * not shown to agree: the ranking is within what random rankings give (rho = 0 among them), so
      the test cannot tell it from chance; that is no evidence of disagreement (with four models
      only rho = 1 is beyond chance at ``alpha`` = 0.05).
    """
    if p_upper <= alpha:
        return "agree" if e.low >= agree_at else "undecided"
    if p_lower <= alpha:
        return "opposite" if e.high < 0 else "undecided"
    return "not shown to agree"


def _replicates(e: Estimate, n_boot: int) -> torch.Tensor:
    if e.boot is None or e.over == "exact":
        return torch.full((n_boot,), e.value, dtype=torch.float64)
    return e.boot.double()[:n_boot]


def rank_agreement(scores: dict[str, dict[str, Estimate]], lenses=LENSES) -> dict[tuple[str, str], Estimate]:
    """Spearman's rho between every pair of lenses over the models of ``scores``
    (model -> lens -> Estimate), with a percentile interval from the scores'
    bootstrap replicates (replicate b of every score taken together; an exact
    score is constant). Needs at least two models."""
    names = list(scores)
    if len(names) < 2:
        raise ValueError(f"rank agreement needs at least two models, got {names}")
    n_boot = min((len(e.boot) for s in scores.values() for e in s.values()
                  if e.boot is not None and e.over != "exact"), default=1)
    point = {l: torch.tensor([scores[n][l].value for n in names], dtype=torch.float64) for l in lenses}
    reps = {l: torch.stack([_replicates(scores[n][l], n_boot) for n in names]) for l in lenses}
    out = {}
    for i, a in enumerate(lenses):
        for b in lenses[i + 1:]:
            value = float(spearman(point[a], point[b]))
            boot = spearman(reps[a], reps[b])
            out[a, b] = Estimate.from_boot(value if not math.isnan(value) else 0.0, boot,
                                           over="images, kernels and mask frequencies", n=len(names))
    return out


def separated_pairs(scores: dict[str, dict[str, Estimate]], lens: str) -> tuple[int, int]:
    """(model pairs whose score difference under ``lens`` has an interval excluding 0,
    all model pairs). Replicates are paired as in :func:`rank_agreement`; an exact
    score separates every pair it does not tie (its uncertainty over training seeds
    is not in these intervals)."""
    names = list(scores)
    n_boot = min((len(scores[n][lens].boot) for n in names
                  if scores[n][lens].boot is not None and scores[n][lens].over != "exact"), default=1)
    decided = total = 0
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ea, eb = scores[a][lens], scores[b][lens]
            diff = Estimate.from_boot(ea.value - eb.value, _replicates(ea, n_boot) - _replicates(eb, n_boot))
            decided += diff.low > 0 or diff.high < 0
            total += 1
    return decided, total


def paired_difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with the interval of the replicate differences: ``a`` and ``b`` bootstrapped with
    the same seed over the same sample (images, kernels or mask frequencies), hence paired."""
    if a.boot is None or b.boot is None or len(a.boot) != len(b.boot):
        raise ValueError("paired_difference needs two estimates with as many bootstrap replicates")
    return Estimate.from_boot(a.value - b.value, a.boot.double() - b.boot.double(), over=a.over, n=a.n)
