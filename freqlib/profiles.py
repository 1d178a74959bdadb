"""The three scales of the book, and the training recipes of the model zoo.

One table per concept, read top to bottom (airbench style). A chapter takes
``profile`` as a papermill parameter; ``auto`` means ``paper`` on a CUDA
machine and ``quick`` otherwise.
"""
from __future__ import annotations

import os

import torch

from .airbench import AIRBENCH94

__all__ = ["PROFILES", "RECIPES", "MODEL_LABELS", "model_label", "describe_recipe", "passes_per_batch",
           "training_passes", "EVALUATION_KEYS", "ARCH_SETTINGS", "ARCH_SEEDS", "RECIPE_SETTINGS",
           "resolve_profile", "resolve_device", "profile_settings", "arch_settings", "recipe_config",
           "default_seeds", "PROFILE_CHOICES", "DRY_ENV", "DRY", "paper_dry", "dry_sized", "AIRBENCH_LOOP",
           "ARCH_LOOP"]

PROFILE_CHOICES = ("auto", "smoke", "quick", "paper")

# Model and data scale per profile. ``n_test`` bounds every test-set evaluation;
# ``n_robust`` images and ``robust_restarts`` restarts make the zoo's PGD-50 figure;
# ``n_boot`` is the number of bootstrap resamples behind every interval;
# ``seeds`` is how many training seeds a claim chapter uses by default: one at smoke
# (tests: seconds); three at quick and paper, because one training run can be a
# lucky or a failed one (the chapters' deviations tables measure what the first
# seed alone would have said).
PROFILES = {
    "smoke": dict(arch="fastnet", widths=(8, 16, 32), epochs=2, n_train=2048, batch_size=256,
                  lr=0.2, n_test=500, n_robust=100, robust_restarts=1, n_boot=500, seeds=1),
    "quick": dict(arch="fastnet", widths=(24, 48, 96), epochs=5, n_train=50_000, batch_size=512,
                  lr=0.4, n_test=10_000, n_robust=500, robust_restarts=10, n_boot=2000, seeds=3),
    # airbench94 (freqlib.airbench) with the reference's optimiser in TrainConfig's units
    # (airbench.sgd_settings(1024): lr 1.5, weight decay 0.0153 / 11.5, momentum 0.85) and
    # its loop (AIRBENCH_LOOP), for 18 epochs instead of 9.9: the zoo trains on the lossy
    # JPEG mirror where no download works and reports accuracy without the reference's
    # test-time augmentation (bench/bench_paper.py trains both budgets). whiten=True:
    # the stem is whitened from the first 5,000 clean training images, as in the reference
    # (and as chapter 2's whitening_start rebuilds it), not from a first batch that a
    # recipe has already perturbed.
    "paper": dict(arch="airbench", widths=(64, 256, 256), epochs=18, n_train=50_000, batch_size=1024,
                  lr=1.5, momentum=0.85, weight_decay=0.0153 / 11.5, warmup=0.23, whiten=True,
                  n_test=10_000, n_robust=1_000, robust_restarts=10, n_boot=5000, seeds=3),
}
# Entries of PROFILES that describe the evaluation, not the training run.
EVALUATION_KEYS = ("n_test", "n_robust", "robust_restarts", "n_boot", "seeds")

# Dry run of the paper profile (FREQLIB_PAPER_DRY=1; PAPER=1 tools/dry_run.sh): every code
# path of `paper` (its networks, recipes, model lists, branches, three seeds) at smoke
# sizes, so that a CPU can execute what otherwise runs first on a borrowed GPU. Each
# number of a paper table becomes the smoke table's number of the same name; zoo
# trainings are capped as below. Nothing it computes is a result. ``batches`` steps per
# epoch, at least 5: airbench's lookahead pulls the weights every 5 steps and training ends
# on its average, so a run of fewer steps would end on its initial weights (as the
# reference's would) and never execute the pull.
DRY_ENV = "FREQLIB_PAPER_DRY"
DRY = dict(n_train=512, epochs=1, batches=8,
           widths={"airbench": (16, 32, 32), "resnet18": (8,), "fastnet": (8, 16, 32)})


def paper_dry() -> bool:
    return os.environ.get(DRY_ENV, "") not in ("", "0")


def dry_sized(paper: dict, smoke: dict, keep: tuple = ()) -> dict:
    """``paper`` with every number (not a bool) that ``smoke`` has under the same name
    replaced by smoke's, in nested dicts too; lists, names, flags and ``keep`` stay paper's."""
    out = dict(paper)
    for k, v in paper.items():
        if k in keep or k not in smoke:
            continue
        if isinstance(v, dict) and isinstance(smoke[k], dict):
            out[k] = dry_sized(v, smoke[k], keep)
        elif isinstance(v, (int, float)) and not isinstance(v, bool) and isinstance(smoke[k], (int, float)):
            out[k] = smoke[k]
    return out

