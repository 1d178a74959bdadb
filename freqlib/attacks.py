"""Adversarial perturbations for the frequency analysis of Paper A, from an
established library (torchattacks), run batch by batch on the model's device.

* White-box: PGD, L-inf (Madry et al. 2018) with random start.
* Black-box: Square attack, L-inf (Andriushchenko et al. 2020), margin loss,
  score-based (it only queries logits).

Models take images in [0, 1] and normalise them internally, so the attacks
and the perturbations ``delta = adv - x`` live in pixel space.

Note on Square: torchattacks only attacks images the model classifies
correctly and returns the clean image where it does not succeed, so
``delta`` is exactly zero there. :func:`attack_summary` and the spectra in
the chapter therefore use only images with a non-zero perturbation.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from . import evaluate
from .evaluate import autocast

__all__ = ["AttackResult", "pgd_linf", "square_linf", "robust_accuracy", "attack_summary",
           "plot_perturbation_spectra"]


class _AutocastLogits(nn.Module):
    """Runs a model under bf16 autocast on CUDA and returns float32 logits (for query attacks)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with autocast(x.device):
            return self.model(x).float()


@dataclass
class AttackResult:
    """``adv`` (N, C, H, W) on the CPU, ``delta = adv - x``, and the predictions."""
    name: str
    adv: torch.Tensor
    delta: torch.Tensor
    clean_pred: torch.Tensor
    adv_pred: torch.Tensor
    labels: torch.Tensor

    @property
    def perturbed(self) -> torch.Tensor:
        """Mask of images whose perturbation is not exactly zero."""
        return self.delta.flatten(1).abs().amax(1) > 0


def _run(attack_factory, name: str, model, images, labels, batch_size: int, seed: int) -> AttackResult:
    if images.dim() != 4 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"need (N, C, H, W) images with N labels; got {tuple(images.shape)} and {tuple(labels.shape)}")
    if images.min() < 0 or images.max() > 1:
        raise ValueError("attacks expect images in [0, 1] (zoo models normalise internally)")
    device = next(model.parameters()).device
    model.eval()
    attack = attack_factory(model)
    torch.manual_seed(seed)
    advs = []
    for s in range(0, images.shape[0], batch_size):
        x = images[s:s + batch_size].to(device)
        y = labels[s:s + batch_size].to(device)
        advs.append(attack(x, y).detach().cpu())
    adv = torch.cat(advs)
    clean_pred = evaluate.predict(model, images).cpu()
    adv_pred = evaluate.predict(model, adv).cpu()
    return AttackResult(name, adv, adv - images.cpu(), clean_pred, adv_pred, labels.cpu())


def pgd_linf(model, images, labels, eps: float = 8 / 255, alpha: float = 2 / 255, steps: int = 20,
             batch_size: int = 500, seed: int = 0) -> AttackResult:
    """Untargeted L-inf PGD with random start (torchattacks.PGD), in fp32."""
    import torchattacks
    return _run(lambda m: torchattacks.PGD(m, eps=eps, alpha=alpha, steps=steps, random_start=True),
                f"PGD-{steps} L∞ {eps * 255:.0f}/255", model, images, labels, batch_size, seed)


def square_linf(model, images, labels, eps: float = 8 / 255, n_queries: int = 1000, p_init: float = 0.8,
                batch_size: int = 500, seed: int = 0) -> AttackResult:
    """Untargeted L-inf Square attack (torchattacks.Square, margin loss, one restart).

    Square re-seeds torch's global generator with ``seed``; forward passes
    run under bf16 autocast on CUDA (a query attack needs no gradients).
    """
    import torchattacks

    def factory(m):
        return torchattacks.Square(_AutocastLogits(m), norm="Linf", eps=eps, n_queries=n_queries,
                                   n_restarts=1, p_init=p_init, loss="margin", resc_schedule=True,
                                   seed=seed, verbose=False)
    return _run(factory, f"Square L∞ {eps * 255:.0f}/255, {n_queries} queries", model, images, labels,
                batch_size, seed)


