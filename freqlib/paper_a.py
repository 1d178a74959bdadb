"""Paper A (Wang et al. 2020, "Towards frequency-based explanation for robust
CNN") as three claims with interval-judged criteria, and the per-image
evidence behind every number.

The criteria live here, not in the chapter, so that the tests judge exactly
the chapter's criteria on models with a known answer (planted-frequency
data, constant models). Every number is a function of *means over images*,
so :func:`freqlib.verdicts.bootstrap` puts a 95% interval on it; numbers that
compare two models or a measurement with its null resample the same images
for both (paired).

Evidence (per-image arrays, one dict per number):

==============================  =================================================================
number                          per-image arrays                      statistic of their means
==============================  =================================================================
st_minus_at_high_kept           st_upper, st_total, at_upper, ...     kept(ST) - kept(AT), kept = acc(high-passed at
                                (correct on high-passed r = R_HIGH,   R_HIGH) / acc(clean), both under the same
                                correct on clean, per model)          rescaling convention
st_of_upper_over_norm           of, norm, energy (N, 32)              AC upper share(of) - AC upper share(norm):
                                                                      bands 1..31 only, norm = L2 norm of each band
                                                                      of the same images (band-neutral null)
<attack>_st_upper_over_null     upper, total, null_upper, null_total  share(delta) - share(null) (SimBA's and
                                                                      Square's are descriptive: see
                                                                      :data:`DESCRIPTIVE_ONLY`)
pgd_st_minus_at_upper           st_upper, st_total, at_upper, ...     share(vs ST) - share(vs AT)
at_minus_st_of_centroid         st, at (N, 32) OF                     centroid(AT) - centroid(ST), bands 0..31 (the
                                                                      same over bands 1..31 is shown, not judged:
                                                                      :func:`of_centroid`)
at_minus_st_low_small           st, at correct (N,)                   acc(AT) - acc(ST)
==============================  =================================================================

Shares are of the positive-normalised mean OF profile over bands 1..31
(attribution; band 0, the mean colour, left out of both the attribution and
its null) or of the summed DCT energy with each image's mean colour removed
(perturbations).

The A1 attribution null (revised 2026-11-24) is the attribution of a
network with no band preference, on the same images (paired): to first order
OF[k] = grad z . x_k, so a network whose gradient favours no band loses, when
band k is removed, in proportion to the size (L2 norm) of what is removed,
||x_k||. That weighting is one heuristic choice: with gradient signs unrelated to
the image OF[k] has mean 0 and only its spread scales with ||x_k||, while a
gradient aligned in sign with the image would give the L1 norm, which weights the
upper bands (more coefficients) more. It respects the images' falling spectrum without adopting it (an
attribution proportional to the band's *energy* ||x_k||^2 would be a network
whose sensitivity itself falls like the images' spectrum, a low-frequency
preference; that share is shown, not judged). The band-shuffled null it
replaces expected ~50% of the attribution in bands k >= 16, where natural
images hold ~5% of their energy, so no model of natural images could pass
it (:data:`OLD_STATISTICS`).
"""
from __future__ import annotations

import math

import torch

from . import attacks, attribution, spectral
from .attribution import UPPER_BAND, band_centroid, positive_normalise, upper_share
from .verdicts import PTS, Claim, Criterion, Estimate, direction_text

__all__ = ["claims", "STATISTICS", "DESCRIPTIVE", "DESCRIPTIVE_ONLY", "ATTACKS", "R_HIGH", "SQUARE_ACCEPT",
           "SQUARE_ACCEPT_RANGE", "NUMBER_LABELS", "label", "numbers", "filtered_evidence", "attribution_evidence",
           "perturbation_evidence", "pair_evidence", "null_of", "attack_all", "attack_evidence", "collect",
           "ours_text", "OLD_STATISTICS", "ac_upper_share", "of_centroid", "criterion_radii", "fmt",
           "image_band_energy", "image_band_norm", "filtered_reading", "near_bounds_share", "bounds",
           "sign_patterns", "sign_pattern_text",
           "square_prior", "relative_upper", "low_area_evidence", "direction_text", "heat_per_image",
           "heat_evidence", "curve_lead_text", "heat_trade_text", "high_pass_shares", "jpeg_subsets",
           "per_image_profiles", "per_image_evidence", "REFERENCE_NORMALISE", "REFERENCE_PGD",
           "reference_pgd_pixels", "reference_clip_change"]

PAPER = "Z. Wang et al. 2020"      # not H. Wang et al. 2020 (HFC), whose filter (and rescaling) chapter 1 uses
ATTACKS = ("pgd", "simba", "square")     # the attacks whose spectra are measured for claim A2
# Numbers measured and shown but not judged: Square's spectrum against its own prior
# depends on how many of its proposals were accepted, which the attack does not record.
# SimBA-pixel's (revised 2026-11-24): its positions are random, the model only chooses signs and
# acceptance, so its spectrum is set by its step distribution and the comparison has no power.
DESCRIPTIVE_ONLY = ("simba_st_upper_over_null", "square_st_upper_over_null")
# The DFT radius that matches DCT band 16 (a DCT index k is k/2 DFT frequencies):
# the A1 accuracy criterion calls "high" what the attribution criterion does.
R_HIGH = 8
SQUARE_ACCEPT = 0.5                        # the coin of Square's prior null (see attacks.null_square)
SQUARE_ACCEPT_RANGE = (0.05, 0.2, 0.5, 1.0)  # the coins shown beside it


