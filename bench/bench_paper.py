"""GPU readiness of the paper profile: what one H100/H200-class GPU does in its time budget.

Sections (``--only`` picks some; each writes ``paper_<section>_<device>`` into the JSON):

``airbench``     train the standard airbench model at the paper settings: seconds and test
                 accuracy (also with airbench's test-time augmentation, for comparison with
                 its published 94%), at airbench's 9.9-epoch budget (rounded to 10) and at the
                 profile's, and at the profile's without airbench's loop (``AIRBENCH_LOOP``
                 off: what that loop is worth here); optionally with ``FREQLIB_COMPILE=1``
                 (compile time counted)
``adversarial``  FGSM-RS training of airbench at the paper recipe (``linf_at``): seconds,
                 clean accuracy and PGD-50 x 10 restarts on 1,000 test images (targets: 80% / 45%)
``resnet18``     ResNet-18 at chapter 2's paper settings: seconds per epoch (two timed
                 epochs), extrapolated to the profile's epochs; optionally compiled
``heatmap``      Fourier heat map, 10,000 images x 514 bases, per model (images/s)
``masks``        chapter 3's dataset masks (batch 16): the masks of one seed trained one after
                 the other, and together in one loop (vmapped on CUDA, freqlib.mask_training.train_masks):
                 steps per second, the ratio, and the planned mask time at the paper settings
``cifar10c``     CIFAR-10-C, 15 corruptions x 5 severities x 10,000 images: generation on the
                 device, then evaluation per model (images/s)

On CUDA everything runs at full size; on the CPU at a tiny size (same code paths), so the
script is tested without a GPU. Times are synchronised wall-clock seconds. A section (or an
airbench variant) that raises is recorded with its error and the others still run: the first
GPU call must bring back what did work.

    python bench/bench_paper.py [--device cuda] [--only airbench heatmap] [--compile] [--out bench/results.json]
"""
from __future__ import annotations

import argparse
import contextlib
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import write  # noqa: E402

from freqlib import evaluate  # noqa: E402
from freqlib.errors import first_line  # noqa: E402
from freqlib.models import build_model  # noqa: E402
from freqlib.profiles import AIRBENCH_LOOP, PROFILES, recipe_config, resolve_device  # noqa: E402
from freqlib.train import TrainConfig, train_model  # noqa: E402
from freqlib.zoo import cifar10_tensors  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
# TrainConfig's defaults for what AIRBENCH_LOOP switches on: the zoo's loop before it had airbench's
LOOP_OFF = {k: TrainConfig.__dataclass_fields__[k].default for k in AIRBENCH_LOOP}


def chapter3_paper() -> dict:
    """Chapter 3's paper settings row: the mask settings it shares with chapters 4 and 5
    (``mask_training.DATASET_MASKS``: n_mask, batch, max_epochs, ...) and the literal entries of the
    notebook's row (the masked networks, ...), so the bench times what the chapter runs."""
    import ast

    import nbformat
    nb = nbformat.read(ROOT / "chapters" / "03_fourier_masks.ipynb", as_version=4)
    src = next(c.source for c in nb.cells if c.cell_type == "code" and "ctx.settings(" in c.source)
    for node in ast.walk(ast.parse(src)):
        if isinstance(node, ast.Dict):
            for key, value in zip(node.keys, node.values):
                if isinstance(key, ast.Constant) and key.value == "paper" and isinstance(value, ast.Call):
                    from freqlib.mask_training import DATASET_MASKS
                    row = dict(DATASET_MASKS["paper"])
                    for kw in value.keywords:
                        if kw.arg is None:          # **DATASET_MASKS[...]: merged above
                            continue
                        with contextlib.suppress(ValueError):
                            row[kw.arg] = ast.literal_eval(kw.value)
                    return row
    raise LookupError("chapter 3 has no literal 'paper' row in its ctx.settings table")