def robust_accuracy(model, images, labels, norm: str = "linf", eps: float = 8 / 255, steps: int = 50,
                    restarts: int = 10, alpha: float | None = None, batch_size: int = 500, seed: int = 0,
                    among: torch.Tensor | None = None, progress: str | None = "PGD evaluation") -> torch.Tensor:
    """Per-image robustness (1.0 = still correct) under PGD with random restarts (torchattacks).

    The evaluation of the reference code (Wong et al. 2020: PGD-50, 10
    restarts, step 2/255 for L-inf 8/255): an image counts as robust only if
    every restart fails. Restart ``k`` runs only on the images that survived
    restarts ``1..k-1``, so restarts cost little once most images are broken.
    ``among`` (N,) bool, e.g. the survivors of a cheaper attack, limits the
    attack to those images and counts the others as broken: the result is then
    the worst case over both attacks.
    Returns a (N,) float tensor on the CPU; its mean is the robust accuracy.
    """
    import torchattacks
    from tqdm import tqdm
    if norm not in ("linf", "l2"):
        raise ValueError(f"norm must be 'linf' or 'l2', got {norm!r}")
    device = next(model.parameters()).device
    alpha = alpha if alpha is not None else (2 / 255 if norm == "linf" and abs(eps - 8 / 255) < 1e-9
                                             else 2.5 * eps / steps)
    cls = torchattacks.PGD if norm == "linf" else torchattacks.PGDL2
    attack = cls(evaluate.for_attack(model), eps=eps, alpha=alpha, steps=steps, random_start=True)
    model.eval()
    torch.manual_seed(seed)
    alive = evaluate.correct(model, images, labels).bool()
    if among is not None:
        alive &= torch.as_tensor(among, dtype=torch.bool).cpu()
    for _ in tqdm(range(restarts), desc=progress, leave=False, disable=progress is None):
        idx = alive.nonzero().flatten()
        for s in range(0, len(idx), batch_size):
            part = idx[s:s + batch_size]
            x, y = images[part].to(device), labels[part].to(device)
            adv = attack(x, y)
            alive[part] = (evaluate.predict(model, adv) == y).cpu()
    return alive.float()


def attack_summary(result: AttackResult) -> dict:
    """Clean and adversarial accuracy, success rate on correctly classified images, perturbation norms."""
    correct = result.clean_pred == result.labels
    fooled = correct & (result.adv_pred != result.labels)
    linf = result.delta.flatten(1).abs().amax(1)
    l2 = result.delta.flatten(1).norm(dim=1)
    pert = result.perturbed
    return {
        "attack": result.name,
        "clean accuracy": correct.float().mean().item(),
        "adversarial accuracy": (result.adv_pred == result.labels).float().mean().item(),
        "success rate (on correct)": (fooled.sum() / correct.sum().clamp(min=1)).item(),
        "perturbed images": int(pert.sum()),
        "max L∞ (×255)": 255 * linf.max().item(),
        "mean L2 (perturbed)": l2[pert].mean().item() if pert.any() else float("nan"),
    }


def plot_perturbation_spectra(profiles: dict, title: str, reference: dict | None = None):
    """Band profiles (:func:`freqlib.attribution.band_profile`) of perturbations (lines) beside
    reference profiles (dashed), bands 1..K-1 on a log scale."""
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for name, prof in profiles.items():
        prof = torch.as_tensor(prof)
        ax.plot(range(1, len(prof)), prof[1:].numpy(), "o-", ms=3, label=name)
    for name, prof in (reference or {}).items():
        prof = torch.as_tensor(prof)
        ax.plot(range(1, len(prof)), prof[1:].numpy(), "k--", lw=1.2, label=name)
    ax.axvspan(15.5, 31.5, color="0.93", zorder=0)
    ax.set(yscale="log", xlabel="DCT band k (band 0, the mean colour, left out)",
           ylabel="mean |DCT| per coefficient\n(bands 1-31 sum to 1)")
    ax.legend(fontsize=8)
    ax.set_title(title)
    return fig
