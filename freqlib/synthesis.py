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

"First-layer" means the first layer training shaped: the stem, except in an airbench
network, whose whitening stem is frozen; there the filter score reads the next
convolution (:func:`freqlib.airbench.filter_lens_conv`).

The mask ranking depends on the support the masks are cut to, so
:func:`mask_pair_orders` also orders every pair of masks at the pair's own equal
support (chapter 3's convention) and tells a pair apart only where both cuts agree.

The two image-based scores are bootstrapped with the same seed on the same
images, so their replicates are paired; :func:`rank_agreement` uses the
replicates to put an interval on each Spearman correlation between lenses, and
:func:`permutation_p` gives each correlation its exact chance level (all
orderings of the models), which :func:`pair_state` requires before it reads
two lenses as agreeing. ``VALIDITY_NAMES`` names each lens as chapter 6 does.

With several training seeds per model, :func:`pool_seeds` averages each model's scores over its
seeds and adds the seeds' spread to every replicate, and :func:`pool_mask_orders` pools the pairs of
masks; everything downstream reads the pooled scores as it reads one seed's.

A lens does not order the pairs of models it does not tell apart (:func:`told_apart_pairs`,
:func:`mask_told_apart`): :func:`shared_ranks` gives such models a shared rank, and
:func:`rho_span` says how far a correlation moves over the orders they leave open.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass

import torch

from . import attribution, filters, mask_geometry, masks
from .airbench import filter_lens_conv, learned_first_layer
from .verdicts import Estimate, pool

__all__ = ["LENSES", "VALIDITY_NAMES", "filtered_score", "attribution_score", "filter_score", "mask_score",
           "mask_scores_equal_support", "MaskPairOrder", "mask_pair_orders", "lens_scores", "spearman",
           "permutation_p", "chance_share", "smallest_agreeing_rho", "pair_state", "STATES",
           "rank_agreement", "told_apart_pairs", "separated_pairs", "paired_difference", "mask_told_apart",
           "shared_ranks", "rho_span", "reordered_pairs", "reorder_text", "open_rho_text", "odd_lens_text",
           "top_model_entry", "holm_adjust", "pair_family", "filter_proportion", "family_chance", "pairs_phrase",
           "VALIDITY_MEANINGS", "state_legend", "mask_accuracy_text", "pool_seeds", "pool_mask_orders", "pair_readings", "told_by_lens"]

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


def filter_score(model, n_boot: int = 0, seed: int = 0, layer=None) -> Estimate:
    """Minus the share of first-layer kernel power at radius >= ``filters.R_CUT``: each
    kernel's :func:`~freqlib.filters.high_frequency_ratio` weighted by its energy.

    ``n_boot > 0``: percentile interval over the first-layer kernels (resampled with
    replacement), which says how much the score depends on which kernels the network
    happened to learn; ``n_boot = 0``: the point value only (exact). The resampled kernel
    indices depend on ``seed`` only, so two networks with as many kernels get the same ones and
    kernel i of one is differenced against kernel i of the other: like with like where every stem
    starts from the same whitening filters (``freqlib.models.FastNet.init_whitening``), or, for
    airbench's first learned convolution, from the same start (its first 24 kernels the identity,
    the others the same seeded random weights in every network). ``layer``: another
    convolution of ``model`` to read (a chapter's deviations table reads the frozen stem with it)."""
    weight = filter_lens_conv(model) if layer is None else layer
    energy = filters.kernel_power(weight).sum((-2, -1)).detach().double().cpu()
    ratio = filters.high_frequency_ratio(weight).detach().double().cpu()
    value = -float((ratio * energy).sum() / energy.sum())
    if n_boot <= 0:
        return Estimate.exact(value)
    g = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(ratio), (n_boot, len(ratio)), generator=g)
    boot = -(ratio[idx] * energy[idx]).sum(1) / energy[idx].sum(1)
    over = "first-layer kernels" if layer is not None or learned_first_layer(model) else \
        "kernels of the first learned layer"
    return Estimate.from_boot(value, boot, over=over, n=len(ratio))