def _share(m, up="upper", tot="total"):
    return m[up] / m[tot]


def _of_upper(p):
    return upper_share(positive_normalise(p))


def _from_band(p, first: int):
    """``p`` with the bands below ``first`` set to 0 (the band indices keep their meaning)."""
    if not first:
        return p
    p = p.clone()
    p[..., :first] = 0
    return p


def ac_upper_share(p):
    """Upper share of a positive-normalised mean profile over bands 1..K-1 (band 0 set to 0)."""
    return upper_share(positive_normalise(_from_band(p, 1)))


def per_image_profiles(profiles, first: int = 0):
    """Paper A's VGG notebook's reading of OF profiles (``vgg_attribution/freq_attr.ipynb``): each
    image's (N, K) profile clipped at 0 (plus 1e-16, as there) and scaled to sum 1 before the mean,
    so every image weighs alike; the criteria instead normalise the mean profile, where images with
    large logit changes weigh more. Bands below ``first`` are set to 0 first."""
    p = _from_band(torch.as_tensor(profiles, dtype=torch.float64), first).clamp(min=0) + 1e-16
    return p / p.sum(-1, keepdim=True)


def per_image_evidence(evidence: dict) -> dict:
    """A1's attribution and A3's centroid evidence (:func:`attribution_evidence`) with every image's
    profile normalised first (:func:`per_image_profiles`; A1 over bands 1..K-1, as its criterion):
    the same statistics, applied to the mean of these rows, read normalise-then-average."""
    a1, a3 = evidence["st_of_upper_over_norm"], evidence["at_minus_st_of_centroid"]
    return {"st_of_upper_over_norm": {k: per_image_profiles(v, 1) for k, v in a1.items()},
            "at_minus_st_of_centroid": {k: per_image_profiles(v) for k, v in a3.items()}}


# The reference's white-box attack (vgg_attack_CIFAR/attack_analysis.py): advertorch's LinfPGDAttack,
# eps 0.15 and 40 steps of 0.01 with a random start, on inputs normalised with this mean and std,
# and clip_min=0, clip_max=1 applied to those normalised values.
REFERENCE_NORMALISE = ((0.4914, 0.4822, 0.4465), (0.2023, 0.1994, 0.2010))
REFERENCE_PGD = {"eps": 0.15, "alpha": 0.01, "steps": 40}


def reference_pgd_pixels() -> dict:
    """The reference's PGD budget in [0, 1] pixel units: its ε and step were in normalised units, so
    times each channel's std (0.030 and 0.002; one scalar, the channels' mean std, for torchattacks)."""
    s = sum(REFERENCE_NORMALISE[1]) / len(REFERENCE_NORMALISE[1])
    return {"eps": REFERENCE_PGD["eps"] * s, "alpha": REFERENCE_PGD["alpha"] * s, "steps": REFERENCE_PGD["steps"]}


def reference_clip_change(images: torch.Tensor) -> torch.Tensor:
    """What the reference's clip to [0, 1] in normalised units does to (N, 3, H, W) images in pixels:
    each channel clamped to [mean, mean + std]. advertorch's perturbation includes this change, so
    the reference's x_adv - x is not bounded by ε."""
    mean, std = (torch.tensor(v, dtype=images.dtype, device=images.device).view(1, -1, 1, 1)
                 for v in REFERENCE_NORMALISE)
    return torch.minimum(torch.maximum(images, mean), mean + std) - images


def of_centroid(p, first: int = 0):
    """Centroid (attribution-weighted mean band) of the positive-normalised mean profile ``p``
    over bands ``first``..K-1. A3's criterion reads ``first=0``; ``first=1`` leaves out band 0
    (the mean colour), as A1's attribution criterion does, and is shown beside A3, not judged."""
    return band_centroid(positive_normalise(_from_band(p, first)))


