"""A planted frequency shortcut (chapter 6, claims D2-D4): how strong its gratings are against
the reach of an ε-bounded change, and what a network does when the shortcut is moved.

The shortcut sets (:mod:`freqlib.synthetic`) attach to every training image a faint *class
signature*: gratings of one frequency band whose frequencies depend on the class. At test time
the signature is attached as it was trained ("own"), moved to another class ("moved") or
replaced by gratings of the same band and strength that belong to no class (the same-budget
null). A network that follows a moved signature predicts its class rather than the image's.

* **Reach.** An L-inf change of ε can remove or forge about 4ε/π of one grating's amplitude, but
  less of a pair at once, which erasing or forging a class's signature takes
  (:func:`signature_reach`); a signature beyond the reach along a whole signature cannot be erased
  by an attack of that budget (:func:`beyond_reach`, claim D4).
* **Read-outs.** :func:`shortcut_conditions` builds the test conditions, :func:`shortcut_rates`
  reads one network on them (0/1 per image, so every difference below is paired over images),
  :func:`shortcut_numbers` and :func:`adoption_numbers` turn two networks' rates into the
  numbers of D2-D4.
* **Adoption curve and ST at AT's clean accuracy.** :func:`adoption_point` at several strengths;
  a standard network trained for a shorter budget (``MATCH_FRACTIONS``) whose clean accuracy
  is nearest AT's, read by :func:`matched_reading`: does AT ignore a signature because ε can forge
  it, or only because it learned less?

Kept apart from :mod:`freqlib.synthetic` because the zoo hashes that module: editing a read-out
must not retrain the networks it reads.
"""
from __future__ import annotations

import math
from functools import lru_cache
from typing import Callable, NamedTuple

import torch

from . import evaluate, profiles, synthetic
from .prose import listed
from .verdicts import direction_text

__all__ = [
    "CHANCE", "COMPETENCE", "BOUNDS", "signature_amplitudes", "Reach", "signature_reach", "amplitude_text", "beyond_reach",
    "d3_scope", "left_after_reach", "clean_robustness_text",
    "shortcut_conditions", "shortcut_rates", "rate_text", "rate_row", "shortcut_numbers", "adoption_numbers",
    "robust_with_signature", "robust_reading", "adoption_point", "adoption", "parse_psnrs", "plot_adoption",
    "ignored_beyond", "adoption_reading", "trained_networks_text",
    "MATCH_FRACTIONS", "MATCH_TOLERANCE", "shorter_budget", "matched_fraction", "matched_point", "matched_curve",
    "matched_outcome", "match_state", "faint_control", "matched_reading", "matched_lean", "reach_reading",
    "competence_text",
]


CHANCE = 0.1        # accuracy of a 10-class guess
COMPETENCE = 0.10   # D3: AT's clean accuracy must exceed chance by more than this
# The range each number of D2-D4 cannot leave (differences of two rates; an accuracy minus
# chance; one minus a ratio of rates): pooling over seeds keeps its interval inside.
# Ratios of rates (d3_reduction, d3_net_*) are left open.
BOUNDS = {"d2_drop": (-1.0, 1.0), "d2_excess": (-1.0, 1.0), "d3_follow_gap": (-1.0, 1.0),
          "d3_at_competence": (-CHANCE, 1.0 - CHANCE), "d3_at_floor": (-CHANCE - COMPETENCE, 1.0 - CHANCE - COMPETENCE),
          "d4_follow_excess": (-1.0, 1.0), "d4_relative_excess": (None, 1.0), "d4_excess": (-1.0, 1.0),
          "d4_drop": (-1.0, 1.0), "d4_clean_cost": (-1.0, 1.0)}


def _bounded(numbers: dict) -> dict:
    return {k: e.within(*BOUNDS[k]) if k in BOUNDS else e for k, e in numbers.items()}


# ------------------------------------------------------------- reach of ε


def signature_amplitudes(band: str = "high", rms: float | None = None) -> tuple[float, float]:
    """(smallest, largest) amplitude, per colour channel in [0, 1] units, of a single grating
    of the class signatures of ``band`` at RMS ``rms`` (default: the shortcut sets' own,
    ``freqlib.synthetic.SHORTCUT``; a class with one grating carries all of the RMS in it, so
    its amplitude is sqrt(2) times that of a pair's)."""
    _, amps = synthetic._group_tensor(synthetic.shortcut_frequencies(band))
    a = amps[amps > 0] * (synthetic.SHORTCUT["rms"] if rms is None else rms)
    return float(a.min()), float(a.max())


class Reach(NamedTuple):
    """How far an L-inf change of ε reaches along a signature (:func:`signature_reach`), each as
    (smallest, largest) over classes and phases.

    ``grating``: along one grating, in that grating's amplitude (about 4ε/π). ``whole``: along a
    class's whole signature, all its gratings at once, in the amplitude of the set's weakest grating
    (the scale of :func:`plot_adoption`'s axis): a signature whose weakest grating lies below
    ``whole[0]`` can be erased or forged for every class at every phase, one above ``whole[1]`` for
    none. Erasing a class's signature takes all its gratings (each one alone names the class), so
    ``whole`` is the reach that decides erasing and forging; ``grating`` only says that any single
    grating can be removed."""
    grating: tuple[float, float]
    whole: tuple[float, float]


def _phase_grid(n_phase: int) -> torch.Tensor:
    return torch.arange(n_phase, dtype=torch.float64) * (2 * torch.pi / n_phase)


