"""What every chapter does first: resolve the profile and device, seed
everything, load the data once, and record (print + glue) the run's facts.

Test images
-----------
:meth:`ChapterContext.test_set` returns the first ``n`` test images. Models
are trained on whatever variant :func:`freqlib.data.load_cifar10` found; the
*analyses* use original pixels wherever they exist:

* with the torchvision copy, every test image is original;
* with the JPEG-q75 mirror, ``n <= 932`` images come from the lossless head
  file (original test images 0-931), larger ``n`` from the mirror, and the
  variant label says which (``ctx.variant`` is updated as test sets are drawn);
* ``pixels="jpeg"`` gives the same images as JPEG q75 (the mirror's bytes, or
  re-encoded by :func:`freqlib.corruptions.jpeg` on original data), so a
  chapter can show whether a verdict depends on the mirror's artefacts.
"""
from __future__ import annotations

import os
import random
from dataclasses import dataclass, field

import numpy as np
import torch

from .notebooks import glue
from .profiles import (default_seeds, dry_sized, paper_dry, profile_settings, resolve_device,
                       resolve_profile)
from .verdicts import bootstrap

__all__ = ["ChapterContext", "setup_chapter", "network_name", "arch_name", "ARCH_NAMES", "glue"]

PIXELS = ("auto", "jpeg")


@dataclass
class ChapterContext:
    profile: str
    device: str
    seed: int
    train_variant: str   # what the zoo's models were trained on
    scale: dict          # the profile's row of PROFILES
    seeds: list = field(default_factory=list)
    test_sources: set = field(default_factory=set)
    arch: str = ""       # the network this chapter trains at this profile
    head_n: int = 0      # how many of the original test images (0, 1, ...) were drawn so far
    trained_on: str = ""  # what the chapter's models were trained on, where that is not train_variant alone

    @property
    def variant(self) -> str:
        """The data label every figure and verdict carries (the run card's "data variant")."""
        from .data import VARIANT_MIRROR
        if self.train_variant != VARIANT_MIRROR or not self.test_sources or self.test_sources == {"mirror"}:
            return f"models trained on {self.trained_on}" if self.trained_on else self.train_variant
        # the images actually drawn, not the whole file ("test images 0–499", not "0–931")
        analysed = {"head": f"original CIFAR-10 test images 0–{self.head_n - 1}", "mirror": "JPEG-mirror test images"}
        used = " and ".join(analysed[s] for s in sorted(self.test_sources) if s in analysed)
        return f"models trained on {self.trained_on or VARIANT_MIRROR}; analysed on {used}"

    @property
    def network(self) -> str:
        """The architecture this chapter's zoo models have at this profile, for its settings table."""
        return network_name(self.profile, self.arch or None)

    def record_variant(self) -> None:
        """Glue the data label of the images analysed so far (``analysis_variant``), which the
        runner puts on the run card. :func:`freqlib.verdicts.publish` glues it for a chapter
        with verdicts (from any context with a ``variant``); a chapter without verdicts calls
        this after its last analysis."""
        glue("analysis_variant", self.variant)

    def title(self, text: str, data: str | None = None) -> str:
        """A figure title that carries the data variant (or ``data``: what that figure was made on)."""
        return f"{text}\n[{data or self.variant}, {self.profile} profile{' (dry run)' if self.dry else ''}]"

    @property
    def dry(self) -> bool:
        """A dry run of the paper profile (FREQLIB_PAPER_DRY): its code paths at smoke sizes."""
        return self.profile == "paper" and paper_dry()

    def settings(self, table: dict) -> dict:
        """This profile's row of a chapter's settings table; in a dry run of ``paper``,
        paper's row with smoke's numbers (:func:`freqlib.profiles.dry_sized`)."""
        if self.profile not in table:
            raise ValueError(f"the settings table has no row for profile {self.profile!r} (rows: {sorted(table)})")
        return dry_sized(table["paper"], table["smoke"]) if self.dry else table[self.profile]

    def test_set(self, n: int | None = None, pixels: str = "auto"):
        """(images, labels) of the first ``n`` (default: the profile's n_test) test
        images on the chapter's device; original pixels where available (see above)."""
        from .data import HEAD_SIZE, VARIANT_MIRROR, load_test_head, to_tensor
        from .zoo import cifar10_tensors
        if pixels not in PIXELS:
            raise ValueError(f"pixels={pixels!r} is not one of {PIXELS}")
        x, y, variant = cifar10_tensors("test", "cpu")
        n = n or self.scale["n_test"]
        if n > len(x):
            raise ValueError(f"n={n} test images asked for, but the test set has {len(x)}")
        x, y = x[:n], y[:n]
        if variant == VARIANT_MIRROR:
            head = load_test_head() if n <= HEAD_SIZE else None
            if pixels == "auto" and head is not None:
                x = to_tensor(head[0][:n])
                self.test_sources.add("head")
                self.head_n = max(self.head_n, n)
            elif pixels == "auto":
                self.test_sources.add("mirror")
                if n <= HEAD_SIZE:
                    import warnings
                    from .data import head_path
                    warnings.warn(f"the lossless test head is missing ({head_path()}): analysing the JPEG "
                                  "mirror's test images instead; put cifar10-test-head-lossless.npz there "
                                  "(or set FREQLIB_CIFAR10_LOSSLESS_HEAD) for original pixels", stacklevel=2)
        elif pixels == "jpeg":
            from .corruptions import jpeg
            x = jpeg(x, 75)
        return x.to(self.device), y.to(self.device)

    def model(self, name: str, **overrides):
        """Zoo model ``name`` at this chapter's profile and device (``seed=`` picks a training seed)."""
        from .zoo import get_model
        return get_model(name, self.profile, self.device, **overrides)

    def ref(self, name: str, **overrides):
        """Zoo model ``name`` by reference (:class:`freqlib.results.ModelRef`): loaded, or
        trained, only when a result that is not cached yet needs it."""
        from .results import ModelRef
        return ModelRef(name, self.profile, self.device, overrides)

    def bootstrap(self, statistic, *samples, **kw):
        """:func:`freqlib.verdicts.bootstrap` with the profile's number of resamples, on the device."""
        kw.setdefault("n_boot", self.scale["n_boot"])
        kw.setdefault("device", self.device)
        return bootstrap(statistic, *samples, **kw)