# Training recipes shared by every chapter. Values override the profile's.
# Adversarial recipes use plain cross-entropy, as their reference code does.
RECIPES = {
    "standard":  dict(perturbation="none"),
    # Wong et al. 2020 "fast is better than free": FGSM, random start, alpha = 1.25 eps
    "linf_at":   dict(perturbation="fgsm_linf", eps=8 / 255, alpha=10 / 255, label_smoothing=0.0),
    "linf_pgd":  dict(perturbation="pgd_linf", eps=8 / 255, alpha=2 / 255, attack_steps=7, label_smoothing=0.0),
    "l2_at":     dict(perturbation="fgsm_l2", eps=0.5, alpha=0.625, label_smoothing=0.0),
    "gaussian":  dict(perturbation="gaussian", noise_sigma=0.1),
    "amplitude": dict(perturbation="amplitude", amplitude_sigma=0.5),
    # Paper C's robust network: PGD-10, eps about 3.5/255 in pixel terms, step eps/8
    "linf_pgd_c": dict(perturbation="pgd_linf", eps=3.5 / 255, alpha=3.5 / 255 / 8, attack_steps=10,
                       label_smoothing=0.0),
    # Paper C's geometric models: zoom 0.5-1.5, rotation up to 180 degrees, shift up to 0.4 of the side
    "scale":     dict(perturbation="geometric", geometric={"scale": 0.5, "rotate": 0.0, "translate": 0.0}),
    "rotate":    dict(perturbation="geometric", geometric={"scale": 0.0, "rotate": 180.0, "translate": 0.0}),
    "translate": dict(perturbation="geometric", geometric={"scale": 0.0, "rotate": 0.0, "translate": 0.4}),
    # chapter 06: planted-frequency data (freqlib.synthetic), no flips or shifts: each class template has one place
    **{f"planted_{b}": dict(perturbation="none", dataset=f"planted-{b}", flip=False, translate=0)
       for b in ("low", "mid", "high", "horizontal", "vertical")},
    # chapter 06: CIFAR-10 with a class-tied high-band texture on half the training images (frequency shortcut)
    "shortcut_standard": dict(perturbation="none", dataset="shortcut-high"),
    "shortcut_linf_at": dict(perturbation="fgsm_linf", eps=8 / 255, alpha=10 / 255, label_smoothing=0.0,
                             dataset="shortcut-high"),
}


# Readers' names of the zoo models the chapters compare (others print as their recipe name)
MODEL_LABELS = {"standard": "ST", "linf_at": f"AT (L∞ {255 * RECIPES['linf_at']['eps']:g}/255)",
                "l2_at": f"L2-AT (ε={RECIPES['l2_at']['eps']:g})",
                "gaussian": f"Gauss-aug (σ={RECIPES['gaussian']['noise_sigma']:g})"}


def model_label(name: str) -> str:
    """The name a table or figure shows for zoo model ``name``: "AT (L∞ 8/255)" for linf_at."""
    return MODEL_LABELS.get(name, name)


def _recipe(name: str) -> dict:
    if name not in RECIPES:
        raise ValueError(f"unknown zoo recipe {name!r}; known: {sorted(RECIPES)}")
    return RECIPES[name]


def describe_recipe(name: str) -> str:
    """How zoo network ``name`` is trained, in words without parentheses (a chapter writes
    "name (description)"), read off ``RECIPES``."""
    r = _recipe(name)
    p = r["perturbation"]
    per255 = lambda v: f"{v * 255:.3g}/255"
    if p == "none":
        return "standard training"
    if p == "fgsm_linf":
        return f"adversarial training, FGSM from a random start as in Wong et al. 2020, L∞ ε = {per255(r['eps'])}"
    if p == "pgd_linf":
        return (f"adversarial training, PGD-{r['attack_steps']}, L∞ ε = {per255(r['eps'])}, "
                f"step ε/{r['eps'] / r['alpha']:.3g}")
    if p == "fgsm_l2":
        return f"adversarial training, one L2 gradient step from a random start, L2 ε = {r['eps']:g}"
    if p == "gaussian":
        return f"Gaussian-noise augmentation, σ = {r['noise_sigma']:g} on the [0, 1] pixel scale"
    if p == "amplitude":
        return f"augmentation with multiplicative noise on the amplitude spectrum, σ = {r['amplitude_sigma']:g}"
    if p == "geometric":
        g = r["geometric"]
        parts = ([f"zoom {1 - g['scale']:g}–{1 + g['scale']:g}"] if g.get("scale") else []) \
            + ([f"rotation up to {g['rotate']:g}°"] if g.get("rotate") else []) \
            + ([f"shift up to {g['translate']:g} of the side"] if g.get("translate") else [])
        return "augmentation with random " + ", ".join(parts)
    return f"training with perturbation {p!r}"


def passes_per_batch(perturbation: str, attack_steps: int = 7) -> int:
    """Forward-backward passes per training batch: one update, plus one per attack step (FGSM: 1,
    PGD-k: k; ``attack_steps`` defaults to ``TrainConfig``'s)."""
    if perturbation.startswith("fgsm"):
        return 2
    if perturbation.startswith("pgd"):
        return attack_steps + 1
    return 1


def training_passes(name: str) -> int:
    """:func:`passes_per_batch` of zoo recipe ``name``: its cost in standard runs of the same budget."""
    r = _recipe(name)
    return passes_per_batch(r["perturbation"], r.get("attack_steps", 7))


