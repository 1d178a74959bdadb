"""Computed verdicts with their uncertainty: criteria fixed before the numbers,
intervals on the numbers, verdicts derived from both.

A chapter declares each claim with its criteria (a described threshold on
named quantities) *before* computing anything. Every quantity is an
:class:`Estimate`: a value with a 95% interval, over test images (a
bootstrap, paired whenever two models or conditions are compared on the same
images), over training seeds (:func:`pool`), or exact (a constructed number).

A criterion **holds** when the whole interval lies on the right side of its
threshold, **fails** when the whole interval lies on the wrong side, and is
**undecided** otherwise. A claim is

* ``reproduced``      when every criterion holds,
* ``not reproduced``  when every criterion fails,
* ``partly``          when at least one holds and at least one fails (whatever the
  undecided ones do: neither of the first two verdicts is still possible),
* ``inconclusive``    otherwise: some criterion is undecided and the decided ones
  all hold or all fail, so resolving it could still change the verdict.

With several training seeds a claim is judged per seed and on the pooled
estimates; the ledger reports both ("reproduced in 3 of 3 seeds").

The bootstrap is vectorised: the resampling of ``n`` images ``B`` times is a
(B, n) weight matrix, and every resampled mean is one matrix product, so
thousands of resamples cost one tensor operation, on the device.

:func:`publish` glues one table and, per claim, ``<ID>_verdict`` and
``<ID>_ours``; the runner reads the glued ``claims`` JSON to build the
claims ledger on the landing page.
"""
from __future__ import annotations

import json
import math
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

from .notebooks import glue

__all__ = ["Estimate", "bootstrap", "mean_estimate", "difference", "pool", "pool_each", "seeds_text", "Criterion", "Claim",
           "verdict", "publish", "direction_text", "half_width", "PTS", "PCT", "not_judged", "judge_setting_aside", "first_seed_effect", "ONE_SEED",
           "VERDICTS", "STATES", "SYMBOLS"]

VERDICTS = ("reproduced", "partly", "not reproduced", "inconclusive")
STATES = ("holds", "fails", "undecided")
SYMBOLS = {"holds": "✔", "fails": "✘", "undecided": "?"}
LEVEL = 0.95