# Each number is a function of resampled means (name -> (B, ...)) returning (B,).
STATISTICS = {
    "st_minus_at_high_kept": lambda m: _share(m, "st_upper", "st_total") - _share(m, "at_upper", "at_total"),
    "st_of_upper_over_norm": lambda m: ac_upper_share(m["of"]) - ac_upper_share(m["norm"]),
    **{f"{a}_st_upper_over_null": (lambda m: _share(m) - _share(m, "null_upper", "null_total")) for a in ATTACKS},
    "pgd_st_minus_at_upper": lambda m: _share(m, "st_upper", "st_total") - _share(m, "at_upper", "at_total"),
    "at_minus_st_of_centroid": lambda m: of_centroid(m["at"]) - of_centroid(m["st"]),
    "at_minus_st_low_small": lambda m: m["at"] - m["st"],
}
# The parts of each difference, for the prose and the `ours` strings (not judged).
DESCRIPTIVE = {
    "st_high_kept": ("st_minus_at_high_kept", lambda m: _share(m, "st_upper", "st_total")),
    "at_high_kept": ("st_minus_at_high_kept", lambda m: _share(m, "at_upper", "at_total")),
    "st_high_acc": ("st_minus_at_high_kept", lambda m: m["st_upper"]),
    "at_high_acc": ("st_minus_at_high_kept", lambda m: m["at_upper"]),
    "st_of_upper": ("st_of_upper_over_norm", lambda m: ac_upper_share(m["of"])),
    "st_norm_upper": ("st_of_upper_over_norm", lambda m: ac_upper_share(m["norm"])),
    "st_energy_upper": ("st_of_upper_over_norm", lambda m: ac_upper_share(m["energy"])),
    **{f"{a}_st_upper": (f"{a}_st_upper_over_null", _share) for a in ATTACKS},
    **{f"{a}_null_upper": (f"{a}_st_upper_over_null", lambda m: _share(m, "null_upper", "null_total"))
       for a in ATTACKS},
    "pgd_at_upper": ("pgd_st_minus_at_upper", lambda m: _share(m, "at_upper", "at_total")),
    "st_of_centroid": ("at_minus_st_of_centroid", lambda m: of_centroid(m["st"])),
    "at_of_centroid": ("at_minus_st_of_centroid", lambda m: of_centroid(m["at"])),
    # A3's centroid without band 0, whose size depends on where black is (A1 leaves it out): not judged
    "at_minus_st_of_centroid_1to31": ("at_minus_st_of_centroid",
                                      lambda m: of_centroid(m["at"], 1) - of_centroid(m["st"], 1)),
    "st_of_centroid_1to31": ("at_minus_st_of_centroid", lambda m: of_centroid(m["st"], 1)),
    "at_of_centroid_1to31": ("at_minus_st_of_centroid", lambda m: of_centroid(m["at"], 1)),
    "st_low_small": ("at_minus_st_low_small", lambda m: m["st"]),
    "at_low_small": ("at_minus_st_low_small", lambda m: m["at"]),
}

# The criteria before review, kept to measure what their revision changed (deviations table).
OLD_STATISTICS = {
    # A1 attribution, first version: OF share k>=16 (bands 0..31) minus its band-shuffled null
    "st_of_upper_over_shuffled": lambda m: _of_upper(m["of"]) - _of_upper(m["shuffled"]),
    # A1 accuracy, first version: high-pass accuracy minus the chance agreement of the predictions
    "high_over_chance": lambda m: m["correct"] - (m["pred"] * m["label"]).sum(-1),
}

# Readable names of the numbers, for the chapter's tables.
NUMBER_LABELS = {
    "st_minus_at_high_kept": f"A1: share of clean accuracy kept at high-pass r={R_HIGH}, ST − AT",
    "st_of_upper_over_norm": "A1: ST's OF share k≥16 − band-neutral null (bands 1–31)",
    "pgd_st_upper_over_null": "A2: PGD δ vs ST, share k≥16 − random-sign null",
    "simba_st_upper_over_null": "A2 (not judged): SimBA δ vs ST, share k≥16 − random-step null",
    "square_st_upper_over_null": "A2 (not judged): Square δ vs ST, share k≥16 − its prior",
    "pgd_st_minus_at_upper": "A2: PGD δ share k≥16, vs ST − vs AT",
    "at_minus_st_of_centroid": "A3: OF centroid, AT − ST",
    "at_minus_st_low_small": "A3: low-pass accuracy at r={r_small}, AT − ST",
    "st_high_kept": f"ST: share of clean accuracy kept, high-pass r={R_HIGH}",
    "at_high_kept": f"AT: share of clean accuracy kept, high-pass r={R_HIGH}",
    "st_high_acc": f"ST: accuracy on images high-passed at r={R_HIGH}",
    "at_high_acc": f"AT: accuracy on images high-passed at r={R_HIGH}",
    "st_of_upper": "ST: OF share k≥16 (bands 1–31)",
    "st_norm_upper": "band-neutral null (band norms): share k≥16 (bands 1–31)",
    "st_energy_upper": "images' energy share k≥16 (bands 1–31)",
    "pgd_st_upper": "PGD δ vs ST: share k≥16",
    "simba_st_upper": "SimBA δ vs ST: share k≥16",
    "square_st_upper": "Square δ vs ST: share k≥16",
    "pgd_null_upper": "random-sign null: share k≥16",
    "simba_null_upper": "random-step null: share k≥16",
    "square_null_upper": "Square's prior: share k≥16",
    "pgd_at_upper": "PGD δ vs AT: share k≥16",
    "st_of_centroid": "ST: OF centroid",
    "at_of_centroid": "AT: OF centroid",
    "at_minus_st_of_centroid_1to31": "A3 (not judged): OF centroid over bands 1–31, AT − ST",
    "st_of_centroid_1to31": "ST: OF centroid over bands 1–31 (not judged)",
    "at_of_centroid_1to31": "AT: OF centroid over bands 1–31 (not judged)",
    "st_low_small": "ST: low-pass accuracy at r={r_small}",
    "at_low_small": "AT: low-pass accuracy at r={r_small}",
}