@lru_cache(maxsize=16)      # a chapter asks for the same reach several times (0.3 s each on a CPU)
def _class_reach(band: str, eps: float, n_phase: int) -> tuple[tuple[float, float, float], ...]:
    """Per class: (smallest, largest) over every pair of phases of the largest RMS of its signature
    that ``eps * sign(signature)`` removes along the signature, eps * sum(abs(s)) / sum(s ** 2) with s the
    class's signature at RMS 1; and the amplitude of its weakest grating at RMS 1. The two gratings
    of a pair have independent uniform phases (:func:`freqlib.synthetic.attach_shortcut`), so every
    pair of phases occurs."""
    freqs, amps = synthetic._group_tensor(synthetic.shortcut_frequencies(band))
    ij = torch.arange(32, dtype=torch.float64)
    phase = _phase_grid(n_phase)
    out = []
    for f, a in zip(freqs.double(), amps.double()):
        arg = [(2 * torch.pi / 32) * (fy * ij[:, None] + fx * ij[None, :]) for fy, fx in f]
        s = (a[0] * torch.cos(arg[0] + phase[:, None, None, None])
             + a[1] * torch.cos(arg[1] + phase[None, :, None, None]))       # (phase 1, phase 2, 32, 32)
        t = eps * s.abs().sum((-2, -1)) / (s * s).sum((-2, -1))
        out.append((float(t.min()), float(t.max()), float(a[a > 0].min())))
    return tuple(out)


N_PHASE = 64      # phases per grating: on the 32 x 32 grid the reach's extremes lie on multiples of pi/32


def signature_reach(band: str = "high", eps: float = 8 / 255, n_phase: int = N_PHASE) -> Reach:
    """How far an L-inf change of ``eps`` reaches along the class signatures of ``band``
    (:class:`Reach`): the component of ``eps * sign(pattern)`` along the pattern, the most any
    ε-bounded change has, exactly computed on the 32 x 32 pixel grid at ``n_phase`` phases per
    grating (on that grid the extremes lie on multiples of pi/32, so 64 phases find them).

    Along one grating it is about 4ε/π (a square wave's fundamental). Along a pair of gratings
    it is less, about 8ε/π^2 and lower still at some phases: ±ε·sign spends its budget on both at once."""
    ij = torch.arange(32, dtype=torch.float64)
    phase = _phase_grid(n_phase)
    reach = []
    for group in synthetic.shortcut_frequencies(band):
        for fy, fx in group:
            g = torch.cos((2 * torch.pi / 32) * (fy * ij[:, None] + fx * ij[None, :]) + phase[:, None, None])
            reach.append(eps * (g.abs().sum((1, 2)) / (g * g).sum((1, 2))))
    r = torch.cat(reach)
    per_class = _class_reach(band, eps, n_phase)
    weakest = min(w for _, _, w in per_class)          # the set's weakest grating at RMS 1
    # class c's signature is erased at RMS t_c, where the set's weakest grating has amplitude t_c * weakest
    whole = (min(lo for lo, _, _ in per_class) * weakest, max(hi for _, hi, _ in per_class) * weakest)
    return Reach((float(r.min()), float(r.max())), whole)


def left_after_reach(band: str, eps: float, rms: float | None = None) -> float:
    """The least amplitude, per grating, that a signature of RMS ``rms`` keeps along itself after
    any ε-bounded change, over classes and phases (negative: ε can erase some class's signature)."""
    rms = synthetic.SHORTCUT["rms"] if rms is None else rms
    return min((rms - hi) * w for _, hi, w in _class_reach(band, eps, N_PHASE))


def amplitude_text(band: str, eps: float, rms: float | None = None) -> str:
    """The signature's grating amplitudes against ε's reach, in words (a claim's paper-side text)."""
    lo, hi = signature_amplitudes(band, rms)
    reach = signature_reach(band, eps)
    (g_lo, g_hi), (w_lo, w_hi) = reach
    text = (f"the signature's gratings have amplitudes of {255 * lo:.2f}/255 to {255 * hi:.2f}/255 per colour "
            f"channel (ε = {255 * eps:g}/255); an ε-bounded change can remove or add up to {255 * g_lo:.2f}/255 to "
            f"{255 * g_hi:.2f}/255 of one grating (≈ 4ε/π, by phase), but erasing or forging a class's signature "
            f"takes all its gratings at once, and along a whole signature it reaches only {255 * w_lo:.2f}/255 to "
            f"{255 * w_hi:.2f}/255 (in the weakest grating's amplitude, by class and phase)")
    if lo < w_lo:
        return text + ", so it can erase or forge every class's signature at every phase"
    if lo > w_hi:
        left = left_after_reach(band, eps, rms)
        single = (", though it can remove the weakest gratings one at a time" if lo < g_lo else
                  ", nor remove all of any single grating" if lo > g_hi else "")
        return text + (f", so it cannot erase any class's signature{single}: along each signature at least "
                       f"{255 * left:.2f}/255 of every grating remains")
    return text + ", so it can erase or forge a class's signature only for some classes and phases"


def beyond_reach(band: str, eps: float, psnr: float) -> float:
    """How far (pixel units, per grating) a ``psnr``-dB signature lies beyond ``eps``'s reach along
    a whole signature, the least over classes and phases; raises a one-line error when some class's
    signature is within reach at some phase, since D4 needs a signature no ε-bounded change can erase."""
    if not psnr > 0:
        raise ValueError(f"strong_psnr={psnr!r}: give the signature's PSNR in dB, above 0 (e.g. 20)")
    rms = 10 ** (-psnr / 20)
    left = left_after_reach(band, eps, rms)
    if left <= 0:
        lo, reach = signature_amplitudes(band, rms)[0], signature_reach(band, eps).whole[1]
        top = -20 * math.log10(reach / lo * rms)
        raise ValueError(f"strong_psnr={psnr:g} dB gives gratings from {255 * lo:.2f}/255, within the reach "
                         f"{255 * reach:.2f}/255 of ε = {255 * eps:g}/255 along a whole signature: claim D4 "
                         f"needs a PSNR below {top:.1f} dB")
    return left