# ----------------------------------------------------------------- estimates
@dataclass
class Estimate:
    """A number with its interval. ``over`` says what the interval is over
    (``"images"``, ``"seeds × images"``, ``"mask frequencies"``, ``"exact"``...);
    ``boot`` keeps the bootstrap replicates so estimates can be pooled over seeds;
    ``bounds`` (low, high; None for an open end) is the range the quantity cannot leave,
    set by :meth:`within` for an accuracy, a share or an AUROC, so that :func:`pool`
    keeps its interval inside."""
    value: float
    low: float
    high: float
    over: str = "images"
    n: int = 0
    boot: torch.Tensor | None = field(default=None, repr=False, compare=False)
    bounds: tuple | None = field(default=None, repr=False, compare=False)

    def __post_init__(self):
        self.value, self.low, self.high = float(self.value), float(self.low), float(self.high)
        if not self.low <= self.high:
            raise ValueError(f"interval [{self.low}, {self.high}] is empty")

    @classmethod
    def exact(cls, value: float) -> "Estimate":
        """A number without sampling uncertainty (a constructed or fully enumerated value)."""
        return cls(value, value, value, over="exact")

    @classmethod
    def no_power(cls, like: "Estimate | None" = None) -> "Estimate":
        """A number that cannot be judged (nan over an unbounded interval): its criterion is
        "undecided". For a comparison without power, e.g. two accuracies both at chance;
        ``like`` lends ``over`` and ``n``."""
        return cls(math.nan, -math.inf, math.inf, like.over if like else "images", like.n if like else 0)

    def within(self, low: float | None, high: float | None) -> "Estimate":
        """This estimate, of a quantity that cannot leave [low, high] (None: open)."""
        return replace(self, bounds=(low, high))

    @property
    def is_nan(self) -> bool:
        return self.value != self.value

    def size(self) -> "Estimate":
        """``abs(value)`` with the image of the interval under ``abs``: an interval for the size
        of an effect whose sign is not claimed (an interval across 0 becomes
        ``[0, max(abs(low), abs(high))]``)."""
        if self.is_nan:
            return self
        lo, hi = self.low, self.high
        low, high = (lo, hi) if lo > 0 else (-hi, -lo) if hi < 0 else (0.0, max(-lo, hi))
        return Estimate(abs(self.value), low, high, self.over, self.n, None if self.boot is None else self.boot.abs())

    @classmethod
    def from_boot(cls, value: float, boot: torch.Tensor, over: str = "images", n: int = 0,
                  level: float = LEVEL) -> "Estimate":
        """Percentile interval of bootstrap replicates ``boot`` (B,) around ``value``."""
        boot = torch.as_tensor(boot, dtype=torch.float64).flatten().cpu()
        boot = boot[torch.isfinite(boot)]
        if len(boot) == 0:
            return cls(value, math.nan if value != value else value, value, over, n) if value != value \
                else cls.exact(value)
        q = torch.tensor([(1 - level) / 2, (1 + level) / 2], dtype=torch.float64)
        low, high = boot.quantile(q).tolist()
        return cls(value, min(low, value), max(high, value), over, n, boot.float())

    def scaled(self, factor: float) -> "Estimate":
        """The estimate times a constant (e.g. 100 for percentage points)."""
        lo, hi = sorted((self.low * factor, self.high * factor))
        boot = None if self.boot is None else self.boot * factor
        bounds = None
        if self.bounds is not None:
            ends = [None if b is None else b * factor for b in self.bounds]
            bounds = tuple(ends if factor > 0 else ends[::-1])
        return Estimate(self.value * factor, lo, hi, self.over, self.n, boot, bounds)

    def fmt(self, pct: bool = False, digits: int | None = None) -> str:
        """``"38.8% [35.1, 42.0]"`` (pct) or ``"2.51 [2.30, 2.77]"``.

        The interval is printed whenever the number has one, also when its bounds coincide
        (``"1.00 [1.00, 1.00]"``: every resample gave the same value). Only an exact number and a
        single point value that declares it has no interval (``over`` ending in "(no interval)",
        e.g. one Fourier mask) print without brackets."""
        if self.is_nan:       # a number set aside by a check is not a number without power
            return "not judged" if self.over.startswith(NOT_JUDGED) else "no power"
        k, unit = (100.0, "%") if pct else (1.0, "")
        d = digits if digits is not None else (1 if pct else 3)
        shown = lambda x: f"{round(k * x, d) + 0.0:.{d}f}"     # + 0.0: a float32 zero such as -3e-8 prints 0.0
        v = f"{shown(self.value)}{unit}"
        if self.over == "exact" or (self.over.endswith("(no interval)") and self.low == self.high):
            return v
        return f"{v} [{shown(self.low)}, {shown(self.high)}]"

    def to_dict(self) -> dict:
        out = {"value": self.value, "low": self.low, "high": self.high, "over": self.over, "n": self.n}
        return out | ({"bounds": list(self.bounds)} if self.bounds is not None else {})


NOT_JUDGED = "not judged"    # the ``over`` of a number a check set aside (:func:`not_judged`)

_WEIGHTS: "OrderedDict[tuple, list[torch.Tensor]]" = OrderedDict()
_WEIGHTS_BYTES = 256 << 20          # keep at most this much of resampling matrices