def label(key: str, r_small: int = 4) -> str:
    """The readable name of a number (its key where none is defined); ``r_small``: the small
    radius the chapter ran with (the default of :func:`claims`)."""
    return NUMBER_LABELS.get(key, key).replace("{r_small}", str(r_small))


def sign_patterns(delta: torch.Tensor, start: int = UPPER_BAND) -> dict:
    """Two *reference patterns* for a perturbation whose positions and magnitudes are fixed
    (SimBA-pixel: positions drawn at random, the model only chooses signs and acceptance):
    ``|delta|`` with all signs equal (``all-equal``) and ``|delta|`` times a pixel
    checkerboard (``checkerboard``). They are not bounds on what signs can do; they show
    where two simple sign choices put the share in bands k >= ``start``. Per-image upper and
    total energies, as evidence dicts like :func:`perturbation_evidence`'s ``upper``/``total``."""
    h, w = delta.shape[-2:]
    board = ((torch.arange(h).view(h, 1) + torch.arange(w).view(1, w)) % 2 * 2 - 1).to(delta)
    return {"all-equal": attribution.upper_energy(delta.abs(), start),
            "checkerboard": attribution.upper_energy(delta.abs() * board, start)}


def _where(e: Estimate, ref: Estimate) -> str:
    """Where interval ``e`` lies relative to interval ``ref``."""
    return "lies below" if e.high < ref.low else "lies above" if e.low > ref.high else "overlaps"


def sign_pattern_text(share: Estimate, null: Estimate, patterns: dict) -> str:
    """A computed sentence placing SimBA's share among its null's and the reference patterns'."""
    parts = ", ".join(f"{k} signs {e.fmt(pct=True)}" for k, e in patterns.items())
    where = " and ".join(f"{_where(share, e)} the {k} pattern's" for k, e in patterns.items())
    return (f"SimBA's share {share.fmt(pct=True)}, its random-step null's {null.fmt(pct=True)}; with SimBA's own "
            f"positions and step sizes: {parts} (SimBA's interval {where})")


def claims(r_small: int = 4, start: int = UPPER_BAND, r_high: int = R_HIGH) -> list[Claim]:
    """The three claims of Paper A with the criteria of this book (fixed 2026-11-24; A1's
    accuracy and attribution criteria and A2's SimBA and Square criteria revised after review the same
    day: SimBA and Square are now shown, not judged)."""
    return [
        Claim("A1", PAPER, "Standard CNNs rely on high-frequency components to predict.",
              "plots only: ST still predicts from high-passed images; its OF attribution reaches high DCT bands",
              [Criterion(f"ST keeps a larger share of its clean accuracy than AT on images high-passed at "
                         f"r = {r_high} (the DFT radius of DCT band {2 * r_high}; every image divided by its "
                         "maximum; same images)",
                         "st_minus_at_high_kept", above=0.0, **PTS),
               Criterion(f"ST's positive OF share in bands k ≥ {start} (of bands 1–31) exceeds the share of "
                         "a band-neutral attribution, proportional to the norm of each band of the same "
                         "images", "st_of_upper_over_norm", above=0.0, **PTS)]),
        Claim("A2", PAPER, "White-box and black-box attackers mainly perturb high frequencies.",
              "plots only: DCT spectra of PGD and SimBA perturbations concentrated in high bands",
              [Criterion(f"PGD δ against ST: energy share in k ≥ {start} exceeds that of random-sign L∞ "
                         "noise of the same ε on the same images", "pgd_st_upper_over_null", above=0.0, **PTS),
               Criterion(f"PGD δ: share in k ≥ {start} against ST exceeds that against AT (same images)",
                         "pgd_st_minus_at_upper", above=0.0, **PTS)]),
        Claim("A3", PAPER, "Adversarially trained models tie low frequencies to the label more strongly.",
              "plots only: AT's OF attribution shifted to low bands; AT more robust",
              [Criterion("AT's OF centroid (attribution-weighted mean band) minus ST's, same images, is "
                         "negative", "at_minus_st_of_centroid", below=0.0, unit="bands"),
               Criterion(f"AT's low-pass accuracy at r = {r_small} (every image divided by its maximum) minus "
                         "ST's, same images, "
                         "is positive", "at_minus_st_low_small", above=0.0, **PTS)]),
    ]


# ------------------------------------------------------------------ evidence
def filtered_evidence(st: dict, at: dict, r_small: int, r_high: int = R_HIGH) -> dict:
    """Evidence of A1 (the share of clean accuracy ST and AT keep on images high-passed
    at ``r_high``) and A3 (AT - ST low-pass accuracy at ``r_small``) from
    :func:`freqlib.attribution.filtered_accuracy` results of ST and AT on the same
    images; both curves must include radius 0 (the high-pass there is the clean image,
    under the same rescaling convention)."""
    radii = [float(r) for r in st["radius"]]
    for r in (0, r_small, r_high):
        if float(r) not in radii or [float(v) for v in at["radius"]] != radii:
            raise ValueError(f"radii 0, r_small={r_small} and r_high={r_high} must be radii of both curves, "
                             f"got {radii}")
    i, h, c = radii.index(float(r_small)), radii.index(float(r_high)), radii.index(0.0)
    y = st["labels"]
    if not torch.equal(y, at["labels"]):
        raise ValueError("ST and AT curves must come from the same images (paired)")

    def hit(cur, kind, j):
        return (cur[f"{kind}_pred"][:, j] == y).float()
    return {"st_minus_at_high_kept": {"st_upper": hit(st, "high", h), "st_total": hit(st, "high", c),
                                      "at_upper": hit(at, "high", h), "at_total": hit(at, "high", c)},
            "at_minus_st_low_small": {"st": hit(st, "low", i), "at": hit(at, "low", i)}}