def d3_scope(band: str, eps: float, rms: float | None = None) -> str:
    """What D3 can show, given where the faint signature (RMS ``rms``) lies against ε's reach along a
    whole signature (:func:`signature_reach`), in words."""
    weakest = signature_amplitudes(band, rms)[0]
    w_lo, w_hi = signature_reach(band, eps).whole
    if weakest < w_lo:
        return ("Since ε can erase or forge every class's whole signature at every phase, D3 is close to "
                "guaranteed for any AT network that learned its task, and the frequency story (AT avoids high "
                "frequencies) predicts it as well; D3 alone cannot tell the two apart, D4 can.")
    if weakest > w_hi:
        return ("Since no class's whole signature is within that reach, a competent AT network can follow it, and "
                "D3 can fail for a reason other than incompetence; if D3 holds, ε's reach does not explain it.")
    return ("The faint signature thus lies at the edge of that reach: ε can erase or forge a class's whole signature "
            "only for some classes and phases, so ε's reach makes D3 likely rather than guaranteed for a competent "
            "AT network; the frequency story (AT avoids high frequencies) predicts D3 as well, so D3 alone cannot "
            "tell the two apart, D4 can.")


# ------------------------------------------------------------ read-outs
def shortcut_conditions(x: torch.Tensor, labels: torch.Tensor, wrong: torch.Tensor, band: str, seed: int = 0,
                        rms: float | None = None) -> dict:
    """The test conditions of the shortcut experiment on images ``x``: clean; with their own class's
    signature; with the signature of class ``wrong`` ("moved"); with gratings of the same band and
    strength that belong to no class (the same-budget null). ``rms``: the signature's strength
    (default: the shortcut sets' own)."""
    null = synthetic.random_patterns(len(x), band, seed, rms=rms).to(x.device, x.dtype)
    return {"clean": x, "own signature": synthetic.attach_shortcut(x, labels, band, seed=seed, rms=rms),
            "moved signature": synthetic.attach_shortcut(x, wrong, band, seed=seed, rms=rms),
            "no-class gratings (null)": (x + null).clamp(0, 1)}


def shortcut_rates(model, conditions: dict, labels: torch.Tensor, wrong: torch.Tensor) -> dict:
    """Per test image, 0/1: correct under each condition (``conditions[name]`` images), and
    ``follow``: the prediction under ``conditions['moved signature']`` is the moved signature's class."""
    out = {cond: evaluate.correct(model, xc, labels) for cond, xc in conditions.items()}
    out["follow"] = (evaluate.predict(model, conditions["moved signature"]).cpu() == wrong.cpu()).float()
    return out


def rate_text(v: torch.Tensor, bootstrap) -> str:
    """A rate of per-image 0/1 ``v`` with its interval; a rate of exactly 0 or 1, which has no
    bootstrap spread, with its count instead ("0.0% (0 of 200)")."""
    if v.min() == v.max():
        return f"{100 * float(v[0]):.1f}% ({int(v.sum())} of {len(v)})"
    return bootstrap(lambda q: q["c"], {"c": v}).fmt(pct=True)


def rate_row(model, out: dict, bootstrap) -> dict:
    """One table row: every rate of :func:`shortcut_rates` (:func:`rate_text`), and the zoo
    record's PGD-50 accuracy and training time."""
    row = {cond: rate_text(v, bootstrap) for cond, v in out.items() if cond != "follow"}
    row["predicts the moved signature's class"] = rate_text(out["follow"], bootstrap)
    return {**row, "PGD-50 (zoo)": f"{100 * model.record['pgd_linf_accuracy']:.1f}%",
            "training (s)": round(model.record["train_seconds"])}


def shortcut_numbers(st: dict, at: dict, bootstrap) -> dict:
    """The numbers of D2 and D3 (see :func:`freqlib.validity.causal_claims`) from ST's and AT's :func:`shortcut_rates`,
    paired over the same test images; and, shown beside D3's first criterion but not judged, each network's
    drop net of the same-budget null, (no-class - moved) / clean (``d3_net_st``, ``d3_net_at``, and ST's
    minus AT's, ``d3_net_gap``): no-class gratings alone also cost accuracy, which D3's relative drop counts."""
    sample = {"sc": st["clean"], "sw": st["moved signature"], "sn": st["no-class gratings (null)"],
              "sf": st["follow"], "ac": at["clean"], "aw": at["moved signature"], "af": at["follow"],
              "an": at["no-class gratings (null)"]}
    net_st = lambda m: (m["sn"] - m["sw"]) / m["sc"]
    net_at = lambda m: (m["an"] - m["aw"]) / m["ac"]
    return _bounded({"d2_drop": bootstrap(lambda m: m["sc"] - m["sw"], sample),
            "d2_excess": bootstrap(lambda m: m["sn"] - m["sw"], sample),
            "d3_reduction": bootstrap(lambda m: (1 - m["sw"] / m["sc"]) - (1 - m["aw"] / m["ac"]), sample),
            "d3_follow_gap": bootstrap(lambda m: m["sf"] - m["af"], sample),
            "d3_at_competence": bootstrap(lambda m: m["ac"] - CHANCE, sample),
            "d3_at_floor": bootstrap(lambda m: m["ac"] - CHANCE - COMPETENCE, sample),
            "d3_net_st": bootstrap(net_st, sample), "d3_net_at": bootstrap(net_at, sample),
            "d3_net_gap": bootstrap(lambda m: net_st(m) - net_at(m), sample)})


# ------------------------------------------------------- adoption (D4)
def robust_with_signature(model, conditions: dict, labels: torch.Tensor, eps: float, steps: int,
                          seed: int = 0) -> dict:
    """Per image, 0/1: still correct after L-inf PGD (``steps`` steps, one random start) on the
    clean images and on the same images carrying their own class's signature (``conditions`` from
    :func:`shortcut_conditions`). A network that adopted a signature beyond ε's reach should be
    robust where the signature is: the attack cannot erase it."""
    from . import attacks
    return {cond: attacks.robust_accuracy(model, conditions[cond], labels, eps=eps, steps=steps, restarts=1,
                                          seed=seed, progress=None) for cond in ("clean", "own signature")}


