"""Training speed of the book's networks, and the zoo's time-to-accuracy.

Measures training throughput (images/s over a few steps of the real training
loop) for the fast net at the quick and paper widths and for ResNet-18, then
lists the zoo records of the four main recipes the chapters load now (test accuracy and
training seconds of the full runs).

    python bench/bench_training.py [--device cpu] [--steps 5] [--out bench/results.json]
"""
from __future__ import annotations

import argparse
import time

import torch

from common import write
from freqlib.data import available_variant
from freqlib.models import build_model
from freqlib.paper_plan import MAIN
from freqlib.profiles import PROFILES, resolve_device
from freqlib.train import TrainConfig, train_model
from freqlib.zoo import list_models, model_key


def throughput(arch: str, widths, device: str, steps: int, batch: int) -> float:
    x = torch.rand(batch * steps, 3, 32, 32)
    y = torch.randint(0, 10, (batch * steps,))
    cfg = TrainConfig(arch=arch, widths=widths, epochs=1, batch_size=batch, n_train=len(x))
    model = build_model(arch, widths)
    train_model(model, x[:batch * 2], y[:batch * 2], TrainConfig(arch=arch, widths=widths, epochs=1,
                                                                   batch_size=batch, n_train=batch * 2),
                device=device, desc="warm-up")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    t = time.perf_counter()
    train_model(model, x, y, cfg, device=device, desc="timed")
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    return len(x) / (time.perf_counter() - t)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="auto")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    device = resolve_device(args.device)
    nets = {"fastnet quick widths": ("fastnet", PROFILES["quick"]["widths"]),
            "fastnet paper widths (64, 256, 256)": ("fastnet", (64, 256, 256)),
            "resnet18": ("resnet18", (64,))}
    if device == "cpu":
        nets.pop("resnet18")  # minutes per step on 2 cores; measured on a GPU only
    result = {"device": device, "batch": 512,
              "train_images_per_s": {k: round(throughput(a, w, device, args.steps, 512))
                                     for k, (a, w) in nets.items()}}
    # the zoo the chapters load now: each main recipe's record under its current key (the folder
    # also keeps models of other budgets, seeds and older code, which would crowd the table)
    current = {model_key(n, p, available_variant())[0] for n in MAIN for p in ("quick", "paper")}
    result["zoo_records"] = [{**{k: m[k] for k in ("name", "profile", "test_accuracy", "train_seconds", "device")},
                              "epochs": m["config"]["epochs"], "n_train": m["config"]["n_train"],
                              "arch": m["config"]["arch"]}
                             for m in list_models() if m.get("key") in current]
    write(args.out, f"training_{device.split(':')[0]}", result)


if __name__ == "__main__":
    main()