def filter_proportion(model) -> float:
    """Paper B's own statistic of the layer :func:`filter_score` reads: the share of its kernels whose
    high-frequency ratio exceeds ``filters.THRESHOLD`` (a count; the score weighs every kernel's
    ratio by its energy instead)."""
    return float(filters.classify(filter_lens_conv(model)).float().mean())


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


def holm_adjust(pvalues: dict) -> dict:
    """Holm's step-down adjusted p-values of a family of tests (key -> p): a test is rejected at
    family-wise level alpha when its adjusted p is <= alpha. The smallest of m p-values is
    multiplied by m, the next by m - 1, ..., each kept at least as large as the one before."""
    order = sorted(pvalues, key=pvalues.get)
    m, out, running = len(order), {}, 0.0
    for i, k in enumerate(order):
        running = max(running, min(1.0, (m - i) * pvalues[k]))
        out[k] = running
    return out


def family_chance(n_models: int, n_lenses: int, alpha: float, n_sim: int = 20_000, seed: int = 0) -> float:
    """Share of draws of independent random rankings of ``n_models`` models, one per lens, in which
    some pair of the ``n_lenses`` lenses reads beyond chance at ``alpha`` without correction (its
    rho at or past the smallest one with a one-sided p <= ``alpha``, either sign): how often an
    uncorrected table of pairs shows an agreement, or an opposite order, that no lens measured."""
    rho_min, _ = smallest_agreeing_rho(n_models, alpha)
    if rho_min != rho_min:
        return 0.0
    g = torch.Generator().manual_seed(seed)
    ranks = torch.rand(n_lenses, n_models, n_sim, generator=g, dtype=torch.float64).argsort(1).double()
    hit = torch.zeros(n_sim, dtype=torch.bool)
    for a, b in itertools.combinations(range(n_lenses), 2):
        hit |= spearman(ranks[a], ranks[b]).abs() >= rho_min - 1e-9
    return float(hit.double().mean())


def pair_family(perm: dict) -> dict:
    """Holm-adjusted (upper, lower) permutation p of every lens pair: the family is all the pairs'
    one-sided tests in both directions (2 per pair), since a reader picks the pairs that agree or
    oppose among them."""
    flat = holm_adjust({(k, d): p[d] for k, p in perm.items() for d in (0, 1)})
    return {k: (flat[k, 0], flat[k, 1]) for k in perm}


# "not shown to agree" is no finding of disagreement: few models put every rho but the largest within chance
STATES = ("agree", "opposite", "undecided", "not shown to agree")