# Training settings for an architecture other than the profile's, when a chapter asks
# for one (``ctx.model(name, arch=...)``); they replace the profile's before the
# recipe applies. Chapter 2 keeps ResNet-18 at the paper profile: 15 epochs, the
# budget of Wong et al. 2020's reference, batch 512 and the usual SGD settings.
ARCH_SETTINGS = {
    "paper": {
        "resnet18": dict(widths=(64,), epochs=15, batch_size=512, lr=0.4, momentum=0.9, weight_decay=5e-4,
                         warmup=0.2, whiten=False),
    },
}

# Training seeds per model where an architecture differs from the profile's
# ``seeds``. ResNet-18 at the paper profile: one seed, because chapter 2 trains
# a ResNet-18 per stem and recipe for every seed, the dearest part of the paper plan (`paper-run --plan`);
# a chapter's ``seeds`` parameter still asks for more.
ARCH_SEEDS = {("paper", "resnet18"): 1}

# Recipe settings that hold only at one (profile, architecture): adversarial
# training of airbench at the paper profile runs longer, at batch 512 (twice
# the steps), with the triangular schedule from 0 peaking half-way and no weight
# averaging, as in Wong et al.'s cyclic schedule (their reference has no lookahead,
# and its catastrophic-overfitting guard restores plain epoch-end weights);
# airbench's lr per example is kept (sgd_settings(512)).
_AT_AIRBENCH = dict(epochs=30, batch_size=512, lr=0.75, warmup=0.5, lr_ends=(0.0, 0.0), lookahead=False)
RECIPE_SETTINGS = {
    ("paper", "airbench"): {"linf_at": _AT_AIRBENCH, "l2_at": _AT_AIRBENCH, "linf_pgd": _AT_AIRBENCH,
                            "linf_pgd_c": _AT_AIRBENCH},
    ("paper", "resnet18"): {"linf_at": dict(warmup=0.5), "l2_at": dict(warmup=0.5)},
}


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'")
    return device


# airbench's training loop (legacy/airbench94.py; freqlib.train says what each does),
# wherever an airbench network trains. A recipe's own settings still override it.
AIRBENCH_LOOP = dict(lr_ends=AIRBENCH94["lr_ends"], lookahead=True, alternating_flip=True,
                     stem_bias_epochs=AIRBENCH94["whiten_bias_epochs"], decay_biases=True)
ARCH_LOOP = {"airbench": AIRBENCH_LOOP}


def resolve_profile(profile: str = "auto", device: str = "auto") -> str:
    if profile not in PROFILE_CHOICES:
        raise ValueError(f"profile={profile!r} is not one of {PROFILE_CHOICES}")
    if profile == "auto":
        return "paper" if resolve_device(device).startswith("cuda") else "quick"
    return profile


def profile_settings(profile: str) -> dict:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not one of {tuple(PROFILES)} (resolve 'auto' first)")
    if profile == "paper" and paper_dry():
        return dry_sized(PROFILES["paper"], PROFILES["smoke"], keep=("seeds",))
    return dict(PROFILES[profile])


def default_seeds(profile: str, arch: str | None = None) -> int:
    """How many training seeds a chapter uses by default for models of ``arch``
    (default: the profile's own network) at ``profile``."""
    settings = profile_settings(profile)
    return ARCH_SEEDS.get((profile, arch or settings["arch"]), settings["seeds"])


def arch_settings(profile: str, arch: str | None = None) -> dict:
    """The training part of ``profile``'s row for ``arch`` (default: the profile's own):
    what a chapter should print as the budget of models it trains with ``arch=...``."""
    settings = profile_settings(profile)
    for k in EVALUATION_KEYS:
        settings.pop(k)
    arch = arch or settings["arch"]
    if arch != settings["arch"]:
        settings.update(ARCH_SETTINGS.get(profile, {}).get(arch, {}))
        settings["arch"] = arch
    settings.update(ARCH_LOOP.get(arch, {}))
    return settings


def recipe_config(name: str, profile: str, **overrides):
    """The :class:`~freqlib.train.TrainConfig` of zoo model ``name`` at ``profile``:
    the profile's row (for the architecture asked for), the recipe, the recipe's
    settings at this profile and architecture, then ``overrides``."""
    from .train import TrainConfig
    if name not in RECIPES and "perturbation" not in overrides:
        raise ValueError(f"unknown zoo model {name!r}; known: {sorted(RECIPES)} "
                         "(or pass overrides that define the recipe)")
    settings = arch_settings(profile, overrides.get("arch"))
    settings.update(RECIPES.get(name, {}))
    settings.update(RECIPE_SETTINGS.get((profile, settings["arch"]), {}).get(name, {}))
    settings.update(overrides)
    if profile == "paper" and paper_dry():
        settings.update(n_train=min(settings["n_train"], DRY["n_train"]), epochs=min(settings["epochs"], DRY["epochs"]),
                        batch_size=min(settings["batch_size"], DRY["n_train"] // DRY["batches"]),
                        widths=DRY["widths"][settings["arch"]])
    return TrainConfig(**settings)