def filtered_reading(claims_: list[Claim], st: dict, at: dict, r_small: int, boot) -> dict:
    """The criteria of ``claims_`` that read filtered accuracy, judged on the curves ``st`` and
    ``at`` (:func:`freqlib.attribution.filtered_accuracy` results on the same images) instead
    of the curves the verdicts use: another rescaling convention, or a different one per model
    (HFC's scripts divide the filtered images of their standard models by the image's maximum
    and feed those of their adversarially trained models without it). Not judged: a reading
    shown beside the verdicts. Returns ``{key: (state, Estimate)}`` for every criterion
    whose number :func:`filtered_evidence` gives; ``boot`` as in :func:`numbers`."""
    got = numbers(filtered_evidence(st, at, r_small), boot, descriptive=False)
    return {c.key: (c.judge(got), got[c.key]) for claim in claims_ for c in claim.criteria if c.key in got}


def image_band_energy(images: torch.Tensor) -> torch.Tensor:
    """Per-image DCT energy of each band, summed over channels: (N, C, H, W) -> (N, K), on the CPU.
    As an attribution it is the energy-matched reading chapter 1 shows beside A1 (not judged): a
    model whose loss from removing a band is proportional to the energy that band holds in the
    image. A1 judges against :func:`image_band_norm`."""
    return spectral.dct_band_energy(images.detach().double().cpu()).float()


def image_band_norm(images: torch.Tensor) -> torch.Tensor:
    """Per-image L2 norm of each DCT band over all channels, (N, K): the band-neutral null of A1,
    the attribution of a network whose gradient favours no band (OF[k] ~ grad z . x_k, so what it
    loses when band k is removed scales with ||x_k||)."""
    return image_band_energy(images).sqrt()


def attribution_evidence(st: "attribution.BandAttribution", at: "attribution.BandAttribution",
                         images: torch.Tensor) -> dict:
    """Evidence of A1 (ST's OF upper share vs the band-neutral null on the same images) and A3
    (AT - ST OF centroid) from :func:`freqlib.attribution.band_attribution` on ``images``."""
    if st.occlusion.shape != at.occlusion.shape or st.occlusion.shape[0] != images.shape[0]:
        raise ValueError("ST and AT attributions must come from the same images (paired)")
    energy = image_band_energy(images)
    return {"st_of_upper_over_norm": {"of": st.occlusion, "norm": energy.sqrt(), "energy": energy},
            "at_minus_st_of_centroid": {"st": st.occlusion, "at": at.occlusion}}


def perturbation_evidence(delta: torch.Tensor, null: torch.Tensor, start: int = UPPER_BAND) -> dict:
    """Upper-band and total energy of perturbations and of their nulls, image by image."""
    if delta.shape != null.shape or len(delta) == 0:
        raise ValueError(f"need perturbations and nulls of the same non-empty shape, got "
                         f"{tuple(delta.shape)} and {tuple(null.shape)}")
    e, z = attribution.upper_energy(delta, start), attribution.upper_energy(null, start)
    return {"upper": e["upper"], "total": e["total"], "null_upper": z["upper"], "null_total": z["total"]}


def pair_evidence(delta_st: torch.Tensor, delta_at: torch.Tensor, start: int = UPPER_BAND) -> dict:
    """Upper-band and total energy of the perturbations of ST and AT on the same images."""
    a, b = attribution.upper_energy(delta_st, start), attribution.upper_energy(delta_at, start)
    return {"st_upper": a["upper"], "st_total": a["total"], "at_upper": b["upper"], "at_total": b["total"]}


def null_of(result: "attacks.AttackResult", images: torch.Tensor, settings: dict, seed: int,
            accept: float = SQUARE_ACCEPT) -> torch.Tensor:
    """The null perturbation matching ``result`` (same budget, same images), for the images
    it perturbed: random-sign L∞ noise for PGD, as many random steps of the same basis
    for SimBA, Square's own prior (stripes and squares of its schedule, proposals kept
    with probability ``accept``, no model) for Square."""
    keep = result.perturbed
    x = images.cpu()[keep]
    if result.steps is not None:                                   # SimBA: as many random steps
        return attacks.null_simba(x, result.steps[keep], settings.get("basis", "pixel"), settings["simba_eps"],
                                  settings.get("freq_dims", 14), seed=seed)
    if result.name.startswith("Square"):                           # Square: its own random prior
        return attacks.null_square(x, settings["eps"], settings["square_queries"], accept=accept, seed=seed)
    return attacks.null_linf(x, settings["eps"], seed=seed)


