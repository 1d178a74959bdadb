"""The model zoo: train once, cache, share between chapters.

A model is identified by its recipe name, the profile, any overrides, and a
hash of (training config, data variant, training code). The checkpoint
``data/models/<name>-<profile>-<hash>.pt`` and a JSON record beside it are
written atomically; a checkpoint that cannot be loaded or does not match its
key is retrained with a warning, never silently reused.

Several processes may ask for the same model at once (a sweep of chapters):
a file lock beside the checkpoint makes one of them train while the others
wait and then load its result.
"""
from __future__ import annotations

import datetime
import hashlib
import json
import platform
import warnings
from functools import lru_cache
from pathlib import Path

import torch
from filelock import FileLock

from . import data as fdata
from .deadline import check_deadline
from .environment import provenance
from .errors import first_line
from .evaluate import prepare_model
from .io import atomic_torch_save, atomic_write_json, repo_root
from .models import build_model
from .profiles import profile_settings, recipe_config, resolve_device

__all__ = ["get_model", "model_key", "zoo_dir", "cifar10_tensors", "dataset_tensors", "dataset_variant", "is_current", "list_models"]

# Files whose content defines what a training run does. filters.py and
# spectral.py count only for the recipes that use them, so work on the Paper B
# filters does not invalidate every other model.
TRAINING_CODE = ("models.py", "train.py", "data.py", "evaluate.py")


def zoo_dir() -> Path:
    return fdata.data_dir() / "models"


def _code_hash(cfg: dict) -> str:
    h = hashlib.sha256()
    pkg = repo_root() / "freqlib"
    extra = (("filters.py",) if cfg.get("stem") else ()) + \
            (("spectral.py",) if cfg.get("perturbation") == "amplitude" else ()) + \
            (("airbench.py",) if cfg.get("arch") == "airbench" else ()) + \
            (("synthetic.py", "spectral.py") if cfg.get("dataset", "cifar10") != "cifar10" else ())
    for name in TRAINING_CODE + extra:
        path = pkg / name
        if path.is_file():
            h.update(name.encode() + path.read_bytes())
    return h.hexdigest()


