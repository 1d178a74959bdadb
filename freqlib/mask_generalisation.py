"""Do networks *trained* through a Fourier mask generalise to clean images?
(Paper C's claim C3.)

One fresh standard-recipe network is trained through each condition of
:func:`generalisation_masks` (no mask, the mask, its complement, same-budget
random and annulus-shuffled masks and their complements;
:func:`train_through_mask`, cached in the zoo), then all are evaluated on the
same clean images; :func:`generalisation_estimates` pairs them over the images.
Each condition is one training run, so single-run intervals cover the test
images only.
"""
from __future__ import annotations

import hashlib

import torch

from . import evaluate
from .deadline import check_deadline
from .mask_reliability import pick_one, unless_at_chance
from .mask_training import method_digest
from .masks import annulus_shuffled_masks, complement, matched_random_masks, pixel_transform
from .results import digest, parts_digest
from .verdicts import bootstrap

__all__ = [
    "generalisation_masks", "generalisation_sample", "generalisation_estimates", "train_through_mask",
    "budget_text",
]


def generalisation_masks(mask: torch.Tensor, n_radial: int = 1, seed: int = 0) -> dict:
    """The training conditions of the generalisation test (one network trained through each):
    ``normal`` (``None``: no mask), ``masked``, ``complement``, one scattered ``random``
    :func:`~freqlib.masks.matched_random_masks` draw and ``random_complement``, and ``n_radial``
    :func:`~freqlib.masks.annulus_shuffled_masks` draws ``radial 1``, ... with their ``radial 1 complement``, ..."""
    rnd = matched_random_masks(mask, 1, seed=seed)
    out = {"normal": None, "masked": mask, "complement": complement(mask), "random": rnd,
           "random_complement": complement(rnd)}
    for j, r in enumerate(annulus_shuffled_masks(mask, n_radial, seed=seed)):
        out[f"radial {j + 1}"], out[f"radial {j + 1} complement"] = r[None], complement(r[None])
    return out


def generalisation_sample(correct: dict) -> dict:
    """Per-image 0/1 of the :func:`generalisation_masks` runs as :func:`generalisation_estimates`
    reads them: the ``radial j`` draws stacked into ``radial`` / ``radial_complement`` (n, k)."""
    draws = [k for k in correct if k.startswith("radial ") and not k.endswith(" complement")]
    out = {k: v for k, v in correct.items() if not k.startswith("radial ")}
    if draws:
        out["radial"] = torch.stack([correct[k] for k in draws], 1)
        out["radial_complement"] = torch.stack([correct[f"{k} complement"] for k in draws], 1)
    return out


def generalisation_estimates(sample: dict, n_boot: int = 2000, seed: int = 0, device=None) -> dict:
    """Estimates from per-image 0/1 of networks *trained* through masks, on the same clean images.

    ``sample`` has ``normal``, ``masked``, ``complement``, ``random`` and
    ``random_complement`` (n,) arrays. Returns their accuracies and ``ratio`` =
    masked / normal, ``vs_random`` = masked - random, ``complement_vs_random`` =
    random complement - complement, paired over the images (the random mask is
    one draw: a training run each). With ``radial`` / ``radial_complement``, (n,) or (n, k)
    for ``k`` :func:`~freqlib.masks.annulus_shuffled_masks` draws (a training run each), also their means and
    ``vs_radial`` and ``complement_vs_radial``, differences to one draw picked per replicate
    (``pick_one``; with k = 1 the interval covers the images only). ``complement_vs_radial`` is nan
    when both complements' runs are :func:`~freqlib.mask_reliability.at_chance` (``complement_vs_radial_raw`` keeps it). Each
    condition is one training run: the intervals of the single-run keys cover the test images only.
    """
    kw = dict(n_boot=n_boot, seed=seed, device=device)
    keys = ("normal", "masked", "complement", "random", "random_complement", "radial", "radial_complement")
    s = {k: sample[k] for k in keys if k in sample}
    # one draw each (n,); the radial draws (n, k) get their two-way intervals below
    out = {k: bootstrap(lambda m, k=k: m[k], s, **kw) for k in s if not k.startswith("radial")}
    out["ratio"] = bootstrap(lambda m: m["masked"] / m["normal"].clamp(min=1e-9), s, **kw)
    out["vs_random"] = bootstrap(lambda m: m["masked"] - m["random"], s, **kw)
    out["complement_vs_random"] = bootstrap(lambda m: m["random_complement"] - m["complement"], s, **kw)
    if "radial" in s:
        r = torch.as_tensor(s["radial"])
        s["radial"], s["radial_complement"] = r.reshape(len(r), -1), torch.as_tensor(
            s["radial_complement"]).reshape(len(r), -1)
        one = pick_one(s["radial"].shape[1], n_boot, seed)
        two = dict(kw, over="images × random masks")
        out["radial"] = bootstrap(lambda m: m["radial"].mean(1), s, **two)
        out["radial_complement"] = bootstrap(lambda m: m["radial_complement"].mean(1), s, **two)
        out["vs_radial"] = bootstrap(lambda m: m["masked"] - one(m["radial"]), s, **two)
        out["complement_vs_radial_raw"] = bootstrap(lambda m: one(m["radial_complement"]) - m["complement"], s,
                                                    **two)
        out["complement_vs_radial"] = unless_at_chance(out["complement_vs_radial_raw"], out["radial_complement"],
                                                       out["complement"])
    return out


