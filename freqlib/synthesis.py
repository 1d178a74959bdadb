"""Chapter 4's synthesis: four lenses turned into low-frequency-bias scores, each
with its interval, and how far the lenses' rankings of the models agree.

Every score is oriented so that **larger = more low-frequency bias**:

==========================  =====  =====================================================  ==================
lens                        paper  score                                                  interval over
==========================  =====  =====================================================  ==================
filtered-input accuracy     A      area under the low-pass curve minus the high-pass one  test images
occluded-frequency (OF)     A      minus the attribution-weighted mean DCT band           test images
first-layer filters         B      minus the energy share of kernels at radius >= R_CUT   none (one network)
Fourier mask                C      minus the energy-weighted mean radius of the mask      mask frequencies
==========================  =====  =====================================================  ==================

The two image-based scores are bootstrapped with the same seed on the same
images, so their replicates are paired; :func:`rank_agreement` uses the
replicates to put an interval on each Spearman correlation between lenses.
"""
from __future__ import annotations

import math

import torch

from . import attribution, filters, masks
from .models import first_conv
from .verdicts import Estimate

__all__ = ["LENSES", "filtered_score", "attribution_score", "filter_score", "mask_score", "lens_scores",
           "spearman", "rank_agreement", "separated_pairs"]

LENSES = ("filtered accuracy (A)", "OF attribution (A)", "first-layer filters (B)", "Fourier mask (C)")


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


def filter_score(model) -> Estimate:
    """Minus the share of first-layer kernel power at radius >= ``filters.R_CUT``: each
    kernel's :func:`~freqlib.filters.high_frequency_ratio` weighted by its energy (exact:
    one set of kernels, no sampling)."""
    weight = first_conv(model)
    energy = filters.kernel_power(weight).sum((-2, -1))
    return Estimate.exact(-float((filters.high_frequency_ratio(weight) * energy).sum() / energy.sum()))


def mask_score(mask: torch.Tensor, n_boot: int, seed: int = 0) -> Estimate:
    """Minus :func:`freqlib.masks.radial_centroid`, interval over mask frequencies."""
    return masks.bootstrap_centroid(mask, n_boot=n_boot, seed=seed).scaled(-1.0)


def lens_scores(model, images: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, boot, n_boot: int,
                seed: int = 0) -> dict[str, Estimate]:
    """The four scores of one network: ``LENSES`` -> :class:`~freqlib.verdicts.Estimate`."""
    curves = attribution.filtered_accuracy(model, images, labels)
    occ = attribution.band_attribution(model, images)
    return dict(zip(LENSES, (filtered_score(curves, boot), attribution_score(occ, boot), filter_score(model),
                             mask_score(mask, n_boot, seed))))


def spearman(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Spearman's rho of ``a`` and ``b`` along the first axis (models), batched over the rest:
    Pearson correlation of the ranks (ties broken by order; scores are continuous)."""
    ra, rb = (t.argsort(0).argsort(0).double() for t in (a, b))
    ra, rb = ra - ra.mean(0), rb - rb.mean(0)
    return (ra * rb).sum(0) / ((ra ** 2).sum(0) * (rb ** 2).sum(0)).sqrt()


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
                                           over="images and mask frequencies", n=len(names))
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
