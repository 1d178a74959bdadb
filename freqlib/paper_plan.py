"""The paper run's plan: which zoo models each chapter needs, and what each step costs.

:func:`default_plan` lists, per chapter, the zoo models it asks ``ctx.model`` for
at a profile; :class:`Estimator` says how long training one or executing a chapter
will take (planned seconds of :data:`PLANNED`, scaled by what finished steps
measured); :func:`plan_table` shows both before anything runs
(``python -m freqlib paper-run --plan``). :mod:`freqlib.paper_run` runs the plan.
"""
from __future__ import annotations

import json
import statistics
from dataclasses import dataclass
from pathlib import Path

__all__ = ["ModelSpec", "default_plan", "plan_of_params", "plan_for", "params_for", "check_params", "PLANNED",
           "RESUMABLE", "Estimator", "min_call_seconds", "plan_table", "CARRY_MB", "SAFETY", "MARGIN_S"]

# One call's budget
CARRY_MB = 24.0          # zoo carried between calls (64 MiB in all: repo, data and wheels take ~30)
SAFETY = 1.2             # a step starts only if SAFETY x its estimate fits before the deadline
MARGIN_S = 20.0          # kept free at the end of a call: pruning, state, packing

# ------------------------------------------------------------------ plan
MAIN = ("standard", "linf_at", "l2_at", "gaussian")
GEOMETRIC = ("scale", "rotate", "translate")
PROP_SHARES = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class ModelSpec:
    """A zoo model: recipe name and TrainConfig overrides (what a chapter passes to ``ctx.model``).

    ``by_ref``: the chapter reaches the model through :meth:`ChapterContext.ref`
    and reads only cached results of it (:mod:`freqlib.results`), so it is not
    trained up front: the chapter trains it when a result needs it, and a model
    whose results are stored is never trained again (nor carried)."""
    name: str
    overrides: str = "{}"        # canonical JSON, so specs hash and compare
    by_ref: bool = False

    @classmethod
    def make(cls, name: str, by_ref: bool = False, **overrides) -> "ModelSpec":
        return cls(name, json.dumps(overrides, sort_keys=True, default=list), by_ref)

    @property
    def kwargs(self) -> dict:
        return json.loads(self.overrides)

    @property
    def label(self) -> str:
        kw = self.kwargs
        seed = kw.pop("seed", 0)
        extra = ", ".join(f"{k}={v}" for k, v in kw.items())
        return f"{self.name} seed {seed}" + (f" ({extra})" if extra else "")