def model_key(name: str, profile: str, variant: str, **overrides) -> tuple[str, dict]:
    """(hash, config dict) for a zoo model."""
    cfg = recipe_config(name, profile, **overrides).to_dict()
    blob = json.dumps({"config": cfg, "variant": variant, "code": _code_hash(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16], cfg


@lru_cache(maxsize=4)
def cifar10_tensors(split: str, device: str = "cpu"):
    """(images float NCHW in [0,1], labels int64, variant) on ``device``, cached per process."""
    x, y, variant = fdata.load_cifar10(split)
    return fdata.to_tensor(x, device), torch.from_numpy(y).to(device), variant


def dataset_tensors(dataset: str, split: str):
    """(images, labels, variant) of a zoo training set: CIFAR-10 or a synthetic set
    of ``freqlib.synthetic`` (planted frequencies, frequency shortcuts)."""
    if dataset == "cifar10":
        return cifar10_tensors(split, "cpu")
    from .synthetic import synthetic_tensors
    return synthetic_tensors(dataset, split)


def dataset_variant(dataset: str) -> str:
    """The variant of a zoo training set, as :func:`dataset_tensors` names it for the
    training split, without building a synthetic set (50,000 images with a signature
    attached): a cached model's key needs only the name."""
    if dataset == "cifar10":
        return cifar10_tensors("train", "cpu")[2]
    from .synthetic import describe
    return describe(dataset)


def _checkpoint_paths(name: str, profile: str, key: str) -> tuple[Path, Path]:
    stem = zoo_dir() / f"{name}-{profile}-{key}"
    return stem.with_suffix(".pt"), stem.with_suffix(".json")


def _try_load(path: Path, key: str, cfg: dict, device: str):
    """Model from ``path`` if it is readable and matches ``key``; else None (with a warning)."""
    if not path.exists():
        return None
    try:
        ckpt = torch.load(path, map_location=device, weights_only=True)
        if ckpt.get("key") != key:
            raise ValueError(f"key {ckpt.get('key')!r} does not match {key!r}")
        model = build_model(cfg["arch"], cfg["widths"], stem=cfg["stem"] or None)
        model.load_state_dict(ckpt["state_dict"])
        return prepare_model(model, device).eval()
    except torch.OutOfMemoryError:
        raise           # the device is full, the file may be fine: retraining would overwrite it
    except Exception as exc:
        warnings.warn(f"zoo checkpoint {path.name} is unusable ({first_line(exc)}); "
                      "retraining it", RuntimeWarning, stacklevel=3)
        return None


def get_model(name: str, profile: str, device: str = "cpu", retrain: bool = False, **overrides):
    """Zoo model ``name`` at ``profile`` on ``device``, trained on first use.

    ``overrides`` change fields of the recipe's TrainConfig (they enter the
    hash; ``seed=s`` gives another training seed of the same recipe); the
    returned model is in eval mode and carries its JSON record as ``model.record``.
    """
    device = resolve_device(device)
    dataset = recipe_config(name, profile, **overrides).dataset
    variant = dataset_variant(dataset)
    key, cfg = model_key(name, profile, variant, **overrides)
    ckpt_path, record_path = _checkpoint_paths(name, profile, key)
    ckpt_path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(ckpt_path) + ".lock"):
        model = None if retrain else _try_load(ckpt_path, key, cfg, device)
        if model is not None and record_path.is_file():
            model.record = json.loads(record_path.read_text())
            return model
        check_deadline(f"training {name} ({profile})")
        train_x, train_y, _ = dataset_tensors(dataset, "train")
        return _train_and_record(name, profile, key, cfg, variant, train_x, train_y, device,
                                 ckpt_path, record_path)


def _robust_record(model, x, y, restarts: int) -> dict:
    """PGD figures of a zoo record. PGD-10 first; the reference evaluation of Wong et
    al. 2020 (PGD-50, ``restarts`` restarts, step 2/255) then attacks only the images
    PGD-10 did not break, so an image counts as robust only if it survives both, and
    a standard model (nothing survives PGD-10) costs one cheap pass."""
    from .attacks import robust_accuracy
    pgd10 = robust_accuracy(model, x, y, "linf", eps=8 / 255, steps=10, restarts=1, alpha=2 / 255)
    pgd50 = robust_accuracy(model, x, y, "linf", eps=8 / 255, steps=50, restarts=restarts, alpha=2 / 255,
                            among=pgd10.bool())
    return {"pgd_linf_accuracy": float(pgd50.mean()), "pgd10_linf_accuracy": float(pgd10.mean()),
            "robust_eval": f"L-inf eps=8/255 on the first {len(y)} test images: PGD-10 step 2/255, then "
                           f"PGD-50 step 2/255 with {restarts} restarts on the images PGD-10 did not break "
                           "(pgd_linf_accuracy: robust to both)"}


def _train_and_record(name, profile, key, cfg, variant, train_x, train_y, device, ckpt_path, record_path):
    from .evaluate import accuracy
    from .train import TrainConfig, train_model
    config = TrainConfig(**cfg)
    torch.manual_seed(config.seed)
    model = build_model(config.arch, config.widths, stem=config.stem or None)
    info = train_model(model, train_x, train_y, config, device=device,
                       desc=f"training {name} ({profile}, seed {config.seed})")
    scale = profile_settings(profile)
    test_x, test_y, _ = dataset_tensors(config.dataset, "test")
    n_test, n_rob = scale["n_test"], scale["n_robust"]
    rx, ry = test_x[:n_rob], test_y[:n_rob]
    record = {
        "name": name, "profile": profile, "key": key, "config": cfg, "variant": variant,
        "test_accuracy": accuracy(model, test_x[:n_test], test_y[:n_test]),
        "n_test": n_test,
        **_robust_record(model, rx, ry, scale["robust_restarts"]),
        "n_robust": n_rob,
        "train_seconds": info["train_seconds"], "steps": info["steps"],
        "co_guard": info["co_guard"], "co_collapse": info["co_collapse"],
        "device": torch.cuda.get_device_name(0) if str(device).startswith("cuda") else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)",
        "seed": config.seed, **provenance(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    if info["co_collapse"]:
        warnings.warn(f"{name} ({profile}, seed {config.seed}): catastrophic overfitting detected "
                      f"(PGD-5 probe {info['co_guard']}); the weights of the epoch before the collapse are kept",
                      RuntimeWarning, stacklevel=3)
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    atomic_torch_save({"key": key, "config": cfg, "variant": variant, "state_dict": state}, ckpt_path)
    atomic_write_json(record_path, record)
    model.record = record
    return model.eval()


def is_current(record: dict) -> bool:
    """Whether a zoo record's key is the one today's training code gives its config
    (an older key stays on disk after the code changed, but no chapter loads it)."""
    cfg = record.get("config", {})
    blob = json.dumps({"config": cfg, "variant": record.get("variant"), "code": _code_hash(cfg)}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:16] == record.get("key")


def list_models(current: bool = False) -> list[dict]:
    """Records of every model in the zoo folder (``current``: only those :func:`is_current`)."""
    records = [json.loads(p.read_text()) for p in sorted(zoo_dir().glob("*.json"))]
    return [r for r in records if is_current(r)] if current else records