def pair_state(e: Estimate, p_upper: float, p_lower: float, agree_at: float, alpha: float) -> str:
    """Reading of one lens pair's rho (``e``, with its interval over the scores' resamples), given its
    permutation p-values (chapter 4 passes them Holm-adjusted over every pair: :func:`pair_family`):

    * agree: beyond chance (upper permutation p <= ``alpha``) and the whole interval at or above ``agree_at``;
    * opposite: beyond chance in the other direction (lower p <= ``alpha``) and the whole interval below 0;
    * undecided: beyond chance at the point value, but the interval reaches past the threshold;
    * not shown to agree: the ranking is within what random rankings give (rho = 0 among them), so
      the test cannot tell it from chance; that is no evidence of disagreement (with four models
      only rho = 1 is beyond chance at ``alpha`` = 0.05 for one pair, and none for six pairs together).
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


def pair_readings(scores: dict[str, dict[str, Estimate]], lenses, agree_at: float, alpha: float) -> tuple[dict, ...]:
    """(rho, p, Holm-adjusted p, reading), each keyed by pair of lenses: :func:`rank_agreement`'s rho,
    :func:`permutation_p` of the point values' orders (both one-sided p), :func:`pair_family` over
    every pair, and the :func:`pair_state` they give with ``agree_at`` and ``alpha``."""
    rho = rank_agreement(scores, lenses)
    point = {l: [e[l].value for e in scores.values()] for l in lenses}
    perm = {k: permutation_p(point[k[0]], point[k[1]]) for k in rho}
    holm = pair_family(perm)
    return rho, perm, holm, {k: pair_state(e, *holm[k], agree_at, alpha) for k, e in rho.items()}


def told_apart_pairs(scores: dict[str, dict[str, Estimate]], lens: str) -> dict[frozenset, bool]:
    """{model a, model b} -> whether the score difference under ``lens`` has an interval excluding 0.
    Replicates are paired as in :func:`rank_agreement`; an exact score tells apart every pair it
    does not tie. The spread over training seeds is in these intervals only for scores pooled
    by :func:`pool_seeds`."""
    names = list(scores)
    n_boot = min((len(scores[n][lens].boot) for n in names
                  if scores[n][lens].boot is not None and scores[n][lens].over != "exact"), default=1)
    out = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            ea, eb = scores[a][lens], scores[b][lens]
            diff = Estimate.from_boot(ea.value - eb.value, _replicates(ea, n_boot) - _replicates(eb, n_boot))
            out[frozenset((a, b))] = bool(diff.low > 0 or diff.high < 0)
    return out


def told_by_lens(scores: dict[str, dict[str, Estimate]], mask_orders: dict[tuple[str, str], MaskPairOrder],
                 lenses=LENSES) -> dict[str, dict[frozenset, bool]]:
    """lens -> {model a, model b} -> told apart: :func:`told_apart_pairs` for every lens but the
    mask's, which tells a pair apart only where both cuts of ``mask_orders`` agree (:func:`mask_told_apart`)."""
    mask = LENSES[3]
    return {l: mask_told_apart(mask_orders) if l == mask else told_apart_pairs(scores, l) for l in lenses}


def separated_pairs(scores: dict[str, dict[str, Estimate]], lens: str) -> tuple[int, int]:
    """(model pairs whose score difference under ``lens`` has an interval excluding 0,
    all model pairs): :func:`told_apart_pairs` counted."""
    told = told_apart_pairs(scores, lens)
    return sum(told.values()), len(told)


def paired_difference(a: Estimate, b: Estimate) -> Estimate:
    """``a - b`` with the interval of the replicate differences: ``a`` and ``b`` bootstrapped with
    the same seed over the same sample (images, kernels or mask frequencies), hence paired."""
    if a.boot is None or b.boot is None or len(a.boot) != len(b.boot):
        raise ValueError("paired_difference needs two estimates with as many bootstrap replicates")
    return Estimate.from_boot(a.value - b.value, a.boot.double() - b.boot.double(), over=a.over, n=a.n)


def pool_seeds(per_seed: list[dict[str, dict[str, Estimate]]], seed: int = 0) -> dict[str, dict[str, Estimate]]:
    """model -> lens -> score over training seeds (``per_seed``: one model -> lens -> Estimate per seed):
    the mean of the seeds' scores, its replicates adding the seeds' spread to the sampling error.

    Replicate b averages the seeds' replicate b (resamples paired across models stay paired) and
    adds a draw of the seeds' spread, sum_s g_bs (v_s - mean) / sqrt((k - 1) k) times
    sqrt((k - 1) / chi2_{k-1}): the standard error of the mean times a Student-t draw, as
    :func:`freqlib.verdicts.pool` adds. The weights g are drawn once per model and shared by its
    lenses, so a seed whose network moves two lenses moves both replicates; different models
    (separate training runs) get independent draws, so a difference between models carries
    both models' spread. One seed: the scores as they are."""
    if not per_seed:
        raise ValueError("pool_seeds needs the scores of at least one training seed")
    if len(per_seed) == 1:
        return per_seed[0]
    layout = {n: tuple(lens) for n, lens in per_seed[0].items()}
    if any({n: tuple(lens) for n, lens in p.items()} != layout for p in per_seed):
        raise ValueError("pool_seeds: every seed must score the same models with the same lenses")
    k, out = len(per_seed), {}
    for i, name in enumerate(layout):
        ests = {lens: [p[name][lens] for p in per_seed] for lens in layout[name]}
        n_boot = max((len(e.boot) for es in ests.values() for e in es if e.boot is not None), default=2000)
        gen = torch.Generator().manual_seed(seed * 100_003 + i)
        weights = torch.randn(n_boot, k, generator=gen, dtype=torch.float64)
        t_scale = 1 / (torch.randn(n_boot, k - 1, generator=gen, dtype=torch.float64) ** 2).mean(1).sqrt()
        out[name] = {}
        for lens, es in ests.items():
            if any(e.is_nan for e in es):
                out[name][lens] = Estimate.no_power(es[0])
                continue
            m = min((len(e.boot) for e in es if e.boot is not None and e.over != "exact"), default=n_boot)
            values = torch.tensor([e.value for e in es], dtype=torch.float64)
            images = torch.stack([_replicates(e, m) for e in es]).mean(0)
            spread = weights[:m] @ (values - values.mean()) / math.sqrt((k - 1) * k) * t_scale[:m]
            over = f"{k} seeds" + ("" if es[0].over == "exact" else f" × {es[0].over}")
            out[name][lens] = Estimate.from_boot(float(values.mean()), images + spread, over=over, n=es[0].n)
    return out


