"""A linear probe: how much class information a set of features carries, read by a
cross-validated multinomial logistic regression (chapter 3, claim C3: do per-image Fourier
masks tell the class better than the images' own spectra?)."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from .spectral import centred_dft
from .verdicts import bootstrap

__all__ = ["probe_correct", "linear_probe", "log_amplitude", "probe_estimates"]


def probe_correct(features: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None,
                  folds: int = 5, weight_decay: float = 1e-2, steps: int = 100, seed: int = 0) -> torch.Tensor:
    """Per-sample 0/1 of a k-fold cross-validated multinomial logistic regression
    (each sample is predicted by the fold that did not see it): the sample a
    bootstrap of the probe's accuracy resamples.

    Features are standardised with the training folds' statistics; each fold is
    fitted with full-batch L-BFGS and an L2 penalty.
    """
    x = features.float().flatten(1).cpu()
    y = labels.long().cpu()
    n = x.shape[0]
    if n < folds:
        raise ValueError(f"a linear probe needs at least {folds} samples, got {n}")
    n_classes = n_classes or int(y.max()) + 1
    g = torch.Generator().manual_seed(seed)
    order = torch.randperm(n, generator=g)
    correct = torch.zeros(n)
    for k in range(folds):
        test = order[k::folds]
        train = torch.cat([order[j::folds] for j in range(folds) if j != k])
        mu, sd = x[train].mean(0), x[train].std(0).clamp(min=1e-6)
        xt, xv = (x[train] - mu) / sd, (x[test] - mu) / sd
        lin = torch.nn.Linear(x.shape[1], n_classes)
        torch.nn.init.zeros_(lin.weight), torch.nn.init.zeros_(lin.bias)
        opt = torch.optim.LBFGS(lin.parameters(), lr=1.0, max_iter=steps, line_search_fn="strong_wolfe")

        def closure():
            opt.zero_grad()
            loss = F.cross_entropy(lin(xt), y[train]) + weight_decay * lin.weight.pow(2).sum()
            loss.backward()
            return loss
        opt.step(closure)
        with torch.no_grad():
            correct[test] = (lin(xv).argmax(1) == y[test]).float()
    return correct


def linear_probe(features: torch.Tensor, labels: torch.Tensor, n_classes: int | None = None, **kw) -> float:
    """Cross-validated accuracy of :func:`probe_correct`."""
    return float(probe_correct(features, labels, n_classes, **kw).mean())


def log_amplitude(images: torch.Tensor, eps: float = 1e-3) -> torch.Tensor:
    """Per image, the log amplitude of its centred spectrum averaged over colour channels:
    ``(N, H, W)``, on the same grid as a ``(N, 1, H, W)`` per-image mask (the probe's control)."""
    return torch.log(centred_dft(images.float()).abs() + eps).mean(1)


def probe_estimates(masks: torch.Tensor, images: torch.Tensor, labels: torch.Tensor, scrambled: torch.Tensor,
                    n_boot: int = 2000, seed: int = 0, device=None) -> dict:
    """C3's probe: :func:`probe_correct` on the flattened per-image ``masks`` (``probe``), on the
    same images' :func:`log_amplitude` spectra (``spectrum``; the same folds, since the folds
    depend only on ``seed`` and the number of images) and on the masks with ``scrambled`` labels
    (``scrambled``, a leak check); ``probe_vs_spectrum`` = probe - spectrum, paired over the images.
    Above 0: the masks carry class information beyond the image's own spectrum."""
    y = labels.long().cpu()
    per = {"probe": probe_correct(masks.flatten(1), y, 10, seed=seed),
           "spectrum": probe_correct(log_amplitude(images.cpu()), y, 10, seed=seed),
           "scrambled": probe_correct(masks.flatten(1), scrambled.long().cpu(), 10, seed=seed)}
    kw = dict(n_boot=n_boot, seed=seed, device=device)
    out = {k: bootstrap(lambda m, k=k: m[k], per, **kw).within(0.0, 1.0) for k in per}     # accuracies
    out["probe_vs_spectrum"] = bootstrap(lambda m: m["probe"] - m["spectrum"], per, **kw).within(-1.0, 1.0)
    return out