SECTIONS = ("airbench", "adversarial", "resnet18", "heatmap", "masks", "cifar10c")
# Sizes per device type: full on CUDA, tiny on the CPU (same code paths).
SIZES = {
    "cuda": dict(n_train=50_000, n_test=10_000, n_robust=1000, restarts=10, heat_images=10_000,
                 heat_resnet_images=1000, mask_images="chapter 3", mask_nets="chapter 3", c_images=10_000,
                 corruptions=None, severities=(1, 2, 3, 4, 5),
                 airbench_widths=None, resnet_width=64, resnet_epochs=2, epoch_override=None),
    "cpu": dict(n_train=512, n_test=128, n_robust=16, restarts=1, heat_images=2, heat_resnet_images=1,
                mask_images=64, mask_nets=3,
                c_images=16, corruptions=("gaussian_noise", "fog"), severities=(3,),
                airbench_widths=(8, 16, 16), resnet_width=8, resnet_epochs=1, epoch_override=1),
}


def sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def device_label(device: str) -> str:
    return torch.cuda.get_device_name(0) if device.startswith("cuda") else f"CPU ({torch.get_num_threads()} threads)"


def paper_config(name: str, size: dict, **overrides):
    """The zoo's paper-profile TrainConfig of ``name``, shrunk to ``size`` (the CPU run)."""
    kw = dict(n_train=size["n_train"], **overrides)
    if size["airbench_widths"] and recipe_config(name, "paper", **overrides).arch == "airbench":
        kw["widths"] = size["airbench_widths"]
    if size["epoch_override"]:
        kw["epochs"] = size["epoch_override"]
    return recipe_config(name, "paper", **kw)


@contextlib.contextmanager
def deterministic_kernels(on: bool):
    """paper-run's training settings (deterministic cuDNN and algorithms) while ``on``."""
    if not on:
        yield
        return
    old = (torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic,
           torch.are_deterministic_algorithms_enabled())
    torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = False, True
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.backends.cudnn.benchmark, torch.backends.cudnn.deterministic = old[0], old[1]
        torch.use_deterministic_algorithms(old[2])


def timed_training(cfg, x, y, device: str) -> tuple[torch.nn.Module, float]:
    torch.manual_seed(cfg.seed)
    model = build_model(cfg.arch, cfg.widths, stem=cfg.stem or None)
    sync(device)
    start = time.perf_counter()
    train_model(model, x, y, cfg, device=device, desc=f"bench {cfg.arch}")
    sync(device)
    return model, time.perf_counter() - start


def tta_accuracy(model, x, y) -> float:
    """airbench's test-time augmentation (level 2): mirror, and 1-pixel shifts up-left and
    down-right, logits weighted as in the reference. For comparison only: the book reports
    and analyses the plain forward pass."""
    def mirror(t):
        return 0.5 * evaluate.logits(model, t) + 0.5 * evaluate.logits(model, t.flip(-1))
    padded = torch.nn.functional.pad(x, (1, 1, 1, 1), mode="reflect")
    shifted = [padded[:, :, 0:32, 0:32], padded[:, :, 2:34, 2:34]]
    logits = 0.5 * mirror(x) + 0.25 * mirror(shifted[0]) + 0.25 * mirror(shifted[1])
    return (logits.argmax(1) == y.to(logits.device)).float().mean().item()