def pool_mask_orders(per_seed: list[dict[tuple[str, str], MaskPairOrder]]) -> dict[tuple[str, str], MaskPairOrder]:
    """:func:`mask_pair_orders` of every training seed, pooled pair by pair (:func:`freqlib.verdicts.pool`
    of each cut's ratio). A pair keeps the first seed's orientation (its sparser mask first, and its
    ``own_support``); on a seed where the other mask is the sparser, that seed's ratios are inverted so
    every seed's ratio is the same mask's centroid over the other's."""
    if not per_seed:
        raise ValueError("pool_mask_orders needs the mask pair orders of at least one training seed")
    if len(per_seed) == 1:
        return per_seed[0]
    inverse = lambda e: Estimate.from_boot(1 / e.value, 1 / e.boot.double(), over=e.over, n=e.n)
    out = {}
    for i, (a, b) in enumerate(per_seed[0]):
        common, own = [], []
        for orders in per_seed:
            o, flip = (orders[a, b], False) if (a, b) in orders else (orders[b, a], True)
            common.append(inverse(o.common) if flip else o.common)
            own.append(inverse(o.own) if flip else o.own)
        out[a, b] = MaskPairOrder(pool(common, seed=i), pool(own, seed=i), per_seed[0][a, b].own_support)
    return out


def mask_told_apart(orders: dict[tuple[str, str], MaskPairOrder]) -> dict[frozenset, bool]:
    """{mask a, mask b} -> :attr:`MaskPairOrder.told_apart`, for :func:`shared_ranks` and :func:`rho_span`."""
    return {frozenset(k): o.told_apart for k, o in orders.items()}


def _above(values: dict[str, float], told: dict[frozenset, bool], i: str) -> int:
    return sum(told[frozenset((i, j))] and values[j] > values[i] for j in values if j != i)


def shared_ranks(values: dict[str, float], told: dict[frozenset, bool]) -> dict[str, float]:
    """Ranks by point value (1 = largest) in which a pair ``told`` does not tell apart counts half a
    rank each way: 1 + the models told apart above, + 1/2 for every model not told apart (each
    such pair ordered by a coin, the mean rank). A group not told apart from each other and told
    apart alike from every other model gets its average rank; two models not told apart can still
    differ when they differ in what else they are told apart from. With every pair told apart
    these are the ordinary ranks."""
    return {i: 1 + _above(values, told, i) + 0.5 * sum(not told[frozenset((i, j))] for j in values if j != i)
            for i in values}


