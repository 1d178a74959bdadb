"""Tables and figures for Paper B (chapter 02): the per-filter table, filter
bases, ratio histograms, filter galleries, the proportion trade-off (with
intervals) and per-corruption gains. The claims and their numbers live in
:mod:`freqlib.proportion`.

Kept apart from :mod:`freqlib.filters` on purpose: the zoo hashes filters.py
into the key of every constrained-stem model, and a plot change must not
retrain them.
"""
from __future__ import annotations

import torch

from .filters import (PAD, R_CUT, THRESHOLD, band_eigen, high_frequency_ratio, kernel_power,
                      stem_weight)
from .models import first_conv

__all__ = ["filter_table", "whitening_start", "plot_band_basis", "plot_ratio_histograms", "plot_gallery", "plot_tradeoff",
           "plot_gains"]


def filter_table(models: dict):
    """One row per first-layer filter of each model: model, filter, ratio, high."""
    import pandas as pd
    rows = []
    for name, model in models.items():
        ratio = high_frequency_ratio(first_conv(model))
        for i, r in enumerate(ratio.tolist()):
            rows.append({"model": name, "filter": i, "ratio": r, "high": r > THRESHOLD})
    return pd.DataFrame(rows)


def whitening_start(models: dict, train_images: torch.Tensor | None = None, n: int = 5000):
    """How much of a whitening-initialised first layer is training, per model.

    The zoo's training starts the stem as a whitening filter bank of the first
    ``n`` training images (``init_whitening``). This rebuilds that start on a copy
    and returns, per model: the share of high-frequency filters at the start and
    after training, and the mean cosine similarity of each trained filter with its
    starting one (1: training left the layer where whitening put it). Models
    without a whitening stem (ResNet-18, constrained stems) are left out.
    ``train_images``: the zoo's CIFAR-10 training set by default.
    """
    import copy

    import pandas as pd

    from .zoo import dataset_tensors
    if train_images is None:
        train_images = dataset_tensors("cifar10", "train")[0]
    rows = {}
    for name, model in models.items():
        if not hasattr(model.body, "init_whitening") or not isinstance(first_conv(model), torch.nn.Conv2d):
            continue
        start = copy.deepcopy(model).cpu()
        start.body.init_whitening(start.normalize(train_images[:n].cpu()))
        w0, w1 = stem_weight(first_conv(start)), stem_weight(first_conv(model))
        rows[name] = {"high at the start": (high_frequency_ratio(w0) > THRESHOLD).float().mean().item(),
                      "high after training": (high_frequency_ratio(w1) > THRESHOLD).float().mean().item(),
                      "similarity to the start": torch.cosine_similarity(w0.flatten(1), w1.flatten(1)).mean().item()}
    return pd.DataFrame.from_dict(rows, orient="index")


def _kernel_rgb(w: torch.Tensor):
    """(in, k, k) kernel -> (k, k, 3) image in [0, 1], zero at mid-grey (per-kernel scale)."""
    w = w[:3] if w.shape[0] >= 3 else w[:1].expand(3, -1, -1)
    return (0.5 + 0.5 * w / w.abs().max().clamp(min=1e-12)).permute(1, 2, 0).clamp(0, 1).numpy()


def plot_band_basis(title: str):
    """The nine eigen-kernels of the ratio, with their high-frequency ratio and band.

    Top row: the unit-norm kernels on one diverging scale (red positive, blue
    negative). Bottom row: their centred power spectra, zero-padded to
    ``PAD`` × ``PAD``, on one shared scale in units of a delta's flat spectrum
    (each map sums to ``PAD`` squared), with the rule's radius ``R_CUT`` dashed.
    One labelled colour bar per row; a shared scale keeps the panels comparable.
    """
    import matplotlib.pyplot as plt
    from matplotlib.patches import Circle
    vals, vecs = band_eigen(3, R_CUT, PAD)
    kernels = vecs.reshape(9, 3, 3).float()
    # the ortho DFT keeps a unit-norm kernel's energy at 1; times PAD**2 a delta's flat spectrum reads 1
    powers = (kernel_power(kernels[:, None]) * PAD ** 2).numpy()
    weight_max, power_max = kernels.abs().max().item(), float(powers.max())
    kernels = kernels.numpy()
    centre = PAD // 2  # fftshift puts frequency 0 at index PAD // 2
    fig, axes = plt.subplots(2, 9, figsize=(13.5, 3.5), layout="constrained")
    for i in range(9):
        kernel_image = axes[0, i].imshow(kernels[i], cmap="RdBu_r", vmin=-weight_max, vmax=weight_max)
        axes[0, i].set_title(f"rho={vals[i]:.2f}\n{'high' if vals[i] > THRESHOLD else 'low'}", fontsize=8)
        power_image = axes[1, i].imshow(powers[i], cmap="magma", vmin=0, vmax=power_max)
        axes[1, i].add_patch(Circle((centre, centre), R_CUT, fill=False, color="w", ls="--", lw=0.8))
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("3x3 kernel")
    axes[1, 0].set_ylabel(f"power, {PAD}x{PAD}")
    fig.colorbar(kernel_image, ax=axes[0, :], shrink=0.9, pad=0.01).set_label(
        "weight\n(red +, blue \u2212)", fontsize=8)
    fig.colorbar(power_image, ax=axes[1, :], shrink=0.9, pad=0.01).set_label(
        "power (flat\nspectrum = 1)", fontsize=8)
    fig.suptitle(f"{title}\n(dashed: the cut-off radius {R_CUT:.2f}; rho is the share of energy outside it)",
                 fontsize=10)
    return fig