def _nothing() -> Estimate:
    """A number with no evidence (an attack that perturbed no image): undecided, never a pass."""
    return Estimate(float("nan"), -math.inf, math.inf, over="no image", n=0)


def bounds(key: str) -> tuple | None:
    """The range number ``key`` cannot leave (what pooling over seeds clips to): accuracies
    and shares [0, 1], their differences [-1, 1]; a share of clean accuracy kept is >= 0
    (it can pass 1), its difference and the centroids (bands) are left open."""
    if "centroid" in key or ("kept" in key and "minus" in key):
        return None
    if "over" in key or "minus" in key:
        return (-1.0, 1.0)
    return (0.0, None) if "kept" in key else (0.0, 1.0)


def numbers(evidence: dict, boot, descriptive: bool = True) -> dict:
    """Estimates of every number in ``evidence`` (``boot(statistic, sample)`` is
    :meth:`ChapterContext.bootstrap` or a :func:`functools.partial` of
    :func:`freqlib.verdicts.bootstrap`), plus their parts when ``descriptive``, each
    with its :func:`bounds`. Evidence ``None`` (nothing to measure) gives an undecided estimate."""
    out = {k: boot(STATISTICS[k], v) if v is not None else _nothing() for k, v in evidence.items()}
    if descriptive:
        out.update({k: boot(stat, evidence[src]) if evidence[src] is not None else _nothing()
                    for k, (src, stat) in DESCRIPTIVE.items() if src in evidence})
    return {k: e if e.is_nan or bounds(k) is None else e.within(*bounds(k)) for k, e in out.items()}


def criterion_radii(r_small: int, r_high: int = R_HIGH) -> list[int]:
    """The filter radii the criteria read: 0 (the clean reference of the share of accuracy
    kept), ``r_small`` (A3's low-pass accuracy) and ``r_high`` (A1's high-pass share)."""
    return sorted({0, r_small, r_high})


def collect(models: dict, data: dict, settings: dict, r_small: int, seed: int = 0,
            rescale: str | None = "per_image_max") -> tuple[dict, dict]:
    """Everything the criteria need, and nothing more, for models ``{"standard", "linf_at"}``.

    ``data`` maps ``"filter"``, ``"attr"``, ``"attack"``, ``"square"``, ``"simba"``
    to (images, labels). Filtered accuracy is measured at the radii of
    :func:`criterion_radii` only (not whole curves), the attribution without its
    keep-only half. Returns (evidence, attack results) so that a caller can show
    or reuse the perturbations.
    """
    st, at = models["standard"], models["linf_at"]
    xf, yf = data["filter"]
    radii = criterion_radii(r_small)
    curves = {n: attribution.filtered_accuracy(m, xf, yf, radii, rescale=rescale)
              for n, m in (("standard", st), ("linf_at", at))}
    ev = filtered_evidence(curves["standard"], curves["linf_at"], r_small)
    xa, _ = data["attr"]
    attr = {n: attribution.band_attribution(m, xa, keep_only=False) for n, m in (("standard", st), ("linf_at", at))}
    ev.update(attribution_evidence(attr["standard"], attr["linf_at"], xa))
    res = attack_all(models, data, settings, seed)
    ev.update(attack_evidence(res, data, settings, seed))
    return ev, res


def attack_all(models: dict, data: dict, settings: dict, seed: int = 0) -> dict:
    """The attacks of claim A2: PGD against ST and AT, SimBA (pixel) and Square against ST."""
    st, at = models["standard"], models["linf_at"]
    xk, yk = data["attack"]
    eps = settings["eps"]
    res = {("PGD", n): attacks.pgd_linf(m, xk, yk, eps=eps, alpha=settings["pgd_alpha"],
                                       steps=settings["pgd_steps"], seed=seed)
           for n, m in (("standard", st), ("linf_at", at))}
    xs, ys = data["simba"]
    res[("SimBA", "standard")] = attacks.simba(st, xs, ys, basis="pixel", eps=settings["simba_eps"],
                                               max_iters=settings["simba_iters"], seed=seed,
                                               progress="SimBA (pixel) vs ST")
    xq, yq = data["square"]
    res[("Square", "standard")] = attacks.square_linf(st, xq, yq, eps=eps, n_queries=settings["square_queries"],
                                                      seed=seed)
    return res


def attack_evidence(res: dict, data: dict, settings: dict, seed: int = 0) -> dict:
    """Evidence of claim A2 from :func:`attack_all` results and their nulls."""
    ev = {}
    for key, src in (("pgd", ("PGD", "standard")), ("simba", ("SimBA", "standard")),
                     ("square", ("Square", "standard"))):
        r = res[src]
        if not r.perturbed.any():                  # e.g. a weak model at the smoke profile
            # a weak attack budget at smoke: a stated outcome, not a fault (no stderr on the page)
            print(f"note: {r.name} perturbed no image; its number stays undecided")
            ev[f"{key}_st_upper_over_null"] = None
            continue
        images = data[{"pgd": "attack", "simba": "simba", "square": "square"}[key]][0]
        ev[f"{key}_st_upper_over_null"] = perturbation_evidence(r.delta[r.perturbed],
                                                                null_of(r, images, settings, seed))
    pst, pat = res[("PGD", "standard")], res[("PGD", "linf_at")]
    both = pst.perturbed & pat.perturbed
    ev["pgd_st_minus_at_upper"] = pair_evidence(pst.delta[both], pat.delta[both])
    return ev