def bench_airbench(device, size, train, test, compile_too: bool) -> dict:
    x, y = train
    tx, ty = test[0].to(device), test[1].to(device)
    base = paper_config("standard", size)
    runs = []
    epoch_options = [base.epochs] if size["epoch_override"] else sorted({10.0, float(base.epochs)})
    # (epochs, compiled, deterministic, airbench's loop): paper-run trains with deterministic
    # kernels, so that a model dropped from the carry retrains to the same weights; the
    # deterministic run prices that, and the last one what airbench's loop adds.
    variants = [(e, False, False, True) for e in epoch_options]
    variants += [(base.epochs, True, False, True)] if compile_too else []
    variants += [(base.epochs, False, True, True), (base.epochs, False, False, False)]
    for epochs, compiled, deterministic, loop in variants:
        os.environ["FREQLIB_COMPILE"] = "1" if compiled else "0"
        try:      # training and evaluation: a compiled model may fail in either
            with deterministic_kernels(deterministic):
                cfg = paper_config("standard", size, epochs=epochs, **({} if loop else LOOP_OFF))
                model, seconds = timed_training(cfg, x, y, device)
            run = {"train_seconds": round(seconds, 2),
                   "test_accuracy": round(evaluate.accuracy(model, tx, ty), 4),
                   "tta_accuracy": round(tta_accuracy(model, tx, ty), 4)}
        except Exception as exc:                   # noqa: BLE001 -- e.g. torch.compile: the other runs still count
            runs.append({"epochs": epochs, "compiled": compiled, "deterministic": deterministic,
                         "airbench_loop": loop, "error": first_line(exc)})
            print(f"airbench {epochs:g} epochs{' compiled' if compiled else ''}"
                  f"{' deterministic' if deterministic else ''}{'' if loop else ' without its loop'}: "
                  f"failed ({runs[-1]['error']})", flush=True)
            continue
        finally:
            os.environ["FREQLIB_COMPILE"] = "0"    # the next sections run uncompiled, whatever happened
        runs.append({"epochs": epochs, "compiled": compiled, "deterministic": deterministic,
                     "airbench_loop": loop, **run})
        print(f"airbench {epochs:g} epochs{' compiled' if compiled else ''}"
              f"{' deterministic' if deterministic else ''}{'' if loop else ' without its loop'}: {seconds:.1f} s, "
              f"accuracy {runs[-1]['test_accuracy']:.4f} (TTA {runs[-1]['tta_accuracy']:.4f})", flush=True)
    return {"widths": list(base.widths), "batch_size": base.batch_size, "n_train": base.n_train,
            "n_test": len(ty), "runs": runs, "target": "standard model >= 93.5% clean (no TTA)"}


def bench_adversarial(device, size, train, test) -> dict:
    from freqlib.attacks import robust_accuracy
    x, y = train
    cfg = paper_config("linf_at", size)
    model, seconds = timed_training(cfg, x, y, device)
    n = size["n_robust"]
    sync(device)
    start = time.perf_counter()
    robust = robust_accuracy(model, test[0][:n], test[1][:n], "linf", eps=8 / 255, steps=50,
                             restarts=size["restarts"], progress=None)
    sync(device)
    out = {"recipe": "linf_at (FGSM-RS, eps 8/255, alpha 10/255)", "widths": list(cfg.widths),
           "epochs": cfg.epochs, "batch_size": cfg.batch_size, "lr": cfg.lr, "train_seconds": round(seconds, 2),
           "clean_accuracy": round(evaluate.accuracy(model, test[0].to(device), test[1].to(device)), 4),
           "pgd50_accuracy": round(float(robust.mean()), 4), "n_robust": n, "restarts": size["restarts"],
           "pgd_seconds": round(time.perf_counter() - start, 2), "target": ">= 80% clean, >= 45% PGD-50"}
    print(f"linf_at: {seconds:.1f} s, clean {out['clean_accuracy']:.4f}, PGD-50 {out['pgd50_accuracy']:.4f}",
          flush=True)
    return out


def bench_resnet18(device, size, train, compile_too: bool) -> dict:
    x, y = train
    full = recipe_config("standard", "paper", arch="resnet18", widths=(64,), whiten=False)
    out = {"profile_epochs": full.epochs, "batch_size": full.batch_size, "runs": []}
    for compiled in ([False, True] if compile_too else [False]):
        cfg = recipe_config("standard", "paper", arch="resnet18", widths=(size["resnet_width"],), whiten=False,
                            epochs=size["resnet_epochs"], n_train=size["n_train"])
        torch.manual_seed(0)
        model = build_model("resnet18", cfg.widths)
        if compiled:
            model.body.compile()
        sync(device)
        start = time.perf_counter()
        train_model(model, x, y, cfg, device=device, desc="bench resnet18")
        sync(device)
        seconds = time.perf_counter() - start
        per_epoch = seconds / cfg.epochs * 50_000 / cfg.n_train
        out["runs"].append({"compiled": compiled, "timed_epochs": cfg.epochs, "seconds": round(seconds, 2),
                            "seconds_per_epoch": round(per_epoch, 2),
                            "profile_estimate_s": round(per_epoch * full.epochs, 1)})
        print(f"resnet18{' compiled' if compiled else ''}: {per_epoch:.2f} s/epoch -> "
              f"{per_epoch * full.epochs:.0f} s for {full.epochs} epochs", flush=True)
    return out


