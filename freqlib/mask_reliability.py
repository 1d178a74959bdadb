"""Does a learned Fourier mask hold what the network needs? (Paper C's claim C1.)

The network is evaluated through its mask, through the mask's complement, and
through masks of the same budget (:func:`freqlib.masks.matched_random_masks`:
the mask's values at random frequencies; :func:`freqlib.masks.annulus_shuffled_masks`:
shuffled within each annulus, so the radial profile stays too), all on the same
images. :func:`reliability_estimates` turns those paired 0/1 into bootstrap
intervals; a difference to the null picks *one* draw per replicate, so a mask
that is itself a draw of the null does not pass.
"""
from __future__ import annotations

import torch

from .evaluate import model_device
from .masks import complement, mask_correct, matched_random_masks, symmetrize
from .prose import listed
from .verdicts import Estimate, bootstrap, half_width

__all__ = [
    "reliability", "reliability_estimates", "pick_one", "CHANCE", "CHANCE_MARGIN", "at_chance",
    "unless_at_chance", "count_above", "ratio_power",
]


def reliability(model, mask: torch.Tensor, images: torch.Tensor, labels: torch.Tensor,
                n_random: int = 8, seed: int = 0) -> dict:
    """Per-image 0/1 of ``model`` unmasked, through ``mask``, through its complement, and
    through ``n_random`` :func:`~freqlib.masks.matched_random_masks` and their complements, and through
    ``n_random`` :func:`~freqlib.masks.annulus_shuffled_masks` (same radial profile) and their complements.

    Returns ``{"unmasked", "masked", "complement": (n,), "random", "random_complement",
    "radial", "radial_complement": (n, k)}`` (CPU), the paired samples of
    :func:`reliability_estimates`.
    """
    # masks go to the network's device once: a CPU mask would be copied at every batch
    device = model_device(model)
    out = {"unmasked": mask_correct(model, images, labels, None),
           "masked": mask_correct(model, images, labels, mask.to(device)),
           "complement": mask_correct(model, images, labels, complement(symmetrize(mask)).to(device))}
    for key, by_annulus in (("random", False), ("radial", True)):
        rand = matched_random_masks(mask, n_random, seed, by_annulus=by_annulus).to(device)
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


def pick_one(k: int, n_boot: int, seed: int):
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
CHANCE = 0.1
CHANCE_MARGIN = 0.05


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
    differences to *one* draw picked at random per replicate (``pick_one``), so their
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
        one = pick_one(s["radial"].shape[1], n_boot, seed)
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


def count_above(estimates, threshold: float = 0.0) -> str:
    """How many of ``estimates`` lie wholly above ``threshold`` (their criterion holds), and how many
    have no power (nan, :func:`unless_at_chance`): ``"1"`` or ``"0 (4 no power)"``."""
    es = list(estimates)
    no_power = sum(e.is_nan for e in es)
    return f"{sum(e.low > threshold for e in es)}" + (f" ({no_power} no power)" if no_power else "")


def ratio_power(judged: dict, per_seed: dict, n_images: int, bar: float = 0.98,
                paper: tuple = (89.20, 89.56)) -> str:
    """What C1's first criterion (masked / unmasked accuracy above ``bar``) can resolve at ``n_images``.

    ``judged``: network -> the ratio the criterion reads (pooled over the training seeds);
    ``per_seed``: network -> the seeds' own ratios. The criterion holds only where the interval's
    low end clears ``bar``, so only where the ratio is at least about ``bar`` + its half-width; the
    sentence gives that range over the networks and where the paper's in-sample ratio
    (``paper``: masked, unmasked accuracy of its standard network) would fall. With more than one
    seed it says, per network, whether pooling narrowed or widened one seed's interval (pooling
    averages the seeds' image noise and adds their spread, a Student-t term)."""
    hj = {n: half_width(e) for n, e in judged.items()}
    lo, hi = min(hj.values()), max(hj.values())
    ratio = paper[0] / paper[1]
    low_bar, high_bar = bar + lo, bar + hi
    # as many decimals as it takes to tell the paper's ratio from the lowest bar (they can differ in the fifth)
    d = next((d for d in range(3, 7) if f"{ratio:.{d}f}" != f"{low_bar:.{d}f}"), 6)
    k = max(len(v) for v in per_seed.values())
    what = ("the ratio C1 judges has" if k == 1 else
            f"the ratios C1 judges, pooled over {k} training seeds, have")
    where = (("just below" if low_bar - ratio < 0.001 else "below") + " the lowest of these, would come out "
             "undecided at this number of images" if ratio < low_bar else
             "would hold at this number of images" if ratio >= high_bar else
             "would hold or come out undecided at this number of images, depending on the width")
    text = (f"At {n_images} held-out images {what} a 95% interval ±{lo:.{d}f} to ±{hi:.{d}f} wide, depending on "
            f"the network, so the first criterion of C1 can hold only where the ratio itself is at least about "
            f"{low_bar:.{d}f} to {high_bar:.{d}f}; the paper's own ratio, {paper[0]:.2f} / {paper[1]:.2f} = "
            f"{ratio:.{d}f}, {where}")
    if k == 1:
        return text
    single = [half_width(e) for v in per_seed.values() for e in v]
    mean_single = {n: sum(map(half_width, per_seed[n])) / len(per_seed[n]) for n in judged}
    moved = [(verb, ns) for verb, narrower in (("narrowed", True), ("widened", False))
             if (ns := [n for n in judged if (hj[n] < mean_single[n]) == narrower])]
    return (text + f". One seed's ratio alone has an interval ±{min(single):.{d}f} to ±{max(single):.{d}f} wide: "
            "pooling averages the seeds' image noise and adds their spread (a Student-t term), which here "
            + " and ".join(f"{verb} {'it' if i else 'the interval'} for {listed(ns)}" for i, (verb, ns) in enumerate(moved))
            + " (against each network's mean width over its seeds)")