def ours_text(d: dict, r_small: int) -> dict:
    """The ``ours`` string of each claim from its numbers (values with 95% intervals)."""
    def pct(k):
        return d[k].fmt(pct=True)

    def pts(k):
        return d[k].scaled(100).fmt(digits=1) + " pts"
    return {
        "A1": (f"share of clean accuracy kept on images high-passed at r={R_HIGH}: ST {pct('st_high_kept')}, "
               f"AT {pct('at_high_kept')}, ST − AT {pts('st_minus_at_high_kept')}; OF share k≥16 (bands 1–31): "
               f"{pct('st_of_upper')} vs the band-neutral null {pct('st_norm_upper')} (the images' energy share: "
               f"{pct('st_energy_upper')})"),
        "A2": (f"energy share k≥16 of δ vs ST minus its null: PGD {pts('pgd_st_upper_over_null')}; PGD vs ST "
               f"minus vs AT: {pts('pgd_st_minus_at_upper')} (not judged: SimBA minus random steps "
               f"{pts('simba_st_upper_over_null')}, Square minus its prior {pts('square_st_upper_over_null')})"),
        "A3": (f"OF centroid AT − ST: {d['at_minus_st_of_centroid'].fmt(digits=3)} bands (not judged: over bands "
               f"1–31, without the mean colour, {d['at_minus_st_of_centroid_1to31'].fmt(digits=3)} bands); low-pass "
               f"accuracy at r={r_small} AT − ST: {pts('at_minus_st_low_small')}"),
    }


# ------------------------------------------------------------ chapter helpers
def fmt(key: str, e: Estimate) -> str:
    """A number for the prose: shares as percentages, differences in points, centroids in bands."""
    if "centroid" in key:
        return e.fmt(digits=3) + (" bands" if "minus" in key else "")
    if "over" in key or "minus" in key:
        return e.scaled(100).fmt(digits=1) + " pts"
    return e.fmt(pct=True)


def square_prior(result: "attacks.AttackResult", images: torch.Tensor, settings: dict, seed: int, boot,
                 coins=SQUARE_ACCEPT_RANGE) -> dict:
    """Share in bands k >= 16 of Square's prior (no model) with each coin of its accept rule,
    on the images Square perturbed: ``{p: Estimate}`` (empty when it perturbed none)."""
    if not result.perturbed.any():
        return {}
    out = {}
    for p in coins:
        z = attribution.upper_energy(null_of(result, images, settings, seed, accept=p))
        out[p] = boot(lambda m: m["upper"] / m["total"], z)
    return out


def relative_upper(delta: torch.Tensor, images: torch.Tensor, start: int = UPPER_BAND) -> float:
    """Share in bands k >= ``start`` of the reference's attack map, mean |DCT(δ) / DCT(x)| per
    coefficient (channel-averaged DCTs, ratio capped at 1000): relative to the image's own 1/f
    spectrum, any broadband change looks high-frequency."""
    x = images.detach().cpu()
    rel = (spectral.dct2(delta.cpu()).mean(1) / spectral.dct2(x).mean(1)).abs().clamp(max=1e3).mean(0)
    band = spectral.dct_band_index(*x.shape[-2:])
    return float(rel[band >= start].sum() / rel.sum())


def _hits(cur: dict, kind: str) -> torch.Tensor:
    """Per-image, per-radius 0/1 of a filtered-accuracy curve: (N, radii)."""
    return (cur[f"{kind}_pred"] == cur["labels"][:, None]).float()


def low_area_evidence(st: dict, at: dict, kind: str = "low") -> dict:
    """Per-image normalised areas under the ``kind``-pass accuracy curve (trapezoid over the
    radii, divided by their range) of ST and AT on the same images; their means are the
    curves' areas (:func:`freqlib.attribution.curve_area`), so a bootstrap gives a paired interval."""
    r = torch.as_tensor(st["radius"], dtype=torch.float64)
    if not torch.equal(st["labels"], at["labels"]):
        raise ValueError("ST and AT curves must come from the same images (paired)")

    def area(cur):
        return (torch.trapezoid(_hits(cur, kind).double(), r, dim=-1) / (r[-1] - r[0])).float()
    return {"st": area(st), "at": area(at)}


def curve_lead_text(st: dict, at: dict, kind: str = "low") -> str:
    """Where each network's ``kind``-pass accuracy curve is the higher (point estimates per radius,
    same images): e.g. "AT's curve is the higher at r = 2, 4, 6 and ST's at r = 12, 16", or one network
    throughout. Read beside :func:`low_area_evidence`: the area averages over radii where the
    curves may cross."""
    r = [float(v) for v in st["radius"]]
    acc = {n: _hits(cur, kind).mean(0) for n, cur in (("ST", st), ("AT", at))}
    # a low-pass at r = 0 keeps nothing (a black image): that point compares two guesses, not frequencies
    keep = [i for i, x in enumerate(r) if not (kind == "low" and x == 0)]
    ahead = {"AT": [r[i] for i in keep if acc["AT"][i] > acc["ST"][i]],
             "ST": [r[i] for i in keep if acc["AT"][i] < acc["ST"][i]]}
    show = lambda xs: ", ".join(f"{x:g}" for x in xs)
    if ahead["AT"] and ahead["ST"]:
        return f"AT's curve is the higher at r = {show(ahead['AT'])} and ST's at r = {show(ahead['ST'])}"
    if ahead["AT"] or ahead["ST"]:
        return f"{'AT' if ahead['AT'] else 'ST'}'s curve is the higher at every radius where the two differ"
    return "the two curves coincide"


