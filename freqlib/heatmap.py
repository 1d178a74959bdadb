"""Fourier heat maps (Yin, Gontijo Lopes, Shlens, Cubuk, Gilmer 2019).

The heat map holds, for every centred frequency (i, j), the test error under
``x + r * eps * U_ij``:

* ``U_ij`` is the real, unit-L2-norm, phase-shifted Fourier basis image of
  :func:`freqlib.spectral.fourier_basis`, ``sqrt(2 / HW) cos(theta + pi/4)``,
  exactly the basis of the reference code (google-research
  ``frequency_analysis``), one 32x32 image added to every channel;
* ``r`` is a random sign drawn independently per image and channel (the
  reference's ``rand_flip``);
* ``eps`` is the L2 norm of the perturbation **per channel** on images with
  pixel values in **[0, 1]** (the scale our models take). Yin et al. use
  eps = 4 for CIFAR-10 (15.7 for ImageNet); a perturbation of norm 4 spread
  over 1024 pixels has a root-mean-square of 4/32 = 0.125 per pixel, i.e.
  32 grey levels of 255, comparable to Gaussian noise of std 0.125;
* no clipping by default, as in the reference (``clip_min = clip_max = None``);
  ``clip=True`` clips the perturbed image to [0, 1].

``U_ij`` and its mirror ``U_-i-j`` are the same image, so only the 514
distinct bases of a 32x32 grid are evaluated and the map is filled
symmetrically. Perturbed copies are built for a block of bases times a chunk
of images at once and evaluated in large batches.
"""
from __future__ import annotations

import torch

from . import spectral
from .evaluate import eval_batch_size, logits

__all__ = ["distinct_frequencies", "fourier_heatmap", "plot_heatmaps"]


def distinct_frequencies(h: int, w: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Centred indices (i, j) with one representative per mirror pair, and each index's mirror.

    Returns ``(reps, mirror)``: ``reps`` (M, 2) and ``mirror`` (H, W, 2), where
    ``mirror[i, j]`` is the index of the frequency ``-f(i, j)``.
    """
    i = torch.arange(h)[:, None].expand(h, w)
    j = torch.arange(w)[None, :].expand(h, w)
    mi = (2 * (h // 2) - i) % h
    mj = (2 * (w // 2) - j) % w
    flat, mflat = i * w + j, mi * w + mj
    keep = flat <= mflat
    reps = torch.stack([i[keep], j[keep]], 1)
    return reps, torch.stack([mi, mj], -1)


@torch.no_grad()
def fourier_heatmap(model, images: torch.Tensor, labels: torch.Tensor, eps: float = 4.0,
                    seed: int = 0, batch_size: int | None = None, clip: bool = False,
                    per_image: bool = False) -> dict:
    """Error rate of ``model`` under every Fourier-basis perturbation of L2 norm ``eps`` per channel
    (images in [0, 1]; unclipped unless ``clip``, as in the reference).

    Returns ``{"error": (H, W) centred map, "clean_error": float, "eps": eps,
    "n_images": N}`` (CPU tensors); with ``per_image``, also ``"per_image"``: (N, H, W) 0/1
    errors of each image under each basis perturbation (for intervals over images).
    """
    if images.dim() != 4 or labels.shape[0] != images.shape[0]:
        raise ValueError(f"need (N, C, H, W) images with N labels; got {tuple(images.shape)} and {tuple(labels.shape)}")
    device = next(model.parameters()).device
    batch_size = batch_size or eval_batch_size(device)
    n, c, h, w = images.shape
    basis = spectral.fourier_basis(h, w, device)                              # (H, W, H, W)
    reps, mirror = distinct_frequencies(h, w)
    ub = basis[reps[:, 0], reps[:, 1]]                                        # (M, H, W)
    m = ub.shape[0]
    gen = torch.Generator().manual_seed(seed)
    x_all, y_all = images.to(device), labels.to(device)
    clean_error = (logits(model, x_all, batch_size).argmax(1) != y_all).float().mean().item()
    # a block of `nb` bases x `ni` images fits one forward batch
    ni = min(n, batch_size)
    nb = max(1, batch_size // ni)
    wrong = torch.zeros(m, n if per_image else 1, device=device)
    for s in range(0, n, ni):
        x, y = x_all[s:s + ni], y_all[s:s + ni]
        k = x.shape[0]
        # every block's signs in one draw (the same stream), moved once: a copy per block would
        # wait for the device each time
        signs_all = (torch.randint(0, 2, (m, k, c, 1, 1), generator=gen) * 2 - 1).to(device, x.dtype)
        for b in range(0, m, nb):
            u = ub[b:b + nb]                                                  # (nb, H, W)
            signs = signs_all[b:b + u.shape[0]]
            pert = x[None] + eps * signs * u[:, None, None]                   # (nb, k, C, H, W)
            if clip:
                pert = pert.clamp_(0, 1)
            pred = logits(model, pert.flatten(0, 1), batch_size).argmax(1).view(u.shape[0], k)
            miss = (pred != y[None]).float()
            if per_image:
                wrong[b:b + u.shape[0], s:s + k] = miss
            else:
                wrong[b:b + u.shape[0], 0] += miss.sum(1)

    def centred(values):                     # (M, ...) per distinct frequency -> (H, W, ...) with mirrors
        out = torch.empty(h, w, *values.shape[1:])
        out[reps[:, 0], reps[:, 1]] = values
        out[mirror[reps[:, 0], reps[:, 1], 0], mirror[reps[:, 0], reps[:, 1], 1]] = values
        return out
    wrong = wrong.cpu()
    out = {"error": centred(wrong.mean(1) if per_image else wrong[:, 0] / n), "clean_error": clean_error,
           "eps": eps, "n_images": n, "clip": clip}
    if per_image:
        out["per_image"] = centred(wrong).permute(2, 0, 1)
    return out


def plot_heatmaps(maps: dict, title: str, labels: dict | None = None, vmax: float = 1.0):
    """Side-by-side centred error heat maps (0 = centre frequency), one per model."""
    import matplotlib.pyplot as plt
    n = len(maps)
    fig, axes = plt.subplots(1, n, figsize=(3.6 * n + 0.8, 3.6), squeeze=False, layout="constrained")
    im = None
    for ax, (name, res) in zip(axes[0], maps.items()):
        err = res["error"] if isinstance(res, dict) else res
        h, w = err.shape
        im = ax.imshow(err.cpu().numpy(), cmap="viridis", vmin=0, vmax=vmax,
                       extent=(-w // 2 - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -h // 2 - 0.5))
        clean = f", clean error {res['clean_error']:.2f}" if isinstance(res, dict) else ""
        ax.set(title=f"{(labels or {}).get(name, name)}{clean}", xlabel="horizontal frequency (cycles / image)",
               ylabel="vertical frequency (cycles / image)")
    fig.colorbar(im, ax=list(axes[0]), shrink=0.85, label="test error")
    fig.suptitle(title)
    return fig