def _weight_blocks(n: int, n_boot: int, seed: int, device) -> list[torch.Tensor]:
    """(block, n) multinomial resampling weights (rows sum to 1) covering ``n_boot`` resamples.

    They depend only on (n, n_boot, seed, device), so every criterion of a chapter
    that resamples the same images reuses them: building them is most of a
    bootstrap's cost, the matrix products that use them are cheap.
    """
    key = (n, n_boot, seed, str(device))
    if key in _WEIGHTS:
        _WEIGHTS.move_to_end(key)
        return _WEIGHTS[key]
    gen = torch.Generator(device=device).manual_seed(seed)
    block = max(1, min(n_boot, (1 << 24) // n))      # a block stays below ~16M entries
    blocks = []
    for s in range(0, n_boot, block):
        b = min(block, n_boot - s)
        idx = torch.randint(0, n, (b, n), generator=gen, device=device)
        w = torch.zeros(b, n, device=device)
        blocks.append(w.scatter_add_(1, idx, torch.ones_like(w)).div_(n))
    _WEIGHTS[key] = blocks
    while sum(w.numel() * 4 for ws in _WEIGHTS.values() for w in ws) > _WEIGHTS_BYTES and len(_WEIGHTS) > 1:
        _WEIGHTS.popitem(last=False)
    return blocks


def bootstrap(statistic: Callable[[dict], torch.Tensor], *samples: dict, n_boot: int = 2000,
              level: float = LEVEL, seed: int = 0, device=None, over: str = "images") -> Estimate:
    """Percentile bootstrap of ``statistic`` over the images of ``samples``.

    Each sample is a dict of per-image arrays ``name -> (n, ...)`` that share
    their images, so one resampling applies to all of them (a *paired*
    bootstrap); separate dicts are resampled independently. ``statistic``
    receives ``name -> (B, ...)`` resampled *means* and returns (B,): any
    function of means (a difference, a ratio, a centroid of a mean profile).
    The point value is ``statistic`` of the plain means. The same ``seed``
    gives the same resamples for the same ``n``, so estimates of several
    training seeds on the same images can be pooled replicate by replicate.
    """
    if not samples:
        raise ValueError("bootstrap needs at least one sample")
    first = next(iter(samples[0].values()))
    device = device or (first.device if isinstance(first, torch.Tensor) else "cpu")
    point, reps, sizes = {}, {}, []
    for g, group in enumerate(samples):
        arrays = {k: torch.as_tensor(v).to(device=device, dtype=torch.float32) for k, v in group.items()}
        ns = {a.shape[0] for a in arrays.values()}
        if len(ns) != 1:
            raise ValueError(f"paired arrays need the same number of images, got sizes {sorted(ns)} "
                             f"for {sorted(arrays)}")
        n = ns.pop()
        if n == 0:
            raise ValueError(f"no images in the sample {sorted(arrays)}")
        sizes.append(n)
        flat = {k: a.reshape(n, -1) for k, a in arrays.items()}
        parts = {k: [] for k in flat}
        for w in _weight_blocks(n, n_boot, seed + 7919 * g, device):   # independent samples: own resamples
            for k, a in flat.items():
                parts[k].append(w @ a)
        for k, a in arrays.items():
            point[k] = a.mean(0, keepdim=True)
            reps[k] = torch.cat(parts[k]).reshape(n_boot, *a.shape[1:])
    value = float(statistic(point).reshape(-1)[0])
    boot = statistic(reps).reshape(-1)
    return Estimate.from_boot(value, boot, over=over, n=min(sizes), level=level)


def mean_estimate(x, **kw) -> Estimate:
    """Mean of per-image values ``x`` (n,) with its bootstrap interval."""
    return bootstrap(lambda m: m["x"], {"x": x}, **kw)


def difference(a, b, **kw) -> Estimate:
    """``mean(a) - mean(b)`` for per-image values of the *same* images (paired)."""
    return bootstrap(lambda m: m["a"] - m["b"], {"a": a, "b": b}, **kw)


def pool(estimates: list[Estimate], seed: int = 0, level: float = LEVEL, unit: str = "seeds") -> Estimate:
    """One estimate over training seeds (the mean of the per-seed values); ``unit`` names
    them in the estimate's ``over`` ("training runs" for repeated trainings of one setting).

    Two sources of uncertainty are added per replicate: the test images (with
    bootstrap replicates from the same image resamples, as :func:`bootstrap`
    gives, replicate ``b`` averages the seeds' replicate ``b``; without them each
    seed is taken as normal with the spread its interval implies) and the
    training seeds, a Student-t draw with k - 1 degrees of freedom times the
    standard error of the mean over the k seeds. Resampling three seeds with
    replacement would see about ten distinct means and give intervals too
    narrow by about the t quantile's excess (4.30 against 1.96 at k = 3); the
    per-seed verdicts are reported too.

    The seed term is symmetric and can carry the interval past a value the quantity
    cannot take (an accuracy of 10.7% [-3.0, 23.3] at three seeds, 2026-11-26); where
    the seeds' estimates share :attr:`Estimate.bounds`, the replicates are clipped to
    them. Criteria are strict (``value > t``), so an end clipped to a bound never
    decides one.
    """
    if not estimates:
        raise ValueError("pool needs at least one estimate")
    if len(estimates) == 1:
        return estimates[0]
    if any(e.is_nan for e in estimates):
        return Estimate.no_power(estimates[0])        # a seed without power leaves the pool without it
    k = len(estimates)
    value = sum(e.value for e in estimates) / k
    gen = torch.Generator().manual_seed(seed)
    boots = [e.boot for e in estimates]
    values = torch.tensor([e.value for e in estimates], dtype=torch.float64)
    if all(b is not None for b in boots) and len({len(b) for b in boots}) == 1:
        images = torch.stack([b.double() for b in boots]).mean(0)            # (B,): image part, seeds averaged
        n_boot = len(images)
    else:
        z = 1.959964
        n_boot = 4000
        se = torch.tensor([(e.high - e.low) / (2 * z) for e in estimates], dtype=torch.float64)
        images = (values + se * torch.randn(n_boot, k, generator=gen, dtype=torch.float64)).mean(1)
    # between seeds: t_{k-1} x s / sqrt(k); t drawn as z / sqrt(chi2_{k-1} / (k-1)) from the same generator
    normal = torch.randn(n_boot, k, generator=gen, dtype=torch.float64)
    t = normal[:, 0] / (normal[:, 1:] ** 2).mean(1).sqrt()
    reps = images + t * values.std() / math.sqrt(k)
    bounds = {e.bounds for e in estimates}
    bounds = bounds.pop() if len(bounds) == 1 else None
    if bounds is not None:
        reps = reps.clamp(*bounds)
    over = f"{k} {unit} × {estimates[0].over}" if estimates[0].over != "exact" else f"{k} {unit}"
    out = Estimate.from_boot(value, reps, over=over, n=estimates[0].n, level=level)
    return out if bounds is None else out.within(*bounds)


def pool_each(per_seed: list[dict], unit: str = "seeds") -> dict:
    """:func:`pool` of every number of ``per_seed``: one dict of Estimates per training seed
    (or training run), all with the same keys."""
    if not per_seed:
        raise ValueError("pool_each needs at least one dict of estimates")
    return {k: pool([n[k] for n in per_seed], unit=unit) for k in per_seed[0]}


# ----------------------------------------------------------------- criteria
PTS = {"unit": "pts", "scale": 100}    # Criterion(..., **PTS): a difference of rates, shown in points
PCT = {"unit": "%", "scale": 100}      # Criterion(..., **PCT): a share or rate, shown as a percentage


@dataclass
class Criterion:
    """``key`` (one name, several names, or ``"prefix/*"``: every quantity so
    named) compared with a threshold: ``above=t`` asks value > t, ``below=t``
    asks value < t. With several quantities the criterion is "for every one".
    ``size=True`` judges the size ``abs(value)`` of a signed number (:meth:`Estimate.size`),
    for an effect whose direction is not claimed; the number stays signed, so it is
    pooled over seeds before the fold.

    For readers, not for judging: ``name`` is a short name of the criterion (lists of states
    use it in place of the key); numbers and thresholds print times ``scale`` followed by
    ``unit`` (``**PTS``: fractions shown as points, ``**PCT``: as percentages); ``labels``
    names each quantity of a criterion that reads several different ones (a ``prefix/name``
    key prints as its name)."""
    describe: str
    key: str | tuple
    above: float | None = None
    below: float | None = None
    size: bool = False
    state: str | None = None
    used: dict = field(default_factory=dict)
    name: str = ""
    unit: str = ""
    scale: float = 1.0
    labels: dict = field(default_factory=dict)

    def __post_init__(self):
        if (self.above is None) == (self.below is None):
            raise ValueError(f"criterion {self.describe!r}: give exactly one of above= or below=")
        plain = [k for k in ((self.key,) if isinstance(self.key, str) else self.key) if "/" not in k]
        if len(plain) > 1 and any(k not in self.labels for k in plain):
            raise ValueError(f"criterion {self.describe!r} reads {len(plain)} quantities {plain}: "
                             f"name each in labels= so a reader can tell them apart")

    def keys(self, numbers: dict) -> list[str]:
        wanted = (self.key,) if isinstance(self.key, str) else tuple(self.key)
        found = []
        for k in wanted:
            if k.endswith("/*"):
                found += sorted(n for n in numbers if n.startswith(k[:-1]))
            elif k in numbers:
                found.append(k)
            else:
                raise KeyError(f"criterion {self.describe!r} needs the number {k!r}, which was not computed")
        if not found:
            raise KeyError(f"criterion {self.describe!r}: no number matches {self.key!r}")
        return found

    def judge_one(self, e: Estimate) -> str:
        if not isinstance(e, Estimate):
            raise TypeError(f"criterion {self.describe!r}: numbers must be Estimates, got {type(e).__name__}")
        if e.value != e.value:
            return "undecided"                                            # nan: nothing to judge
        if self.size:
            e = e.size()
        if self.above is not None:
            return "holds" if e.low > self.above else "fails" if e.high <= self.above else "undecided"
        return "holds" if e.high < self.below else "fails" if e.low >= self.below else "undecided"

    def judge(self, numbers: dict) -> str:
        """State of the criterion on ``numbers`` (name -> Estimate); does not store it."""
        states = [self.judge_one(numbers[k]) for k in self.keys(numbers)]
        if all(s == "holds" for s in states):
            return "holds"
        return "fails" if "fails" in states else "undecided"

    def evaluate(self, numbers: dict) -> str:
        self.used = {k: numbers[k] for k in self.keys(numbers)}
        self.state = self.judge(numbers)
        return self.state

    @property
    def label(self) -> str:
        """The criterion's short name for lists of states (its key where it has none)."""
        return self.name or (self.key if isinstance(self.key, str) else " & ".join(self.key))

    @property
    def threshold_text(self) -> str:
        t = self.above if self.above is not None else self.below
        t = f"×{t * self.scale:g}" if self.unit == "×" else f"{t * self.scale:g}" + (
            "" if not self.unit else self.unit if self.unit == "%" else f" {self.unit}")
        text = f"{'>' if self.above is not None else '<'} {t}"
        return f"size {text}" if self.size else text

    def value_text(self, key: str, e: "Estimate") -> str:
        """One number as a reader sees it: its label (where the criterion reads several, or the
        name after a key's ``/``), then value and interval in the criterion's unit."""
        name = self.labels.get(key) or (key.split("/", 1)[1] if "/" in key else "")
        if self.unit == "%":                                            # fmt(pct=True) multiplies by 100
            shown = e.scaled(self.scale / 100).fmt(pct=True)
        elif self.unit == "×":                                          # a ratio: ×1.69 [1.66, 1.73]
            shown = ("" if e.is_nan else "×") + e.scaled(self.scale).fmt(digits=2)
        elif self.unit:
            shown = e.scaled(self.scale).fmt(digits=1 if self.scale == 100 else 2)
            shown += "" if e.is_nan else f" {self.unit}"
        else:
            shown = e.fmt()
        return f"{name} {shown}" if name else shown

    def values_text(self, numbers: dict | None = None) -> str:
        """The numbers the criterion reads (``used`` after evaluation, else from ``numbers``)."""
        got = self.used if numbers is None else {k: numbers[k] for k in self.keys(numbers)}
        return ", ".join(self.value_text(k, e) for k, e in got.items())


def half_width(e: Estimate) -> float:
    """Half the width of ``e``'s interval (the ± of a roughly symmetric one)."""
    return (e.high - e.low) / 2


def direction_text(e: Estimate, up: str, down: str, neither: str) -> str:
    """``up`` when the interval lies above 0, ``down`` when below, else ``neither``: prose that
    follows an estimate's sign only where its interval resolves it."""
    return up if e.low > 0 else down if e.high < 0 else neither


def not_judged(numbers: dict, keys) -> dict:
    """``numbers`` with ``keys`` replaced by no-power Estimates: the criteria reading them
    are undecided. For numbers a budget check sets aside (the claim's text says why)."""
    out = dict(numbers)
    for k in keys:
        out[k] = Estimate(math.nan, -math.inf, math.inf, f"{NOT_JUDGED} ({numbers[k].over})", numbers[k].n)
    return out


def judge_setting_aside(claim: "Claim", per_seed: list[dict], ours: str, aside, why) -> dict:
    """Judge ``claim`` on ``per_seed`` numbers as measured, then again with the keys
    ``aside(pooled numbers)`` returns set aside (:func:`not_judged`) when there are any; the
    claim's text then starts with ``why(keys)`` and keeps the states and verdict as measured.
    For a budget check that can only take a judgement away, never add one.

    Returns ``{"aside": keys, "measured_states": [...], "measured_verdict": str}``."""
    claim.evaluate(per_seed, ours)
    out = {"aside": list(aside(claim.numbers)), "measured_states": [c.state for c in claim.criteria],
           "measured_verdict": claim.verdict}
    if out["aside"]:
        states = ", ".join(f"{c.label} {c.state}" for c in claim.criteria)
        claim.evaluate([not_judged(n, out["aside"]) for n in per_seed],
                       f"{why(out['aside'])}; as measured: {ours}; criteria {states} → {out['measured_verdict']}")
    return out


def seeds_text(pooled: str, per_seed: list[str]) -> str:
    """How many seeds' own verdicts agree with the pooled one, and what the others said:
    "inconclusive in 1 of 3 seeds (the others: partly, partly)" (a count alone hid them)."""
    same = sum(v == pooled for v in per_seed)
    others = [v for v in per_seed if v != pooled]
    return f"{pooled} in {same} of {len(per_seed)} seeds" + (f" (the others: {', '.join(others)})" if others else "")


def verdict(states: list[str]) -> str:
    """The claim's verdict from its criteria's states (see the module docstring)."""
    if not states:
        raise ValueError("a verdict needs at least one criterion")
    bad = set(states) - set(STATES)
    if bad:
        raise ValueError(f"unknown criterion states {bad}; expected {STATES}")
    if "holds" in states and "fails" in states:
        return "partly"                     # already decided: neither all-hold nor all-fail can happen
    if "undecided" in states:
        return "inconclusive"
    return "reproduced" if states[0] == "holds" else "not reproduced"


@dataclass
class Claim:
    id: str
    paper: str
    statement: str
    paper_value: str
    criteria: list[Criterion]
    ours: str = ""
    numbers: dict = field(default_factory=dict)
    seed_verdicts: list = field(default_factory=list)
    variants: dict = field(default_factory=dict)

    def evaluate(self, numbers, ours: str) -> str:
        """Judge every criterion. ``numbers`` maps names to :class:`Estimate`; a
        list of such dicts (one per training seed) is judged per seed and pooled."""
        if isinstance(numbers, (list, tuple)):
            if not numbers:
                raise ValueError(f"claim {self.id}: no seeds to evaluate")
            self.seed_verdicts = [verdict([c.judge(n) for c in self.criteria]) for n in numbers]
            numbers = {k: pool([n[k] for n in numbers]) for k in numbers[0]}
        else:
            self.seed_verdicts = []
        self.numbers, self.ours = dict(numbers), ours
        for c in self.criteria:
            c.evaluate(self.numbers)
        return self.verdict

    def compare_variant(self, label: str, numbers: dict) -> dict:
        """Judge the same criteria on another data variant's numbers (e.g. the JPEG
        pixels of the same test images); record which criteria change state."""
        if any(c.state is None for c in self.criteria):
            raise RuntimeError(f"claim {self.id}: evaluate() the main numbers first")
        states = [c.judge(numbers) for c in self.criteria]
        changed = [f"{c.describe}: {c.state} → {s}" for c, s in zip(self.criteria, states) if s != c.state]
        self.variants[label] = {"verdict": verdict(states), "states": states, "changed": changed}
        return self.variants[label]

    @property
    def verdict(self) -> str:
        if any(c.state is None for c in self.criteria):
            raise RuntimeError(f"claim {self.id} has not been evaluated yet; call .evaluate(numbers, ours)")
        return verdict([c.state for c in self.criteria])

    @property
    def seeds_text(self) -> str:
        return seeds_text(self.verdict, self.seed_verdicts) if self.seed_verdicts else "1 seed"

    def criteria_text(self) -> str:
        parts = []
        for c in self.criteria:
            parts.append(f"{SYMBOLS[c.state]} {c.describe} ({c.values_text()}; needs {c.threshold_text})")
        return "; ".join(parts)

    def variants_text(self) -> str:
        if not self.variants:
            return "—"
        out = []
        for label, v in self.variants.items():
            out.append(f"{label}: same verdict" if v["verdict"] == self.verdict and not v["changed"]
                       else f"{label}: {v['verdict']}" + (f" ({'; '.join(v['changed'])})" if v["changed"] else ""))
        return "; ".join(out)


ONE_SEED = "not measured: one training seed in this run (the quick and paper profiles train three)"


def first_seed_effect(claims: list[Claim]) -> str:
    """What pooling the training seeds did to ``claims``' verdicts, for a deviations
    table: the first seed's verdicts, the pooled ones and every seed's; ``ONE_SEED`` when
    the claims were judged on one seed (nothing to set the first seed against)."""
    if not claims:
        raise ValueError("first_seed_effect needs the judged claims (Claim.evaluate) of a chapter, got none")
    if any(len(c.seed_verdicts) < 2 for c in claims):
        return ONE_SEED
    listed = lambda verdicts: ", ".join(f"{c.id} {v}" for c, v in zip(claims, verdicts))
    return (f"verdicts on the first seed alone: {listed(c.seed_verdicts[0] for c in claims)}; pooled over "
            f"{len(claims[0].seed_verdicts)} seeds: {listed(c.verdict for c in claims)} (per seed: "
            + "; ".join(f"{c.id} {', '.join(c.seed_verdicts)}" for c in claims) + ")")


def publish(claims: list[Claim], ctx) -> "object":
    """Glue the verdicts and return a DataFrame to display as the verdict table."""
    import pandas as pd
    rows, ledger = [], []
    for c in claims:
        row = {"claim": c.id, "paper": c.paper, "statement": c.statement, "paper's value": c.paper_value,
               "ours": c.ours, "verdict": c.verdict, "seeds": c.seeds_text, "criteria": c.criteria_text()}
        if c.variants:
            row["other pixels"] = c.variants_text()
        rows.append(row)
        glue(f"{c.id}_verdict", c.verdict)
        glue(f"{c.id}_ours", c.ours)
        glue(f"{c.id}_seeds", c.seeds_text)
        # the numbers this claim's criteria read (a chapter may pass a shared dict of all its numbers)
        used = {key for k in c.criteria for key in k.used}
        numbers = {k: e.to_dict() for k, e in c.numbers.items() if isinstance(e, Estimate) and k in used}
        # rules: the criteria as data, so a sweep can judge numbers pooled over jobs (freqlib.sweep)
        rules = [{"describe": k.describe, "keys": list(k.used), "above": k.above, "below": k.below,
                  "size": k.size, "unit": k.unit, "scale": k.scale, "labels": k.labels}
                 for k in c.criteria]
        ledger.append(dict(row, profile=ctx.profile, variant=ctx.variant, device=ctx.device,
                           states=[k.state for k in c.criteria], seed_verdicts=c.seed_verdicts,
                           numbers=numbers, variants=c.variants, rules=rules))
    glue("claims", json.dumps(ledger))
    glue("analysis_variant", ctx.variant)
    table = pd.DataFrame(rows).set_index("claim")
    glue("verdict_table", table, display=False)
    return table