def bench_heatmap(device, size, test) -> dict:
    from freqlib.heatmap import distinct_frequencies, fourier_heatmap
    out = {}
    for arch, widths, n in (("airbench", size["airbench_widths"], size["heat_images"]),
                            ("resnet18", (size["resnet_width"],), size["heat_resnet_images"])):
        model = evaluate.prepare_model(build_model(arch, widths), device).eval()
        x, y = test[0][:n], test[1][:n]
        fourier_heatmap(model, x[:2], y[:2])     # warm-up
        sync(device)
        start = time.perf_counter()
        fourier_heatmap(model, x, y)
        sync(device)
        seconds = time.perf_counter() - start
        bases = len(distinct_frequencies(32, 32)[0])
        out[arch] = {"images": n, "bases": bases, "seconds": round(seconds, 2),
                     "images_per_s": round(n * bases / seconds),
                     "seconds_for_10k_images": round(seconds * 10_000 / n, 1)}
        print(f"heat map {arch}: {n * bases / seconds:,.0f} images/s, 10k images: "
              f"{out[arch]['seconds_for_10k_images']:.0f} s per model", flush=True)
    return out


def bench_masks(device, size, test) -> dict:
    """Two epochs of chapter 3's paper mask settings (read from the chapter) for as many airbench
    networks as one seed masks there (fewer on CPU), one after the other and together; the same
    masks either way."""
    from freqlib import mask_training
    row = chapter3_paper()
    n_nets = len(row["models"]) if size["mask_nets"] == "chapter 3" else size["mask_nets"]
    n_images = row["n_mask"] if size["mask_images"] == "chapter 3" else size["mask_images"]
    nets = []
    for k in range(n_nets):
        torch.manual_seed(k)
        nets.append(evaluate.prepare_model(build_model("airbench", size["airbench_widths"]), device).eval())
    x, y = test[0][:n_images], test[1][:n_images]
    cfg = mask_training.MaskConfig(batch_size=row["batch"], lr=mask_training.scaled_lr(row["batch"]), max_epochs=2,
                                   patience=10 ** 6)
    mask_training.train_masks(nets[:2], x[:64], y[:64], [cfg] * 2)   # warm-up (cuDNN plans, vmap)
    timed = {}
    for mode in ("one after the other", "together"):
        sync(device)
        start = time.perf_counter()
        if mode == "together":
            mask_training.train_masks(nets, x, y, [cfg] * len(nets))
        else:
            for net in nets:
                mask_training.train_mask(net, x, y, cfg)
        sync(device)
        timed[mode] = time.perf_counter() - start
    steps = len(nets) * 2 * -(-len(x) // cfg.batch_size)
    rate = {k: steps / v for k, v in timed.items()}
    # the chapter at paper: seeds x networks x max_epochs (no early stop) of n_mask images
    paper_steps = (PROFILES["paper"]["seeds"] * len(row["models"]) * row["max_epochs"]
                   * -(-row["n_mask"] // row["batch"]))
    out = {"networks": len(nets), "images": len(x), "batch_size": cfg.batch_size, "mask_steps": steps,
           "seconds": {k: round(v, 2) for k, v in timed.items()},
           "mask_steps_per_s": {k: round(v, 1) for k, v in rate.items()},
           "together_over_one_by_one": round(rate["together"] / rate["one after the other"], 2),
           "chapter3_paper_masks_s_at_100_epochs": {k: round(paper_steps / v) for k, v in rate.items()}}
    print(f"masks ({len(nets)} networks, batch {cfg.batch_size}): {rate['one after the other']:.0f} steps/s one by one, "
          f"{rate['together']:.0f} together ({out['together_over_one_by_one']:.1f}x); chapter 3 at paper "
          f"({row['max_epochs']} epochs): {paper_steps / rate['together']:.0f} s together", flush=True)
    return out


def bench_cifar10c(device, size, test) -> dict:
    from freqlib import corruptions as cc
    names = size["corruptions"] or cc.CORRUPTIONS
    x, y = test[0][:size["c_images"]].to(device), test[1][:size["c_images"]].to(device)
    models = {"airbench": evaluate.prepare_model(build_model("airbench", size["airbench_widths"]), device).eval(),
              "resnet18": evaluate.prepare_model(build_model("resnet18", (size["resnet_width"],)), device).eval()}
    gen_s, eval_s = 0.0, {k: 0.0 for k in models}
    for name in names:
        for s in size["severities"]:
            sync(device)
            t = time.perf_counter()
            xc = cc.corrupt(x, name, s, seed=0)
            sync(device)
            gen_s += time.perf_counter() - t
            for k, m in models.items():
                t = time.perf_counter()
                evaluate.correct(m, xc, y)          # returns on the CPU: synchronises
                eval_s[k] += time.perf_counter() - t
    n = len(names) * len(size["severities"]) * len(x)
    out = {"images": n, "generation_seconds": round(gen_s, 2), "generation_images_per_s": round(n / gen_s),
           "full_set_generation_s": round(gen_s * 750_000 / n, 1),
           "evaluation": {k: {"seconds": round(v, 2), "images_per_s": round(n / v),
                              "full_set_s": round(v * 750_000 / n, 1)} for k, v in eval_s.items()}}
    print(f"CIFAR-10-C: generation {n / gen_s:,.0f} images/s; evaluation " +
          ", ".join(f"{k} {n / v:,.0f} images/s" for k, v in eval_s.items()), flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="auto")
    ap.add_argument("--only", nargs="*", default=list(SECTIONS), choices=SECTIONS)
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd training")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    try:
        device = resolve_device(args.device)
    except ValueError as exc:                  # no GPU where one was asked for: one line, not a traceback
        sys.exit(f"bench_paper.py: {exc}")
    kind = "cuda" if device.startswith("cuda") else "cpu"
    size = SIZES[kind]
    if kind == "cuda":
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")   # before cuBLAS starts (deterministic run)
        torch.backends.cudnn.benchmark = True
    x, y, variant = cifar10_tensors("train", "cpu")
    tx, ty, _ = cifar10_tensors("test", "cpu")
    train = (x[:size["n_train"]], y[:size["n_train"]])
    test = (tx[:size["n_test"]], ty[:size["n_test"]])
    common = {"device": device_label(device), "variant": variant, "torch": torch.__version__}
    for section in args.only:
        start = time.perf_counter()
        try:
            result = run_section(section, device, size, train, test, args.compile)
        except Exception as exc:                   # noqa: BLE001 -- one failing section must not cost the others
            result = {"error": first_line(exc)}
            print(f"{section}: failed ({result['error']})", flush=True)
        result.update(common, size="full" if kind == "cuda" else "tiny (CPU check of the code path)",
                      section_seconds=round(time.perf_counter() - start, 1))
        write(args.out, f"paper_{section}_{kind}", result)


def run_section(section: str, device: str, size: dict, train, test, compile_too: bool) -> dict:
    if section == "airbench":
        return bench_airbench(device, size, train, test, compile_too)
    if section == "adversarial":
        return bench_adversarial(device, size, train, test)
    if section == "resnet18":
        return bench_resnet18(device, size, train, compile_too)
    if section == "heatmap":
        return bench_heatmap(device, size, test)
    if section == "masks":
        return bench_masks(device, size, test)
    return bench_cifar10c(device, size, test)


if __name__ == "__main__":
    main()