ARCH_NAMES = {"airbench": "airbench94", "resnet18": "ResNet-18", "fastnet": "FastNet"}


def arch_name(arch: str) -> str:
    """An architecture key as a reader knows it: "FastNet" for fastnet."""
    return ARCH_NAMES.get(arch, arch)


def network_name(profile: str, arch: str | None = None) -> str:
    """``arch`` (default: the profile's network) as a reader knows it, with its widths at ``profile``."""
    from .profiles import DRY, arch_settings
    settings = arch_settings(profile, arch)
    name = arch_name(settings["arch"])
    if profile == "paper" and paper_dry():
        return f"{name}, widths {tuple(DRY['widths'][settings['arch']])} (dry run)"
    return f"{name}, widths {tuple(settings['widths'])}"


def setup_chapter(profile: str = "auto", device: str = "auto", seed: int = 0, seeds: int | None = None,
                  arch: dict | None = None) -> ChapterContext:
    """Resolve ``auto``, seed, load the data variant; print and glue the facts.

    ``seeds`` is how many training seeds (``seed, seed + 1, ...``) the chapter's
    models use; 0 means the default of the profile and network
    (:func:`freqlib.profiles.default_seeds`), and None (a chapter without a
    ``seeds`` parameter) one network per model, trained with ``seed``.
    ``arch`` maps a profile to the network the chapter trains there when it is not
    the profile's own (``ctx.arch``).
    """
    device = resolve_device(device)
    profile = resolve_profile(profile, device)
    if seeds is not None and (not isinstance(seeds, int) or isinstance(seeds, bool) or seeds < 0):
        raise ValueError(f"seeds={seeds!r} must be 0 (the profile's default) or a positive count")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    if device == "cpu":
        torch.set_num_threads(int(os.environ.get("FREQLIB_THREADS", os.cpu_count() or 1)))
    from .zoo import cifar10_tensors
    _, _, variant = cifar10_tensors("train", "cpu")
    scale = profile_settings(profile)
    net = (arch or {}).get(profile, scale["arch"])
    n_seeds = 1 if seeds is None else seeds or default_seeds(profile, net)
    ctx = ChapterContext(profile, device, seed, variant, scale, seeds=list(range(seed, seed + n_seeds)), arch=net)
    import matplotlib
    import pandas as pd
    matplotlib.rcParams.update({"figure.dpi": 110, "axes.titlesize": 10, "figure.autolayout": True})
    pd.set_option("display.max_colwidth", None)   # criteria and deviations are sentences: never cut them
    print(f"profile={profile}{' (DRY RUN: smoke sizes, not results)' if ctx.dry else ''}  device={device}  "
          f"seed={seed}  training seeds={ctx.seeds}  data={variant}  network={ctx.network}")
    for k in ("profile", "device", "network"):
        glue(k, getattr(ctx, k))
    glue("variant", variant)
    glue("seed", seed)
    glue("n_seeds", len(ctx.seeds))
    return ctx