def plot_ratio_histograms(table, title: str):
    """Histogram of the high-frequency ratio per model, with the rule's threshold."""
    import matplotlib.pyplot as plt
    names = list(dict.fromkeys(table["model"]))
    fig, axes = plt.subplots(1, len(names), figsize=(4 * len(names), 3.2), sharey=True, squeeze=False)
    bins = torch.linspace(0, 1, 21).numpy()
    for ax, name in zip(axes[0], names):
        sub = table[table["model"] == name]
        ax.hist(sub["ratio"], bins=bins, color="tab:blue", alpha=0.8)
        ax.axvline(THRESHOLD, color="k", ls="--", lw=1)
        ax.set(xlabel="high-frequency energy ratio", title=f"{name}: {100 * sub['high'].mean():.0f}% high")
    axes[0, 0].set_ylabel("filters")
    fig.suptitle(title, fontsize=10)
    return fig


def plot_gallery(models: dict, title: str, max_filters: int = 32):
    """First-layer filters of each model (rows), sorted by ratio (low to high)."""
    import matplotlib.pyplot as plt
    ws = {n: stem_weight(first_conv(m)) for n, m in models.items()}
    ncol = min(max_filters, max(w.shape[0] for w in ws.values()))
    fig, axes = plt.subplots(len(ws), ncol, figsize=(0.45 * ncol + 1, 0.62 * len(ws) + 0.6), squeeze=False)
    for row, (name, w) in zip(axes, ws.items()):
        ratio = high_frequency_ratio(w)
        order = ratio.argsort()
        pick = order[torch.linspace(0, len(order) - 1, min(ncol, len(order))).round().long()]
        for ax in row:
            ax.axis("off")
        for ax, i in zip(row, pick.tolist()):
            ax.imshow(_kernel_rgb(w[i]), interpolation="nearest")
            ax.set_title(f"{ratio[i]:.2f}", fontsize=6, color="tab:red" if ratio[i] > THRESHOLD else "tab:blue")
        row[0].text(-0.6, 0.5, name, transform=row[0].transAxes, ha="right", va="center", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_tradeoff(summary, title: str, intervals=None):
    """Clean vs CIFAR-10-C accuracy across the share of high-frequency filters.

    ``summary``: DataFrame indexed by share with columns clean, mean,
    family/<name> and severity/<s> (accuracies in [0, 1]); optional columns
    ``clean 95% lower`` / ``clean 95% upper`` (and for mean) draw 95% intervals.
    ``intervals`` (same index, columns ``family/<name> 95% lower`` / ``upper``, as
    :func:`freqlib.proportion.family_intervals` gives) adds them to the family panel."""
    import matplotlib.pyplot as plt
    shares = summary.index.to_numpy(dtype=float)

    def bars(ax, table, col, marker, label, **kw):
        y = 100 * summary[col].to_numpy(dtype=float)
        if table is not None and f"{col} 95% lower" in table:
            err = [y - 100 * table[f"{col} 95% lower"].to_numpy(dtype=float),
                   100 * table[f"{col} 95% upper"].to_numpy(dtype=float) - y]
            ax.errorbar(shares, y, yerr=err, fmt=marker, capsize=3, label=f"{label} (95% interval)", **kw)
        else:
            ax.plot(shares, y, marker, label=label, **kw)

    fig, axes = plt.subplots(1, 3, figsize=(14, 3.8))
    for col, marker, label in (("clean", "o-", "clean"), ("mean", "s-", "mean CIFAR-10-C")):
        bars(axes[0], summary, col, marker, label)
    axes[0].set(xlabel="share of high-frequency first-layer filters p", ylabel="accuracy (%)",
                title="Clean vs corrupted")
    axes[0].legend(fontsize=8)
    for col in [c for c in summary.columns if c.startswith("family/")]:
        bars(axes[1], intervals, col, "o-", col.split("/")[1])
    axes[1].set(xlabel="p", ylabel="accuracy (%)", title="Per corruption family")
    axes[1].legend(fontsize=8)
    sev = [c for c in summary.columns if c.startswith("severity/")]
    for col in sev:
        axes[2].plot(shares, 100 * summary[col].to_numpy(dtype=float), "o-", label=f"severity {col.split('/')[1]}",
                     color=plt.cm.viridis(int(col.split("/")[1]) / 6))
    axes[2].set(xlabel="p", ylabel="accuracy (%)", title="Per severity")
    axes[2].legend(fontsize=8)
    fig.suptitle(title, fontsize=10)
    return fig


def plot_gains(gains, baseline: str, title: str):
    """Per-corruption paired gain (points, mean over severities) of each model over
    ``baseline`` with its 95% interval; ``gains`` as
    :func:`freqlib.proportion.corruption_gains` returns it."""
    import matplotlib.pyplot as plt
    import numpy as np
    order = list(dict.fromkeys(gains["corruption"]))
    models = list(dict.fromkeys(gains["model"]))
    fig, ax = plt.subplots(figsize=(13, 3.8))
    width = 0.8 / len(models)
    x = np.arange(len(order))
    for i, model in enumerate(models):
        sub = gains[gains["model"] == model].set_index("corruption").loc[order]
        y = sub["gain"].to_numpy(dtype=float)
        err = [y - sub["low"].to_numpy(dtype=float), sub["high"].to_numpy(dtype=float) - y]
        ax.bar(x + (i - (len(models) - 1) / 2) * width, y, width, yerr=err, capsize=2, label=model,
               error_kw={"lw": 0.8})
    ax.axhline(0, color="k", lw=0.8)
    ax.set_xticks(x, order, rotation=35, ha="right")
    ax.set(ylabel=f"gain over {baseline} (points)", xlabel="")
    ax.set_title(title + "\n(bars: paired 95% intervals over test images)", fontsize=10)
    ax.legend(fontsize=8)
    return fig