def default_plan(profile: str, seed: int = 0, seeds: int = 0) -> dict[str, list[ModelSpec]]:
    """The zoo models each chapter loads, by chapter prefix (what the chapters
    ask ``ctx.model`` for at ``profile``). ``seed`` and ``seeds`` are the chapters'
    parameters of those names: training seeds ``seed, seed + 1, ...``, as many as
    ``seeds`` or, for 0, the profile's default (so ``paper-run -p seeds=1`` trains
    one seed up front, not the three its chapters would no longer read).

    A chapter that trains a model not listed here still works (it trains it
    while executing); paper-run notices and trains it up front next time.
    """
    from .profiles import default_seeds
    from .synthetic import ADOPTION_PSNRS, STRONG_PSNR, shortcut_name
    from .shortcut import MATCH_FRACTIONS, shorter_budget
    for name, value in (("seed", seed), ("seeds", seeds)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise ValueError(f"{name}={value!r} must be a whole number >= 0 (as the chapters' parameter of that name)")
    training = lambda arch=None: list(range(seed, seed + (seeds or default_seeds(profile, arch))))
    seeds_ = training()
    each = lambda names, ss=seeds_, **kw: [ModelSpec.make(n, **kw, **({"seed": s} if s else {}))
                                           for n in names for s in ss]
    # chapter 2 keeps ResNet-18 at the paper profile (one seed: profiles.ARCH_SEEDS); at
    # smoke/quick it uses the profile's net. It reads its models by reference.
    b = dict(arch="resnet18", widths=[64], whiten=False) if profile == "paper" else dict(whiten=False)
    b_seeds = training(b.get("arch"))
    props = [ModelSpec.make(f"prop_p{round(100 * p):03d}", by_ref=True, stem={"kind": "banded", "high_share": p},
                            perturbation="none", **b, **({"seed": s} if s else {}))
             for p in PROP_SHARES for s in b_seeds]
    b2 = (each(("standard", "gaussian", "amplitude"), b_seeds, by_ref=True, **b)
          + each(("modulated_amplitude",), b_seeds, by_ref=True, stem={"kind": "modulated"},
                 perturbation="amplitude", **b))
    # chapter 3 masks Paper C's own robust recipe (PGD-10) at the paper profile
    masked = MAIN + (("linf_pgd_c",) if profile == "paper" else ())
    return {
        "00": each(("standard",), [0]),
        "01": each(MAIN),
        "02": each(("standard", "linf_at", "gaussian"), [0]) + props + b2,
        "03": each(masked) + each(GEOMETRIC),
        "04": each(MAIN),
        "05": each(("standard", "linf_at"), [0]),
        # chapter 6: planted-frequency networks (the chapter's planted_train), shortcut networks,
        # and the plain zoo's networks it compares them with (AT every seed: D4's nulls; ST the first)
        "06": each(tuple(f"planted_{b}" for b in ("low", "high", "horizontal")),
                   **({"epochs": 10} if profile == "paper" else {}))
              + each(("shortcut_standard",), dataset="shortcut-high")
              + each(("shortcut_linf_at",), dataset="shortcut-high")
              # claim D4: the same pair with a signature beyond the reach of eps (AT per seed, ST for the first)
              + each(("shortcut_linf_at",), dataset=shortcut_name("high", STRONG_PSNR))
              + each(("shortcut_standard",), seeds_[:1], dataset=shortcut_name("high", STRONG_PSNR))
              # and its adoption curve: AT at the strengths in between, first seed only
              + [spec for p in ADOPTION_PSNRS
                 for spec in each(("shortcut_linf_at",), seeds_[:1], dataset=shortcut_name("high", p))]
              # and ST for shorter budgets, to find AT's clean accuracy (first seed; the matched
              # budget's networks at the other strengths are trained while the chapter runs)
              + [spec for f in MATCH_FRACTIONS
                 for spec in each(("shortcut_standard",), seeds_[:1], dataset="shortcut-high",
                                  **shorter_budget(profile, {}, f))]
              + each(("standard",), seeds_[:1]) + each(("linf_at",)),
    }


def plan_of_params(profile: str, params: dict) -> dict[str, list[ModelSpec]]:
    """:func:`default_plan` for the chapters' ``-p`` parameters (their ``seed`` and ``seeds``)."""
    return default_plan(profile, **{k: params[k] for k in ("seed", "seeds") if k in params})


def plan_for(stem: str, plan: dict[str, list[ModelSpec]]) -> list[ModelSpec]:
    """The plan's models of chapter ``stem`` (keys are chapter prefixes such as ``01``)."""
    return next((specs for prefix, specs in plan.items() if stem.startswith(prefix)), [])


def params_for(params: dict, path: Path) -> dict:
    """The ``-p`` parameters chapter ``path`` declares: ``seeds`` reaches the chapters
    that train several seeds, and chapters without it run as they are."""
    from .runner import chapter_parameters
    declared = chapter_parameters(path)
    return {k: v for k, v in params.items() if k in declared}


def check_params(params: dict, paths: list[Path]) -> None:
    """Every ``-p`` parameter must be one that some chapter of the run declares (a
    typo would otherwise cost a GPU call), with the type of its default there."""
    from .runner import ParameterError, chapter_parameters, validate_parameters
    declared = [chapter_parameters(p) for p in paths]
    unknown = [k for k in params if not any(k in d for d in declared)]
    if unknown:
        allowed = sorted(set().union(*declared)) if declared else []
        raise ParameterError(f"parameter(s) {', '.join(map(repr, unknown))} are declared by no chapter of this "
                             f"run; allowed: {', '.join(allowed)}")
    for p in paths:
        validate_parameters(p, params_for(params, p))


# -------------------------------------------------------------- estimates
# Planned seconds before anything was measured, per device type. Training: seconds
# per epoch over 50,000 images of the plain recipe, times a factor per perturbation
# (adversarial recipes run a forward-backward pass per attack step), plus the zoo's
# evaluation (test accuracy, PGD-50 x 10 restarts on 1,000 images: about three times
# dearer on robust models, whose images survive the restarts). H200 numbers are
# estimates from the published airbench time (3.8 s for 9.9 epochs on an A100) and
# ResNet-18 throughput, to be replaced by measurements (bench/bench_paper.py and the
# timings each call records). Chapters: estimates of the paper-profile chapters.
PLANNED = {
    "cuda": {"epoch": {"airbench": 0.45, "resnet18": 3.0, "fastnet": 0.35},
             "eval": {"airbench": 3.0, "resnet18": 12.0, "fastnet": 3.0},
             # 03: +140 s (2026-11-24) for C3's annulus-shuffled nulls, 8 more 30-epoch masked trainings;
             # 01: +100 s (2026-11-24) for the JPEG check recomputed on images 0-931 (both pixel kinds);
             # 06: +30 s (2026-11-24) for ST at AT's clean accuracy (4 short trainings in the chapter);
             # 01: +30 s (2026-11-25) for the heat maps again with clipping (exercise 2's numbers)
             # 06: +40 s (2026-11-25) for the removal lenses on signed images (4 more 30-epoch masks)
             # 06: +40 s (2026-11-26) for them again on strong-signed images (AT's behaviour check)
             # 04: +160 s (2026-11-26) for its lens scores on seeds 1 and 2 (8 more networks, masks from 03)
             "chapter": {"00": 30, "01": 430, "02": 240, "03": 560, "04": 360, "05": 120, "06": 470},
             "item": 90, "setup": 45},
    "cpu": {"epoch": {"airbench": 60.0, "resnet18": 900.0, "fastnet": 65.0},
            "eval": {"airbench": 5.0, "resnet18": 60.0, "fastnet": 5.0},
            "chapter": {"00": 20, "01": 60, "02": 60, "03": 120, "04": 60, "05": 40, "06": 120},
            "item": 60, "setup": 15},
}
PASSES = {"none": 1.0, "gaussian": 1.3, "amplitude": 1.6, "geometric": 1.2,
          "fgsm_linf": 2.3, "fgsm_l2": 2.3}
ROBUST_EVAL = 3.0   # evaluation of an adversarially trained model, relative to a standard one
# Chapters whose heavy work goes through freqlib.results (one cached result per model
# and step): a call may start them with less time than they need; when its time is up
# they stop between results (OutOfTime) and the next call continues from the results.
# "item" in PLANNED is the planned cost of one such result, without training.
RESUMABLE = ("02", "03")


class Estimator:
    """Seconds a step will take: its recorded time if it ran before, else the
    plan scaled by the median ratio measured/planned of finished steps of its kind."""

    def __init__(self, device: str, planned: dict | None = None, history: list | None = None):
        self.device = "cuda" if str(device).startswith("cuda") else "cpu"
        self.planned = planned or PLANNED[self.device]
        self.history = history if history is not None else []

    def factor(self, kind: str) -> float:
        """Median measured/planned of finished steps of ``kind``; with none yet, of the
        other kind (a machine slower than planned at training is slower at chapters too)."""
        for kinds in ((kind,), ("train", "chapter")):
            ratios = [h["actual"] / h["planned"] for h in self.history if h["kind"] in kinds and h["planned"] > 0]
            if ratios:
                return min(20.0, max(0.05, statistics.median(ratios)))
        return 1.0

    def planned_train(self, cfg: dict) -> float:
        from .profiles import passes_per_batch
        arch, pert = cfg["arch"], cfg["perturbation"]
        passes = PASSES.get(pert, float(passes_per_batch(pert, cfg.get("attack_steps", 7))))
        epoch = self.planned["epoch"].get(arch, self.planned["epoch"]["fastnet"])
        evaluation = self.planned["eval"].get(arch, self.planned["eval"]["fastnet"])
        if pert.startswith(("fgsm", "pgd")):
            evaluation *= ROBUST_EVAL
        return epoch * cfg["epochs"] * cfg["n_train"] / 50_000 * passes + evaluation

    def planned_chapter(self, stem: str) -> float:
        table = self.planned["chapter"]
        return float(next((v for k, v in table.items() if stem.startswith(k)), max(table.values())))

    def record(self, kind: str, planned: float, actual: float) -> None:
        self.history.append({"kind": kind, "planned": round(planned, 3), "actual": round(actual, 3)})



# ---------------------------------------------------------------- plan view
def min_call_seconds(models: list[tuple[float, float]], chapter_s: float, carry_mb: float = CARRY_MB) -> float:
    """Least time one call needs to execute a chapter whose models are ``(train s, bf16 MB)``:
    the chapter itself plus the training of every model that cannot have been carried in
    (the carry is filled with the models dearest to retrain per MB first)."""
    carried, trained = 0.0, 0.0
    for t, mb in sorted(models, key=lambda m: -m[0] / max(m[1], 1e-9)):
        if carried + mb <= carry_mb:
            carried += mb
        else:
            trained += t
    return chapter_s + trained


def plan_table(profile: str = "paper", device: str = "cuda", plan: dict | None = None,
               call_s: float = 540.0, params: dict | None = None) -> str:
    """The plan as a markdown table with planned seconds and bf16 sizes (no training).

    *Longest step* is the longest piece of work that must fit in one call on a
    machine kept warm between calls (the runbook's protocol: what was trained
    stays): a non-resumable chapter is one step; a resumable one (:data:`RESUMABLE`)
    stops between stored results, so its step is one by-reference model's training
    plus one result. ⚠ marks a step over one call. *Fresh machine* is the least
    time one call needs when nothing but the carry survived from earlier calls."""
    from .data import available_variant
    from .models import build_model
    from .zoo import model_key
    params = params or {}
    plan = plan or plan_of_params(profile, params)
    est = Estimator(device)
    seen: dict[str, tuple[float, float]] = {}
    lines = ["| chapter | new models | training (planned s) | chapter (planned s) | bf16 MB of its models "
             "| longest step (s) | fresh machine: one call needs (s) |", "|---|---|---|---|---|---|---|"]
    total, too_big = 0.0, []
    for prefix, specs in plan.items():
        new, t_train, mb, its, ref_train = [], 0.0, 0.0, {}, []
        for spec in specs:
            key, cfg = model_key(spec.name, profile, available_variant(), **spec.kwargs)
            if key not in seen:
                model = build_model(cfg["arch"], cfg["widths"], stem=cfg["stem"] or None)
                size = sum(v.numel() * (2 if v.is_floating_point() and v.ndim >= 2 else v.element_size())
                           for v in model.state_dict().values()) / 2 ** 20
                seen[key] = (est.planned_train(cfg), size)
                new.append(spec.label)
                t_train += seen[key][0]
            mb += seen[key][1]
            if spec.by_ref:
                ref_train.append(seen[key][0])
            else:
                its[key] = seen[key]
        t_ch = est.planned_chapter(prefix)
        total += t_train + t_ch
        resumable = any(prefix.startswith(r) for r in RESUMABLE)
        step_in_chapter = (max(ref_train, default=0.0) + est.planned.get("item", 60)) if resumable \
            else t_ch + sum(ref_train)
        step = max([step_in_chapter] + [t for t, _ in its.values()])
        fresh = min_call_seconds(list(its.values()), step_in_chapter)
        if step > call_s - MARGIN_S:
            too_big.append(prefix)
        flag = " ⚠" if prefix in too_big else ""
        lines.append(f"| {prefix} | {len(new)}{f' ({len(ref_train)} by reference)' if ref_train else ''} "
                     f"| {t_train:.0f} | {t_ch:.0f}{' (resumable)' if resumable else ''} "
                     f"| {mb:.1f} ({len(specs)} models) | {step:.0f}{flag} | {fresh:.0f} |")
    lines.append(f"| all | {len(seen)} | {sum(v[0] for v in seen.values()):.0f} | "
                 f"{sum(est.planned_chapter(p) for p in plan):.0f} | {sum(v[1] for v in seen.values()):.1f} | | |")
    lines.append(f"\nTotal planned: {total:.0f} s = {total / 60:.1f} min of {device} time, plus "
                 f"~{est.planned['setup']} s of set-up per call on a fresh machine.")
    if params.get("seeds"):
        lines.append(f"Chapter seconds are planned for the profile's seeds; with seeds={params['seeds']} the "
                     "chapters that train several seeds take less (the first call's timings correct it).")
    if too_big:
        lines.append(f"⚠ Chapters {', '.join(too_big)} have a step longer than one {call_s:.0f}-s call: shrink "
                     "them, or measure first (bench/bench_paper.py); the figures are estimates until then.")
    return "\n".join(lines)

