"""What every chapter does first: resolve the profile and device, seed
everything, load the data once, and record (print + glue) the run's facts."""
from __future__ import annotations

import os
import random
from dataclasses import dataclass

import numpy as np
import torch

from .profiles import profile_settings, resolve_device, resolve_profile

__all__ = ["ChapterContext", "setup_chapter", "glue"]


@dataclass
class ChapterContext:
    profile: str
    device: str
    seed: int
    variant: str
    scale: dict          # the profile's row of PROFILES

    def title(self, text: str) -> str:
        """A figure title that carries the data variant."""
        return f"{text}\n[{self.variant}, {self.profile} profile]"

    def test_set(self, n: int | None = None):
        """(images, labels) of the first ``n`` (default: the profile's n_test) test images."""
        from .zoo import cifar10_tensors
        x, y, _ = cifar10_tensors("test", "cpu")
        n = n or self.scale["n_test"]
        return x[:n].to(self.device), y[:n].to(self.device)

    def model(self, name: str, **overrides):
        """Zoo model ``name`` at this chapter's profile and device."""
        from .zoo import get_model
        return get_model(name, self.profile, self.device, **overrides)


def glue(name: str, value, display: bool = False):
    """myst-nb glue when running inside a notebook kernel; a no-op elsewhere."""
    try:
        from IPython import get_ipython
        if get_ipython() is None:
            return
        from myst_nb import glue as _glue
    except ImportError:
        return
    _glue(name, value, display=display)


def setup_chapter(profile: str = "auto", device: str = "auto", seed: int = 0) -> ChapterContext:
    """Resolve ``auto``, seed, load the data variant; print and glue the facts."""
    device = resolve_device(device)
    profile = resolve_profile(profile, device)
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device == "cpu":
        torch.set_num_threads(int(os.environ.get("FREQLIB_THREADS", os.cpu_count() or 1)))
    from .zoo import cifar10_tensors
    _, _, variant = cifar10_tensors("train", "cpu")
    ctx = ChapterContext(profile, device, seed, variant, profile_settings(profile))
    import matplotlib
    matplotlib.rcParams.update({"figure.dpi": 110, "axes.titlesize": 10, "figure.autolayout": True})
    print(f"profile={profile}  device={device}  seed={seed}  data={variant}")
    for k in ("profile", "device", "variant"):
        glue(k, getattr(ctx, k))
    glue("seed", seed)
    return ctx
