"""The three scales of the book, and the training recipes of the model zoo.

One table per concept, read top to bottom (airbench style). A chapter takes
``profile`` as a papermill parameter; ``auto`` means ``paper`` on a CUDA
machine and ``quick`` otherwise.
"""
from __future__ import annotations

import torch

__all__ = ["PROFILES", "RECIPES", "EVALUATION_KEYS", "resolve_profile", "resolve_device", "profile_settings",
           "recipe_config", "PROFILE_CHOICES"]

PROFILE_CHOICES = ("auto", "smoke", "quick", "paper")

# Model and data scale per profile. ``n_test`` bounds every test-set evaluation;
# ``n_robust`` images and ``robust_restarts`` restarts make the zoo's PGD-50 figure;
# ``n_boot`` is the number of bootstrap resamples behind every interval;
# ``seeds`` is how many training seeds a chapter uses by default.
PROFILES = {
    "smoke": dict(arch="fastnet", widths=(8, 16, 32), epochs=2, n_train=2048, batch_size=256,
                  lr=0.2, n_test=500, n_robust=100, robust_restarts=1, n_boot=500, seeds=1),
    "quick": dict(arch="fastnet", widths=(24, 48, 96), epochs=5, n_train=50_000, batch_size=512,
                  lr=0.4, n_test=10_000, n_robust=500, robust_restarts=10, n_boot=2000, seeds=1),
    "paper": dict(arch="resnet18", widths=(64,), epochs=30, n_train=50_000, batch_size=512,
                  lr=0.2, n_test=10_000, n_robust=1_000, robust_restarts=10, n_boot=5000, seeds=3),
}
# Entries of PROFILES that describe the evaluation, not the training run.
EVALUATION_KEYS = ("n_test", "n_robust", "robust_restarts", "n_boot", "seeds")

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


def resolve_device(device: str = "auto") -> str:
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device={device!r} but CUDA is not available here; use device='cpu' or 'auto'")
    return device


def resolve_profile(profile: str = "auto", device: str = "auto") -> str:
    if profile not in PROFILE_CHOICES:
        raise ValueError(f"profile={profile!r} is not one of {PROFILE_CHOICES}")
    if profile == "auto":
        return "paper" if resolve_device(device).startswith("cuda") else "quick"
    return profile


def profile_settings(profile: str) -> dict:
    if profile not in PROFILES:
        raise ValueError(f"profile={profile!r} is not one of {tuple(PROFILES)} (resolve 'auto' first)")
    return dict(PROFILES[profile])


def recipe_config(name: str, profile: str, **overrides):
    """The :class:`~freqlib.train.TrainConfig` of zoo model ``name`` at ``profile``."""
    from .train import TrainConfig
    if name not in RECIPES and "perturbation" not in overrides:
        raise ValueError(f"unknown zoo model {name!r}; known: {sorted(RECIPES)} "
                         "(or pass overrides that define the recipe)")
    settings = profile_settings(profile)
    for k in EVALUATION_KEYS:
        settings.pop(k)
    settings.update(RECIPES.get(name, {}))
    settings.update(overrides)
    return TrainConfig(**settings)
