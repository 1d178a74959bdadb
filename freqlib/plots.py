"""Small plotting helpers shared by the chapters (matplotlib / seaborn)."""
from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import torch

__all__ = ["image_grid", "show_spectrum", "to_display", "figure_to_array"]


def to_display(img) -> np.ndarray:
    """(C, H, W) or (H, W) tensor/array -> HWC / HW float array in [0, 1] for imshow."""
    a = img.detach().float().cpu().numpy() if isinstance(img, torch.Tensor) else np.asarray(img, dtype=float)
    if a.ndim == 3 and a.shape[0] in (1, 3):
        a = a.transpose(1, 2, 0)
    if a.ndim == 3 and a.shape[-1] == 1:
        a = a[..., 0]
    return np.clip(a, 0, 1)


def image_grid(images, titles=None, ncols: int = 8, suptitle: str | None = None,
               size: float = 1.4, cmap: str | None = None, normalise: bool = False):
    """Show a sequence of images in a grid; returns the figure."""
    images = list(images)
    n = len(images)
    nrows = int(np.ceil(n / ncols))
    fig, axes = plt.subplots(nrows, min(n, ncols), figsize=(size * min(n, ncols), size * nrows + 0.4),
                             squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i >= n:
            continue
        img = images[i]
        if normalise:
            img = img - img.min()
            img = img / max(float(img.max()), 1e-12)
        ax.imshow(to_display(img), cmap=cmap or ("gray" if to_display(img).ndim == 2 else None),
                  interpolation="nearest", vmin=0, vmax=1)
        if titles is not None:
            ax.set_title(str(titles[i]), fontsize=8)
    if suptitle:
        fig.suptitle(suptitle, fontsize=10)
    return fig


def show_spectrum(ax, power, title: str | None = None, log: bool = True, cmap: str = "magma",
                  colorbar: str | None = None, mask_zero: bool = False):
    """imshow a centred (H, W) power map, log-scaled, with frequency axes; with ``colorbar``, a
    colour bar beside ``ax`` labelled with that text (e.g. ``"log10 power"``).

    ``mask_zero`` leaves frequency 0 (the centre pixel) out: drawn in light grey, and the colour
    limits come from the other values. After the mean is removed its power is near 0, and on a
    log scale it would stretch the colours over decades that no other frequency uses."""
    p = power.detach().float().cpu().numpy() if isinstance(power, torch.Tensor) else np.asarray(power)
    h, w = p.shape
    shown = np.log10(p + 1e-12) if log else p
    colours = plt.get_cmap(cmap)
    if mask_zero:
        hidden = np.zeros(shown.shape, dtype=bool)
        hidden[h // 2, w // 2] = True                 # the centred spectrum puts frequency 0 there
        shown = np.ma.masked_array(shown, hidden)
        colours = colours.with_extremes(bad="lightgrey")
    im = ax.imshow(shown, cmap=colours,
                   extent=(-w // 2 - 0.5, w - w // 2 - 0.5, h - h // 2 - 0.5, -h // 2 - 0.5))
    ax.set_xlabel("horizontal frequency (cycles / image)")
    ax.set_ylabel("vertical frequency (cycles / image)")
    if title:
        ax.set_title(title)
    if colorbar:
        ax.figure.colorbar(im, ax=ax, shrink=0.8, label=colorbar)
    return im


def figure_to_array(fig) -> np.ndarray:
    """Render a (possibly closed) figure to an RGBA array, e.g. to tile figures side by side."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    canvas = FigureCanvasAgg(fig)
    canvas.draw()
    return np.asarray(canvas.buffer_rgba())