def rho_span(a: dict[str, float], b: dict[str, float], b_told: dict[frozenset, bool]) -> tuple[float, float]:
    """(smallest, largest) Spearman rho of ``a``'s point values with every order of ``b``'s models
    that keeps each pair ``b_told`` tells apart in its point-value order: how far rho moves over the
    orders lens b leaves open. Enumerated up to ``EXACT_UP_TO`` models; (nan, nan) beyond."""
    names = list(b)
    n = len(names)
    if n > EXACT_UP_TO:
        return math.nan, math.nan
    va = torch.tensor([a[m] for m in names], dtype=torch.float64)
    perms, _ = _orderings(n, 0, 0)                # perms[k, r] = the model at position r (0 = largest)
    position = perms.argsort(1)                   # position[k, i] of model i
    keep = torch.ones(len(perms), dtype=torch.bool)
    for i, j in itertools.combinations(range(n), 2):
        if b_told[frozenset((names[i], names[j]))] and b[names[i]] != b[names[j]]:
            first, second = (i, j) if b[names[i]] > b[names[j]] else (j, i)
            keep &= position[:, first] < position[:, second]
    scores = -position[keep].double().T           # larger score = earlier position
    rho = spearman(va[:, None].expand(-1, scores.shape[1]), scores)
    return float(rho.min()), float(rho.max())


def reordered_pairs(before: dict[str, float], after: dict[str, float]) -> list[tuple[str, str]]:
    """Pairs of models whose point values order them oppositely in ``before`` and ``after``."""
    return [(a, b) for a, b in itertools.combinations(before, 2)
            if (before[a] - before[b]) * (after[a] - after[b]) < 0]


def _vs(pairs) -> str:
    return ", ".join(f"{a} vs {b}" for a, b in pairs)


def reorder_text(before: dict[str, float], after: dict[str, float], told: dict[frozenset, bool],
                 lens: str = "this lens") -> str:
    """Which pairs a change of scores reorders and whether ``told`` tells them apart: the pairs that
    drive any change of a rank correlation with these scores."""
    moved = reordered_pairs(before, after)
    if not moved:
        return "the ranking is the same"
    loose = [p for p in moved if not told[frozenset(p)]]
    if len(loose) == len(moved):
        return f"the change comes only from {_vs(moved)}, which {lens} does not tell apart"
    firm = [p for p in moved if told[frozenset(p)]]
    return f"the ranking changes in {_vs(firm)} (told apart)" + (f" and {_vs(loose)} (not told apart)" if loose else "")


def open_rho_text(lens: str, values: dict[str, dict[str, float]], told: dict[frozenset, bool], others) -> str:
    """How far rho of each lens of ``others`` with ``lens`` moves over the orders of the pairs ``lens``
    does not tell apart (:func:`rho_span`; ``values``: lens -> model -> point value)."""
    names = list(values[lens])
    untold = [(a, b) for a, b in itertools.combinations(names, 2) if not told[frozenset((a, b))]]
    if not untold:
        return f"{lens} tells every pair of models apart, so each ρ with it stands in its one order"
    parts = []
    for other in others:
        lo, hi = rho_span(values[other], values[lens], told)
        point = float(spearman(torch.tensor([values[other][n] for n in names], dtype=torch.float64),
                               torch.tensor([values[lens][n] for n in names], dtype=torch.float64)))
        parts.append(f"{other}: not enumerated (more than {EXACT_UP_TO} models)" if lo != lo else
                     f"{other} {point:.2f} in every such order" if f"{lo:.2f}" == f"{hi:.2f}" else
                     f"{other} {lo:.2f} to {hi:.2f} ({point:.2f} in the point values' order)")
    return (f"over the orders {lens} leaves open ({_vs(untold)}: not told apart), ρ with it is "
            + ", ".join(parts))