def heat_per_image(model, images: torch.Tensor, labels: torch.Tensor, eps: float, seed: int = 0,
                   clip: bool = False) -> dict:
    """Fourier heat maps with each image's errors kept (:func:`freqlib.heatmap.fourier_heatmap`
    with ``per_image``, one batched pass): ``{"error": (H, W) mean map, "clean_error": float,
    "per_image": (N, H, W), "eps": eps, "n_images": N}``, so that summaries get intervals.
    ``clip`` clips the perturbed images to [0, 1] (the reference does not)."""
    from . import heatmap
    return heatmap.fourier_heatmap(model, images, labels, eps=eps, seed=seed, clip=clip, per_image=True)


def near_bounds_share(images: torch.Tensor, margin: float) -> torch.Tensor:
    """Per-image share of pixel values within ``margin`` of 0 or 1, (N, C, H, W) -> (N,).

    With ``margin`` the peak amplitude of a perturbation, these are the only values that
    clipping to [0, 1] can change, so the share bounds how much of an image clipping touches."""
    x = images.detach().float().cpu()
    return ((x < margin) | (x > 1 - margin)).flatten(1).float().mean(1)


def heat_evidence(st: dict, at: dict, radius: float = 8) -> dict:
    """Per-image mean heat-map error below and at/above distance ``radius`` of ST and AT (same images)."""
    h, w = st["per_image"].shape[-2:]
    far = spectral.frequency_radius(h, w) >= radius
    return {f"{m}_{side}": d["per_image"][:, sel].mean(1) for m, d in (("st", st), ("at", at))
            for side, sel in (("low", ~far), ("high", far))}


def heat_trade_text(ev: dict, boot, radius: float = 8) -> str:
    """A computed sentence on where AT's heat-map error is lower or higher than ST's, with
    paired intervals; a difference whose interval straddles 0 is called undecided."""
    d = {s: boot(lambda m, s=s: m[f"at_{s}"] - m[f"st_{s}"], ev) for s in ("low", "high")}

    def side(e):
        return direction_text(e, "higher than", "lower than", "not decidedly different from")
    text = (f"here AT's error is {side(d['low'])} ST's below distance {radius:g} (AT − ST "
            f"{d['low'].scaled(100).fmt(digits=1)} pts) and {side(d['high'])} ST's at distance ≥ {radius:g} "
            f"({d['high'].scaled(100).fmt(digits=1)} pts)")
    if d["low"].high < 0 and d["high"].high < 0:
        text += "; at this ε AT pays nowhere"
    return text


def high_pass_shares(images: torch.Tensor, boot, r_high: int = R_HIGH, start: int = UPPER_BAND) -> dict:
    """What the DFT high-pass at ``r_high`` and the DCT bands k >= ``start`` each keep: share of
    the coefficients and of the images' (mean-removed) energy, the latter with intervals."""
    x = images.detach().double().cpu()
    h, w = x.shape[-2:]
    ac = x - x.mean((-2, -1), keepdim=True)
    disk = {"upper": spectral.high_pass(x, r_high).pow(2).sum((1, 2, 3)).float(),
            "total": ac.pow(2).sum((1, 2, 3)).float()}
    share = lambda m: m["upper"] / m["total"]  # noqa: E731
    return {"disk_coefficients": float((spectral.frequency_radius(h, w) >= r_high).double().mean()),
            "dct_coefficients": float((spectral.dct_band_index(h, w) >= start).double().mean()),
            "disk_energy": boot(share, disk), "dct_energy": boot(share, attribution.upper_energy(x.float(), start))}


def jpeg_subsets(ctx, data: dict):
    """The images on which original and JPEG pixels can be compared: ``(original, jpeg, capped)``
    with ``data``'s sets cut to the test images that have original pixels (``capped`` when a
    cut was needed), or ``None`` when no test image has them (every analysis then uses JPEG
    pixels already, and a comparison would compare a set with itself)."""
    from .data import HEAD_SIZE, VARIANT_MIRROR, head_path
    n_orig = math.inf if ctx.train_variant != VARIANT_MIRROR else HEAD_SIZE if head_path().is_file() else 0
    if n_orig == 0:
        return None
    sizes = {k: min(len(v[0]), n_orig) for k, v in data.items()}
    capped = any(sizes[k] < len(v[0]) for k, v in data.items())
    orig = {k: ctx.test_set(n) for k, n in sizes.items()} if capped else data
    return orig, {k: ctx.test_set(n, pixels="jpeg") for k, n in sizes.items()}, capped