def robust_reading(gain_strong, gain_plain, taken, unattacked: str) -> str:
    """What :func:`robust_with_signature` says, in words read off the intervals: ``gain_strong`` and
    ``gain_plain``: PGD accuracy with the own signature minus clean, for AT trained with the strong
    signature and for AT that never saw one; ``taken``: the strong-signature network's own-signature
    accuracy without attack minus with it (``unattacked``: that accuracy, formatted). The reach
    reading predicts a resolved gain for the first and none for the second."""
    pts = lambda e: e.scaled(100).fmt(digits=1) + " pts"
    predicted = gain_strong.low > 0 and gain_plain.low <= 0
    return (direction_text(gain_strong, "The signature makes AT with the strong signature more robust",
                           "The signature makes AT with the strong signature less robust",
                           "The signature does not make AT with the strong signature resolvably more robust")
            + direction_text(gain_plain, ", and it also makes the AT network that never saw one more robust",
                             ", while it makes the AT network that never saw one less robust",
                             ", and the AT network that never saw one gains nothing resolvable from it")
            + (": what the reach reading predicts, since the attack cannot erase the signature. " if predicted
               else ". ")
            + direction_text(taken, f"Still, the attack takes {pts(taken)} of the {unattacked} it gets right on "
                                    "unattacked own-signature images: under attack it does not rest on the "
                                    "signature alone.",
                             f"The attack raises its accuracy on own-signature images ({pts(taken)} taken).",
                             f"The attack takes nothing resolvable of the {unattacked} it gets right on "
                             "unattacked own-signature images."))


def adoption_numbers(at: dict, plain: dict, bootstrap) -> dict:
    """The numbers of D4 from the strong-signature AT network's :func:`shortcut_rates` and those of
    the same-budget AT that never saw a signature (``plain``), on the same images and conditions:
    ``d4_follow_excess`` (rate of predicting the moved signature's class, AT minus plain AT),
    ``d4_relative_excess`` (the share of AT's accuracy with no-class gratings that a moved signature
    removes, 1 - moved / no-class) and, for the prose and the first rule, ``d4_excess`` (no-class
    minus moved, in accuracy), ``d4_drop`` (clean minus moved) and ``d4_clean_cost`` (plain AT's clean
    accuracy minus AT's).

    Revised after review (2026-11-24): the second criterion first read ``d4_excess`` > 0.10. An AT
    network that learns the signature *instead of* the images sits at chance without it, so a
    moved signature has at most about 10 points to remove and the rule failed a complete adoption;
    the relative excess has the same room at every accuracy."""
    sample = {"c": at["clean"], "w": at["moved signature"], "n": at["no-class gratings (null)"],
              "f": at["follow"], "pf": plain["follow"]}
    sample["pc"] = plain["clean"]
    return _bounded({"d4_follow_excess": bootstrap(lambda m: m["f"] - m["pf"], sample),
            "d4_relative_excess": bootstrap(lambda m: 1 - m["w"] / m["n"], sample),
            "d4_excess": bootstrap(lambda m: m["n"] - m["w"], sample),
            "d4_drop": bootstrap(lambda m: m["c"] - m["w"], sample),
            "d4_clean_cost": bootstrap(lambda m: m["pc"] - m["c"], sample)})


def adoption_point(at: dict, plain: dict, band: str, rms: float, bootstrap) -> dict:
    """One point of the adoption curve from :func:`shortcut_rates` already computed (AT trained
    with a signature of RMS ``rms``, and the network that never saw one, on the test conditions
    of that strength): :func:`adoption_numbers`, ``clean`` (AT's clean accuracy) and ``weakest``
    (the weakest grating's amplitude)."""
    return {**adoption_numbers(at, plain, bootstrap),
            "clean": bootstrap(lambda m: m["c"], {"c": at["clean"]}).within(0.0, 1.0),   # an accuracy
            "weakest": signature_amplitudes(band, rms)[0]}


def adoption(model, plain, x: torch.Tensor, labels: torch.Tensor, wrong: torch.Tensor, band: str, seed: int,
             rms: float, bootstrap) -> dict:
    """:func:`adoption_point` of ``model`` against ``plain`` on ``x``, with the test conditions of a
    signature of RMS ``rms`` built and both networks evaluated here."""
    cond = shortcut_conditions(x, labels, wrong, band, seed, rms=rms)
    return adoption_point(shortcut_rates(model, cond, labels, wrong), shortcut_rates(plain, cond, labels, wrong),
                          band, rms, bootstrap)


def parse_psnrs(text: str, name: str = "adoption_psnrs") -> list[float]:
    """'29,26' -> [29.0, 26.0]; a one-line error naming ``name`` for anything else."""
    try:
        values = [float(p) for p in str(text).split(",") if p.strip()]
    except ValueError:
        values = None
    if values is None or any(not v > 0 for v in values):
        raise ValueError(f"{name}={text!r}: give PSNRs in dB above 0, separated by commas (e.g. '29,26')")
    return values