def odd_lens_text(mean_rho: dict[str, float], separated: dict[str, tuple[int, int]], beyond_chance: bool) -> str:
    """'The lens(es) least in line with the others is/are ...': the smallest mean rho with the other
    lenses, every lens tied there named (none when all tie); ``beyond_chance`` False adds that these
    are point values of rhos none of which is beyond chance."""
    low = min(mean_rho.values())
    odd = [l for l in mean_rho if abs(mean_rho[l] - low) < 1e-9]
    told = [f"{l} ({separated[l][0]} of {separated[l][1]} model pairs told apart)" for l in odd]
    noisy = all(separated[l][0] < separated[l][1] / 2 for l in odd)
    if len(odd) == len(mean_rho) > 1:
        return (f"No lens is less in line with the others than the rest: all {len(odd)} tie at mean ρ {low:.2f} with "
                "the others" + (" (point values; no pair is beyond chance)" if not beyond_chance else ""))
    head = (f"The lens least in line with the others is {told[0]}, mean ρ with the others {low:.2f}" if len(odd) == 1
            else f"The lenses least in line with the others, tied at mean ρ {low:.2f} with the others, are "
                 + ", ".join(told[:-1]) + f" and {told[-1]}")
    return (head + (" (point values; no pair is beyond chance)" if not beyond_chance else "")
            + (f"; {'its' if len(odd) == 1 else 'their'} scores tell fewer than half of the model pairs apart, so "
               "being the odd one says little" if noisy else ""))


def top_model_entry(lens: str, values: dict[str, float], told: dict[frozenset, bool], warn: str = "") -> str:
    """'lens: model' for the largest point value, with ``warn`` after the model (e.g. an unkept mask's ⚠)
    and '(not told apart from X, Y)' naming every model ``told`` does not tell from it, or '(told apart
    from no other model)' when it is told from none (naming the runner-up alone read as a near win)."""
    order = sorted(values, key=values.get, reverse=True)
    top = order[0]
    untold = [m for m in order[1:] if not told[frozenset((top, m))]]
    note = ("" if not untold else " (told apart from no other model)" if len(untold) == len(order) - 1
            else f" (not told apart from {', '.join(untold)})")
    return f"{lens}: {top}{warn}{note}"


def pairs_phrase(n: int, total: int) -> str:
    """Subject of 'are not shown to agree': 'All 6 pairs are', 'The other 3 pairs are', ..."""
    if n == total:
        return f"All {n} pairs are" if n != 1 else "The one pair is"
    if n == 0:
        return "No other pair is"
    return "The other pair is" if n == 1 else f"The other {n} pairs are"


# what each verdict of freqlib.verdicts.verdict means for chapter 6's validity criteria
VALIDITY_MEANINGS = {
    "reproduced": "both ranking rules (AUROC, margin) and the specificity rule hold (each whole interval past "
                  "its threshold)",
    "partly": "one ranking rule holds and the other fails, or both hold and the specificity rule fails",
    "not reproduced": "both ranking rules fail (each whole interval on the wrong side of its threshold), whatever "
                      "the specificity rule says: it guards a finding and cannot make one",
    "inconclusive": "an interval reaches across its threshold, and the rules above do not already decide",
}


def state_legend(words: dict[str, str]) -> str:
    """'found: every criterion holds ...; ...' for ``words`` (verdict -> table word, as
    ``freqlib.validity.STATE_WORDS``): the states of chapter 6's table defined."""
    return "; ".join(f"“{w}”: {VALIDITY_MEANINGS[v]}" for v, w in words.items())


def mask_accuracy_text(kept: bool, acc_masked: float, acc_unmasked: float, keep_ratio: float) -> str:
    """'yes: 0.912 / 0.915' or '⚠ no: 0.850 / 0.930 = 0.914 (< 0.99)': masked over unmasked accuracy on the
    mask-training images (``freqlib.mask_training.MaskResult``), and how far an unkept mask falls short
    of the keep ratio (never rounded onto it)."""
    shown = f"{acc_masked:.3f} / {acc_unmasked:.3f}"
    if kept:
        return f"yes: {shown}"
    ratio = acc_masked / acc_unmasked if acc_unmasked > 0 else math.nan
    if not ratio < keep_ratio:       # met only at epoch 1, which the rule does not count (or no accuracy)
        return f"⚠ no: {shown} (the keep ratio {keep_ratio:g} is counted from epoch 2 on)"
    digits = 3
    while digits < 8 and round(ratio, digits) >= keep_ratio:
        digits += 1
    return f"⚠ no: {shown} = {ratio:.{digits}f} (< {keep_ratio:g})"