def _mask_digest(mask: torch.Tensor | None) -> str:
    return "none" if mask is None else digest(mask.float())


def train_through_mask(mask: torch.Tensor | None, profile: str, device="cpu", tag: str = "masked",
                       cache: bool = True, **overrides):
    """Train a fresh standard-recipe model on training images seen through ``mask``.

    ``mask`` is applied to the normalised image (the same operation the mask
    was learned with); ``None`` trains the unmasked baseline with the same
    budget. ``overrides`` change the recipe (e.g. ``epochs``, ``n_train``, ``seed``).
    The model is cached under ``data/models/<tag>-<profile>-<hash>.pt``, keyed
    by the mask's bytes, the config, the data variant and the code. Returns the
    model (eval mode) with ``model.record`` (config, seconds, cached flag).
    """
    from .io import atomic_torch_save, repo_root
    from .models import build_model
    from .profiles import recipe_config
    from .train import train_model
    from .zoo import cifar10_tensors, zoo_dir

    cfg = recipe_config("standard", profile, **overrides)
    train_x, train_y, variant = cifar10_tensors("train", "cpu")
    code = hashlib.sha256(method_digest().encode())
    for name in ("models.py", "train.py", "data.py", "spectral.py", "evaluate.py"):
        code.update((repo_root() / "freqlib" / name).read_bytes())
    key = parts_digest({"config": cfg.to_dict(), "mask": _mask_digest(mask), "variant": variant,
                        "code": code.hexdigest()})
    path = zoo_dir() / f"{tag}-{profile}-{key}.pt"
    model = build_model(cfg.arch, cfg.widths)
    if cache and path.is_file():
        try:
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
            if ckpt.get("key") == key:
                model.load_state_dict(ckpt["state_dict"])
                model.record = dict(ckpt["record"], cached=True)
                return evaluate.prepare_model(model, device).eval()
        except torch.OutOfMemoryError:
            raise       # the device is full, the file may be fine: retraining would overwrite it
        except Exception:
            pass  # unreadable: retrain below and overwrite atomically
    check_deadline(f"training through {tag}")
    torch.manual_seed(cfg.seed)
    transform = None if mask is None else pixel_transform(mask.to(device), model.normalize.to(device))
    info = train_model(model, train_x, train_y, cfg, device=device, desc=f"training through {tag}",
                       input_transform=transform)
    record = {"key": key, "config": cfg.to_dict(), "mask": _mask_digest(mask), "variant": variant,
              "train_seconds": info["train_seconds"], "steps": info["steps"]}
    if cache:
        state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
        atomic_torch_save({"key": key, "state_dict": state, "record": record}, path)
    model.record = dict(record, cached=False)
    return model.eval()


def budget_text(record: dict) -> str:
    """The training budget of a network from :func:`train_through_mask` (its ``record``), as prose
    reads it: "8000 training images, 3 epochs, the FastNet network of widths (16, 32, 64)"; the
    architecture as a reader knows it (``freqlib.chapter.arch_name``), the widths its own."""
    from .chapter import arch_name
    cfg = record["config"]
    name = arch_name(cfg["arch"])
    epochs = f"{cfg['epochs']} epoch" + "s" * (cfg["epochs"] != 1)
    return f"{cfg['n_train']} training images, {epochs}, the {name} network of widths {tuple(cfg['widths'])}"