def plot_adoption(curves: dict, reach: Reach, title: str):
    """Adoption of a signature against the weakest grating's amplitude: ``curves[label][psnr]`` from
    :func:`adoption_point` (one line per label, e.g. AT and ST at AT's clean accuracy); ``reach``
    (:func:`signature_reach`): the reach of an ε-bounded change along a whole signature, shaded, and
    along one grating, hatched. Two panels: the excess rate of following a moved signature, and clean
    accuracy (what adopting it cost)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(8.4, 3.6), layout="constrained")
    for ax in axes:
        ax.axvspan(255 * reach.whole[0], 255 * reach.whole[1], color="0.8",
                   label="reach of ε along a whole signature (by class and phase)")
        ax.axvspan(255 * reach.grating[0], 255 * reach.grating[1], facecolor="none", edgecolor="0.6", hatch="///",
                   label="reach of ε along one grating")
    for i, ((label, curve), marker) in enumerate(zip(curves.items(), "osd^v")):
        pts = sorted(curve.items(), key=lambda kv: kv[1]["weakest"])
        amp = [255 * n["weakest"] for _, n in pts]
        for ax, key in ((axes[0], "d4_follow_excess"), (axes[1], "clean")):
            est = [n[key] for _, n in pts]
            mid = [100 * e.value for e in est]
            err = [[100 * (e.value - e.low) for e in est], [100 * (e.high - e.value) for e in est]]
            ax.errorbar(amp, mid, yerr=err, fmt=marker + "-", ms=4, capsize=3, label=f"{label} (95% interval)")
            if i == 0:                           # the first curve names the strengths
                for (psnr, _), a, m in zip(pts, amp, mid):
                    ax.annotate(f"{psnr:g} dB", (a, m), textcoords="offset points", xytext=(4, 4), fontsize=7)
    # short y-labels: a long one is cut off at the top of the panel
    for ax, label in ((axes[0], "follows a moved signature,\nexcess over its null (pts)"),
                      (axes[1], "clean accuracy (%)")):
        ax.set(xlabel="weakest signature grating (amplitude, /255)", ylabel=label)
        ax.tick_params(labelsize=7)
    axes[0].axhline(0, color="k", lw=0.6)
    fig.legend(*axes[0].get_legend_handles_labels(), loc="outside lower center", ncol=3, fontsize=7)
    fig.suptitle(title, fontsize=9)
    return fig


def ignored_beyond(curve: dict, reach_max: float) -> list[float]:
    """The strengths (PSNR, strongest last) of an adoption curve (``curve[psnr]`` from :func:`adoption_point`)
    beyond ε's reach along every whole signature (weakest grating above ``reach_max``,
    ``signature_reach(...).whole[1]``) at which AT did not resolvably follow the signature (the
    interval of its excess rate of following reaches 0)."""
    return sorted((p for p, n in curve.items() if n["weakest"] > reach_max and n["d4_follow_excess"].low <= 0),
                  reverse=True)


def _dbs(psnrs) -> str:
    return listed(f"{p:g} dB" for p in psnrs)


def adoption_reading(curve: dict, reach_max: float, band: str, eps: float) -> str:
    """The adoption curve (``curve[psnr]`` from :func:`adoption_point`) against the reach reading's
    prediction, in words: AT follows a signature once it lies beyond ε's reach along every whole
    signature (weakest grating above ``reach_max``). For each strength beyond that reach, how much of
    every grating any ε-bounded change leaves (:func:`left_after_reach`; signature RMS 10^(-PSNR/20))."""
    follows = lambda p: curve[p]["d4_follow_excess"].low > 0
    beyond = sorted((p for p, n in curve.items() if n["weakest"] > reach_max), reverse=True)
    within = sorted((p for p in curve if p not in beyond), reverse=True)
    if not beyond:
        return ("No strength of the curve lies beyond ε's reach along every whole signature, so it does not test "
                "where AT starts to adopt one.")
    followed, ignored = [p for p in beyond if follows(p)], [p for p in beyond if not follows(p)]
    where = "beyond ε's reach along every whole signature"
    if not ignored:
        text = (f"AT follows the signature resolvably at every strength {where} ({_dbs(followed)}), as the reach "
                "reading predicts")
    elif not followed:
        text = (f"AT does not follow the signature resolvably at any strength {where} ({_dbs(ignored)}), against "
                "the reach reading's prediction")
    else:
        text = (f"{where[0].upper() + where[1:]}, AT follows the signature resolvably at {_dbs(followed)} but not at "
                f"{_dbs(ignored)}: being beyond that reach did not suffice for AT to adopt a signature")
    left = ", ".join(f"{255 * left_after_reach(band, eps, 10 ** (-p / 20)):.2f}/255 at {p:g} dB" for p in beyond)
    text += f" (of every grating, any ε-bounded change leaves at least {left})"
    if within:
        seen = [p for p in within if follows(p)]
        text += (f"; within it for at least some classes and phases ({_dbs(within)}), AT "
                 + (f"follows it resolvably at {_dbs(seen)}" if seen else "does not follow it resolvably"))
    return text + "."


def trained_networks_text(band: str, strong_psnr: float, adoption_psnrs, n_seeds: int,
                          fractions=None) -> str:
    """The shortcut networks chapter 6 trains for class signatures in ``band``, in words, from the
    sets it trains them on (``freqlib.synthetic.shortcut_name``): D3's ST and AT, D4's AT and ST
    (``strong_psnr``), AT at each strength of the adoption curve (``adoption_psnrs``), ST on D3's set
    at each budget fraction of the ladder (``fractions``, default ``MATCH_FRACTIONS``) and ST at the
    matched budget on every other set. D3's networks and D4's AT are trained once per training seed
    (``n_seeds``), the others for the first seed."""
    from fractions import Fraction
    name = lambda p=None: synthetic.shortcut_name(band, p)
    names = lambda ps: listed(name(p) for p in ps)
    fr = [str(Fraction(f).limit_denominator()) for f in (MATCH_FRACTIONS if fractions is None else fractions)]
    others = list(adoption_psnrs) + [strong_psnr]
    parts = [f"ST and AT on {name()} (D2, D3)", f"AT and ST on {name(strong_psnr)} (D4)"]
    if adoption_psnrs:
        parts.append(f"AT on {names(list(adoption_psnrs))} (the adoption curve)")
    parts += [f"ST for {listed(fr)} of the epochs on {name()} "
              "(the budget ladder)", f"ST at the budget nearest AT's clean accuracy on {names(others)} "
              "(the accuracy-matched control)"]
    text = "; ".join(parts[:-1]) + "; and " + parts[-1]
    if n_seeds > 1:
        text += (f"; D3's two networks and D4's AT once per training seed ({n_seeds}), the others for the first "
                 "seed only")
    return text


# -------------------------------------------- ST at AT's clean accuracy
# ST at AT's clean accuracy: a standard network trained for a shorter budget (fractions of the
# shortcut networks' epochs, fixed here) whose clean accuracy is nearest AT's. Its follow rate
# says whether AT ignores a signature because of ε or only because it learned less.
MATCH_FRACTIONS = (1 / 16, 1 / 8, 1 / 4, 1 / 2)
MATCH_TOLERANCE = 0.05      # clean accuracies further apart than this are not called matched


def shorter_budget(profile: str, train: dict, fraction: float, name: str = "shortcut_standard") -> dict:
    """The training overrides ``train`` (a chapter's) with the recipe's epochs cut to ``fraction``."""
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction={fraction!r}: a shorter budget is a fraction in (0, 1] of the recipe's epochs")
    if fraction == 1:
        return dict(train)        # the same key as the full-budget network (18.0 epochs would hash apart from 18)
    return {**train, "epochs": fraction * profiles.recipe_config(name, profile, **train).epochs}


def matched_fraction(clean: dict, target: float) -> float:
    """The budget fraction (key of ``clean``: fraction -> clean accuracy) whose accuracy is nearest
    ``target``; on a tie the larger budget."""
    if not clean:
        raise ValueError("matched_fraction: no budgets to choose from")
    return min(clean, key=lambda f: (abs(clean[f] - target), -f))


def matched_point(st: dict, plain_st: dict, at: dict, plain_at: dict, band: str, rms: float, bootstrap) -> dict:
    """ST's :func:`adoption_point` (``st`` against ``plain_st``, both at the matched budget) with
    ``gap``: ST's excess rate of following a moved signature minus AT's (``at`` against ``plain_at``),
    ``at_excess``: AT's excess alone, and ``clean_gap``: ST's clean accuracy minus AT's; all
    :func:`shortcut_rates` on the same images and conditions, so the differences are paired over images."""
    sample = {"s": st["follow"], "ps": plain_st["follow"], "a": at["follow"], "pa": plain_at["follow"],
              "sc": st["clean"], "ac": at["clean"]}
    return {**adoption_point(st, plain_st, band, rms, bootstrap),
            "gap": bootstrap(lambda m: (m["s"] - m["ps"]) - (m["a"] - m["pa"]), sample),
            "at_excess": bootstrap(lambda m: m["a"] - m["pa"], sample),
            "clean_gap": bootstrap(lambda m: m["sc"] - m["ac"], sample)}


def matched_curve(st_for: Callable, plain_st, sets: dict, conds: dict, at_rates: dict, band: str,
                  labels: torch.Tensor, wrong: torch.Tensor, bootstrap) -> dict:
    """:func:`matched_point` at every strength of ``sets`` (PSNR -> shortcut set name): the ST
    network ``st_for(name)`` and ``plain_st`` (same budget, no signature) read on ``conds[psnr]``
    (:func:`shortcut_conditions`), against ``at_rates[psnr]`` (AT's and plain AT's rates there)."""
    curve = {}
    for p, name in sets.items():
        st = tuple(shortcut_rates(m, conds[p], labels, wrong) for m in (st_for(name), plain_st))
        curve[p] = matched_point(*st, *at_rates[p], band, synthetic.shortcut_rms(name), bootstrap)
    return curve


def matched_outcome(n: dict) -> str:
    """Which reading one strength of ST at AT's clean accuracy supports (``n`` from
    :func:`matched_point`): ``"separated"`` (ST follows the signature more often than AT: the
    reach reading survives), ``"neither"`` (neither network adopts it: AT's lower accuracy explains
    its ignoring it as well), ``"against"`` (AT follows it more often) or ``"unresolved"``."""
    if n["gap"].low > 0:
        return "separated"
    if n["gap"].high < 0:
        return "against"
    if max(n["d4_follow_excess"].low, n["at_excess"].low) <= 0:
        return "neither"
    return "unresolved"


def match_state(n: dict) -> str:
    """Whether ST's clean accuracy at one strength (``n`` from :func:`matched_point`) matches
    AT's there: ``"matched"`` when the 95% interval of the difference lies within
    ``MATCH_TOLERANCE`` of 0 either way, ``"apart"`` when it lies outside, ``"unsure"`` otherwise. Each
    strength has its own pair of networks, so a budget matched on D3's set need not stay
    matched on the others."""
    e = n["clean_gap"]
    if -MATCH_TOLERANCE <= e.low and e.high <= MATCH_TOLERANCE:
        return "matched"
    return "apart" if e.low > MATCH_TOLERANCE or e.high < -MATCH_TOLERANCE else "unsure"


def faint_control(points: dict, reach_max: float, faint: float) -> str:
    """What ST at AT's clean accuracy says at D3's strength (PSNR ``faint``; ``reach_max``: the
    largest reach of ε along a whole signature, ``signature_reach(...).whole[1]``): ``"separated"``
    (matched, and ST follows the signature where AT does not: AT's lower accuracy does not
    explain D3), ``"neither"`` (matched, and neither adopts it: it explains D3 as well as ε's
    reach does) or ``"open"`` (not matched for sure, unresolved, beyond ε's reach or not measured)."""
    n = points.get(faint)
    if n is None or n["weakest"] > reach_max or match_state(n) != "matched":
        return "open"
    outcome = matched_outcome(n)
    return outcome if outcome in ("separated", "neither") else "open"


def matched_reading(points: dict, reach_max: float, faint: float) -> str:
    """What ST at AT's clean accuracy says, in words: ``points[psnr]`` from :func:`matched_point`;
    ``reach_max``: the largest reach of ε along a whole signature (``signature_reach(...).whole[1]``,
    in the weakest grating's amplitude): a strength whose weakest grating lies above it is beyond
    reach for every class and phase; ``faint``: the PSNR of D3's signature.
    Read at the strengths ε can (partly) forge, where the two readings differ: there "AT ignores
    what ε can forge" predicts that ST at AT's accuracy follows the signature more often than AT
    (gap > 0), while "AT only learned less" predicts that neither adopts it. Beyond ε's reach these two
    readings both predict that AT adopts the signature as ST at its accuracy does (the frequency
    reading, no adoption at any strength, is D4's to test), so those strengths are drawn, not read.
    A strength whose accuracies are not matched for sure (:func:`match_state`) gets its numbers and
    no conclusion."""
    def pts(n):
        return n.scaled(100).fmt(digits=1) + " pts"
    fmt = lambda ps: " and ".join(filter(None, (", ".join(f"{p:g} dB" for p in ps[:-1]), f"{ps[-1]:g} dB")))
    tol = f"{100 * MATCH_TOLERANCE:g} points"
    head = "ST at the budget matched on D3's set"
    within = sorted((p for p, n in points.items() if n["weakest"] <= reach_max), reverse=True)
    if not within:
        return head + " was not read: no strength of the curve is within ε's reach."
    group = {p: matched_outcome(points[p]) if match_state(points[p]) == "matched" else match_state(points[p])
             for p in within}
    of = lambda outcome: [p for p in within if group[p] == outcome]
    clean = lambda n: f"clean accuracy ST − AT {pts(n['clean_gap'])}"
    gap = lambda n: f"{pts(n['gap'])}, {clean(n)}"
    both = lambda n: f"ST {pts(n['d4_follow_excess'])}, AT {pts(n['at_excess'])}, {clean(n)}"
    groups = [  # (strengths, what ST does there, its numbers, what that means at matched accuracies)
        (of("separated"), "follows the signature more often than AT does at {} (ST − AT excess, {})", gap,
         ": there the reach reading survives the accuracy control"),
        (of("neither"), "does not adopt the signature at {}, and neither does AT (excess, {})", both,
         ": there AT's lower accuracy explains its ignoring it as well as ε's reach does"
         + (", D3's same-budget contrast included" if group.get(faint) == "neither" else "")),
        (of("against"), "follows the signature less often than AT at {} (ST − AT excess, {})", gap,
         ", against the reach reading"),
        (of("unresolved"), "does not differ resolvably from AT at {} (ST − AT excess, {})", gap, ""),
        (of("unsure"), "is not surely at AT's clean accuracy at {} (ST − AT excess, {})", gap,
         f": the interval of the clean-accuracy difference reaches beyond ±{tol}, so no conclusion is drawn there"),
        (of("apart"), "is not at AT's clean accuracy at {} (ST − AT excess, {})", gap,
         f": more than {tol} apart, so there it is no matched comparison"),
    ]
    parts = [text.format(fmt(ps), "; ".join(f"{p:g} dB: {num(points[p])}" for p in ps)) + end
             for ps, text, num, end in groups if ps]
    return head + " " + "; it ".join(parts) + "."     # "it": each part has ST as its subject


def matched_lean(n: dict, full_excess, budget: str, strength: float | None = None,
                 others: dict | None = None, reach_max: float | None = None) -> str:
    """Which way the point estimates of ST at AT's clean accuracy lean at D3's strength, whatever their
    intervals (shown, not judged; :func:`matched_reading` draws the conclusions): ``n`` from
    :func:`matched_point`, ``full_excess`` ST's excess rate of following a moved signature at the full
    budget (an Estimate: ST minus the standard network of that budget that never saw one), ``budget``
    the matched budget in words, ``strength`` D3's PSNR. D3's contrast is the full-budget ST's excess
    minus AT's; the part of it that remains at matched accuracy is ST's excess there minus AT's
    (``n['gap']``). Less than half remaining leans towards AT's lower accuracy, at least half towards
    ε's reach. Only D3's strength has a full-budget ST; ``others`` (PSNR -> :func:`matched_point`, the
    other strengths of the curve) are listed with ST's excess minus AT's and their clean-accuracy
    difference. Where one of them points the other way from D3's strength, the sentence says so only
    if :func:`matched_reading`'s rule lets it be read: within ε's reach (its weakest grating at most
    ``reach_max``; None: no strength is taken to be beyond it) and with clean accuracies matched
    for sure (:func:`match_state`); the others are marked as not read."""
    pt = lambda x: f"{100 * x:.1f}"
    pts = lambda e: e.scaled(100).fmt(digits=1)
    st, at, gap, full = n["d4_follow_excess"].value, n["at_excess"].value, n["gap"].value, full_excess.value
    clean = n["clean_gap"].value
    where = (f"{pt(abs(clean))} points {'above' if clean > 0 else 'below'} AT's clean accuracy" if clean
             else "at AT's clean accuracy")
    at_d3 = "at D3's strength" + (f" ({strength:g} dB)" if strength is not None else "")     # after a colon
    head = (f"On point estimates alone (shown, not judged): {at_d3}, ST at {budget} is {where} and follows the "
            f"faint signature {pt(st)} points more often than its null, AT {pt(at)} points; ")
    contrast = full - at
    lean = None
    if not contrast > 0:
        text = head + (f"ST at the full budget follows it no more often than AT ({pt(full)} vs {pt(at)} points), "
                       "so there is no contrast for the accuracy control to explain.")
    else:
        share = gap / contrast
        lean = "accuracy" if share < 0.5 else "reach"
        text = head + (f"of the {pt(contrast)} points by which ST at the full budget exceeds AT in that excess, "
                       f"{pt(gap)} ({100 * share:.0f}%) remain at matched accuracy, so the numbers lean towards "
                       + ("AT's lower accuracy: most of D3's contrast goes with what ST learns in its longer budget."
                          if lean == "accuracy" else
                          "ε's reach: most of D3's contrast remains when ST is held to AT's accuracy."))
    rest = sorted((others or {}).items(), reverse=True)
    if not rest:
        return text
    # why a strength is not read (matched_reading's rule), or "" where it is
    beyond = lambda m: reach_max is not None and m["weakest"] > reach_max
    why = {p: "beyond ε's reach" if beyond(m) else "" if match_state(m) == "matched" else
           "clean accuracies not surely matched" if match_state(m) == "unsure" else "clean accuracies not matched"
           for p, m in rest}
    listed = "; ".join(f"{p:g} dB: {pts(m['gap'])} pts (clean accuracy ST − AT {pts(m['clean_gap'])} pts"
                       + (f"; {why[p]}, not read" if why[p] else "") + ")" for p, m in rest)
    text += (f" This is read at D3's strength only; at the other strengths of the curve, ST at {budget} "
             f"minus AT in the excess rate of following the signature is {listed}.")
    readable = [(p, m) for p, m in rest if not why[p]]
    more = [f"{p:g} dB" for p, m in readable if m["gap"].low > 0]
    if lean == "accuracy" and more:
        text += (f" At {' and '.join(more)}, ST at this budget follows the signature resolvably more often than AT "
                 "does, the other way from D3's strength: there AT's lower accuracy alone does not account for AT "
                 "following it less.")
    fewer = [f"{p:g} dB" for p, m in readable if m["gap"].high <= 0]
    if lean == "reach" and fewer:
        text += (f" At {' and '.join(fewer)}, ST at this budget follows the signature no more often than AT, "
                 "the other way from D3's strength.")
    reasons = []
    if any(w == "beyond ε's reach" for w in why.values()):
        reasons.append("beyond ε's reach, the reach reading and the reading that AT only learned less both "
                       "predict that AT follows the signature as often as ST at its accuracy does, so the "
                       "comparison cannot tell them apart")
    if any(w.startswith("clean accuracies") for w in why.values()):
        reasons.append(f"where the 95% interval of the clean-accuracy difference is not within ±"
                       f"{100 * MATCH_TOLERANCE:g} points, no conclusion is drawn")
    if reasons:
        text += " Strengths marked not read are shown only: " + "; and ".join(reasons) + "."
    return text


def competence_text(clean, floor_text: str = "D3's competence floor (chance + 10 points)", n_seeds: int = 1) -> str:
    """A caveat on D4 when the strong-signature AT networks' clean accuracy ``clean`` (an Estimate,
    pooled over ``n_seeds`` training seeds) is not surely above ``CHANCE + COMPETENCE``; empty when it is."""
    floor = CHANCE + COMPETENCE
    if clean.low > floor:
        return ""
    where = "below" if clean.high < floor else "not surely above"
    pooled = f" (pooled over {n_seeds} training seeds)" if n_seeds > 1 else ""
    return (f" AT trained with the strong signature, though, classifies {clean.fmt(pct=True)} of clean "
            f"images{pooled}, {where} {floor_text}: it learned the signature largely in place of the images, so "
            "D4 shows that AT can learn a signature there, not that an AT network that learned its task does.")


def reach_reading(d3: str, d4: str, control: str = "open", ignored_beyond=(), d4_clean=None,
                  n_seeds: int = 1) -> str:
    """What D3 and D4 (verdict words) together say about why AT ignores a faint shortcut.
    ``control``: what ST at AT's clean accuracy says at D3's strength (:func:`faint_control`).
    ``ignored_beyond``: strengths (PSNR) of the adoption curve beyond ε's reach along every whole
    signature at which AT's excess rate of following the signature is not resolved above 0: AT then
    ignored a signature ε cannot erase, against a reach reading with nothing more to it.
    ``d4_clean``: the strong-signature AT networks' clean accuracy (an Estimate, pooled over ``n_seeds``
    training seeds), for :func:`competence_text`. Adopting the strong signature shows that AT *can* learn a signature in the
    band; why it ignored the faint one is settled only when the control separates the readings."""
    caveat = competence_text(d4_clean, n_seeds=n_seeds) if d4_clean is not None else ""
    beyond = _dbs(sorted(ignored_beyond, reverse=True)) if ignored_beyond else ""
    if d3 == "reproduced" and d4 == "reproduced":
        both = ("AT ignored the faint signature and adopted the strong one, beyond ε's reach, in the same band: it "
                "does not avoid high frequencies as such, and the same recipe and budget can learn a signature "
                "there. ")
        if beyond:
            both += (f"But it also ignored the signature at {beyond}, beyond ε's reach along every whole signature: "
                     "being beyond ε's reach did not suffice for AT to adopt a signature, so the reach alone does "
                     "not say where AT starts to adopt one. ")
        if control == "separated":
            text = both + ("A standard network at AT's clean accuracy follows the faint signature where AT does "
                           "not (below), so AT avoids what an ε-bounded change can forge, not merely what it had "
                           "too little accuracy to learn.")
        elif control == "neither":
            text = both + ("But a standard network at AT's clean accuracy ignores the faint one too (below), so "
                           "whether AT ignores it because ε can forge it or because AT learned less is not told "
                           "apart at D3's strength.")
        else:
            text = both + ("Whether it ignores the faint one because ε can forge it or because it learned less, "
                           "the accuracy-matched control (below) does not settle at D3's strength.")
        return text + caveat
    if d3 == "reproduced" and d4 == "not reproduced":
        return ("AT ignored even a signature no ε-bounded change can erase: it avoided the band itself, as the "
                "frequency story says, not only what ε can forge." + caveat)
    if d4 == "reproduced":         # the strong signature adopted: "AT avoids the band" is out, whatever D3 says
        text = ("AT adopted the strong signature, beyond ε's reach, in the same band: it does not avoid high "
                f"frequencies as such. With D3 {d3}, whether it ignores what an ε-bounded change can forge is not "
                "shown at this profile. ")
        if beyond:
            text += (f"It ignored the signature at {beyond}, beyond ε's reach along every whole signature: being "
                     "beyond ε's reach did not suffice for AT to adopt a signature. ")
        return text.rstrip() + caveat
    return (f"With D3 {d3} and D4 {d4}, the two readings (AT avoids what ε can forge; AT avoids the band) "
            "are not told apart at this profile." + caveat)


def clean_robustness_text(strong: str, plain: str, diff) -> str:
    """The strong-signature AT network's PGD accuracy on clean images (``strong``, formatted) against
    the AT network that never saw a signature (``plain``); ``diff``: plain minus strong, paired over
    the same images (an Estimate), in words."""
    pts = diff.scaled(100).fmt(digits=1) + " pts"
    head = f"On clean images, without its signature, the strong-signature AT network keeps {strong} under attack"
    if diff.low > 0:
        return (head + f", the AT network that never saw a signature {plain} ({pts} fewer): without its "
                "signature it is less robust than an AT network that never saw one.")
    if diff.high < 0:
        return head + f", more than the AT network that never saw a signature, {plain} ({pts})."
    return head + f", the AT network that never saw a signature {plain} (difference {pts}, not resolved)."
