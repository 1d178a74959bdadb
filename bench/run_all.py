"""Run every benchmark, collect the figures in one JSON, and rebuild the
README's performance table from it.

    python bench/run_all.py --out bench/results.json
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
SCRIPTS = [("bench_filtering.py", ["--n", "500"]), ("bench_heatmap.py", []),
           ("bench_corruptions.py", []), ("bench_training.py", []), ("bench_book.py", []),
           ("bench_bootstrap.py", ["--profile", "quick", "--chapters", "01", "02", "03", "06"]),
           ("bench_lens_scoring.py", []), ("bench_sweep.py", []),
           ("bench_paper.py", ["--compile"])]   # full size on CUDA only (see main)


def table(results: dict) -> str:
    rows = ["| benchmark | figure | machine |", "|---|---|---|"]

    def add(what, figure, key):
        m = results.get(key, {}).get("machine", {})
        where = m.get("gpu") or f"{m.get('cpu', '?')}, {m.get('threads', '?')} threads"
        rows.append(f"| {what} | {figure} | {where} |")
    for key, r in results.items():
        if key.startswith("paper_") and key.endswith("_cpu"):
            continue          # bench_paper.py's tiny CPU run checks code paths, its figures mean nothing
        if "error" in r:      # a section of bench_paper.py that raised: say so, do not drop the row
            add(key, f"failed: {r['error']}", key)
            continue
        if key.startswith("paper_airbench"):
            for run in r["runs"]:
                if "error" in run:
                    add(f"airbench, {run['epochs']:g} epochs" + (" (torch.compile)" if run["compiled"] else "")
                        + (" (deterministic kernels)" if run.get("deterministic") else "")
                        + ("" if run.get("airbench_loop", True) else " (without airbench's loop)"),
                        f"failed: {run['error']}", key)
                    continue
                add(f"airbench {tuple(r['widths'])}, paper settings, {run['epochs']:g} epochs"
                    + (" (torch.compile, compile time counted)" if run["compiled"] else "")
                    + (" (deterministic kernels, as paper-run trains)" if run.get("deterministic") else "")
                    + ("" if run.get("airbench_loop", True) else " (without airbench's loop: plain schedule, "
                       "no lookahead, random flips)"),
                    f"{100 * run['test_accuracy']:.2f}% ({100 * run['tta_accuracy']:.2f}% with airbench's TTA) "
                    f"in {run['train_seconds']:.1f} s", key)
        elif key.startswith("paper_adversarial"):
            add(f"airbench FGSM-RS (linf_at), {r['epochs']:g} epochs, batch {r['batch_size']}",
                f"clean {100 * r['clean_accuracy']:.1f}%, PGD-50x{r['restarts']} {100 * r['pgd50_accuracy']:.1f}% "
                f"in {r['train_seconds']:.0f} s", key)
        elif key.startswith("paper_resnet18"):
            for run in r["runs"]:
                add("ResNet-18, paper settings" + (" (compiled)" if run["compiled"] else ""),
                    f"{run['seconds_per_epoch']:.2f} s/epoch; {r['profile_epochs']} epochs ≈ {run['profile_estimate_s']:.0f} s", key)
        elif key.startswith("paper_heatmap"):
            for arch, v in r.items():
                if isinstance(v, dict) and "images_per_s" in v:
                    add(f"Fourier heat map ({arch}), 10,000 images x {v['bases']} bases",
                        f"{v['images_per_s']:,} images/s; {v['seconds_for_10k_images']:.0f} s per model", key)
        elif key.startswith("paper_masks"):
            rate = r["mask_steps_per_s"]
            add(f"chapter 3 masks, {r['networks']} networks, batch {r['batch_size']} (one by one vs together, vmapped)",
                f"{rate['one after the other']:,.0f} vs {rate['together']:,.0f} mask steps/s, "
                f"**{r['together_over_one_by_one']}×**; chapter 3's masks at 100 epochs ≈ "
                f"{r['chapter3_paper_masks_s_at_100_epochs']['together']:,} s", key)
        elif key.startswith("paper_cifar10c"):
            ev = ", ".join(f"{k} {v['images_per_s']:,} images/s ({v['full_set_s']:.0f} s)" for k, v in r["evaluation"].items())
            add("CIFAR-10-C 750,000 images: generation on the device, evaluation per model",
                f"generation {r['generation_images_per_s']:,} images/s ({r['full_set_generation_s']:.0f} s); {ev}", key)
        elif key.startswith("dct_band_occlusion"):
            add("DCT band occlusion, 32 bands (batched vs per-image scipy loop)",
                f"{r['batched_ms_per_image']} ms/image, **{r['speedup']}×**", key)
        elif key.startswith("band_filtering"):
            add(f"low/high-pass at 17 radii, {r['images']} images (batched vs per-image numpy loop)",
                f"{r['batched_torch_s']} s vs {r['numpy_loop_s']} s, **{r['speedup']}×**", key)
        elif key.startswith("fourier_heatmap"):
            add(f"Fourier heat map ({r['arch']}, {r['distinct_bases']} bases)",
                f"{r['perturbed_images_per_s']:,} images/s; full test set ≈ {r['full_test_set_estimate_s']} s", key)
        elif key.startswith("cifar10c") or key.startswith("corruptions"):
            add(f"CIFAR-10-C regeneration, 15 × 5 × {r['images_per_corruption_severity']:,} images ({r['full_set']})",
                f"{r['full_set_seconds']:.0f} s ({r['images_per_second']:,.0f} images/s)", key)
        elif key.startswith("training"):
            for net, ips in r["train_images_per_s"].items():
                add(f"training throughput, {net}", f"{ips:,} images/s", key)
            for z in r.get("zoo_records", []):
                if "epochs" not in z:
                    continue
                add(f"zoo {z['name']} ({z['profile']}: {z['arch']}, {z['epochs']:g} epochs × {z['n_train']:,} images), "
                    "as recorded when trained", f"{100 * z['test_accuracy']:.1f}% in {z['train_seconds']:.0f} s on "
                    f"{z['device']}", key)
        elif key.startswith("bootstrap"):
            for c in r.get("criteria", [r["criterion"]]):
                add(f"bootstrap of a paired difference ({c['n_boot']:,} resamples × {c['n_images']:,} images × "
                    f"{c['arrays']} arrays, {r['device']})",
                    f"{c['resamples_per_s']:,} resamples/s ({c['seconds']} s per criterion; "
                    f"load average {r.get('load_average', '?')})", key)
            for ch in r.get("chapters", []):
                figure = (f"could not execute ({ch['error']})" if "error" in ch else
                          f"{ch['share_pct']}% of the wall time ({ch['bootstrap_s']} s of {ch['wall_s']} s, "
                          f"{ch['calls']} calls; goal < 5%)")
                add(f"bootstrap share of {ch['chapter']} ({ch['profile']})", figure, key)
        elif key == "lens_scoring":
            add(f"AUROC of {r['bands']} candidate bands for {r['maps']:,} lens maps (chapter 6; one ranking for "
                "all bands vs ranked again per band)",
                f"{r['one_ranking_s']} s vs {r['per_band_s']} s, **{r['speedup']}×**", key)
        elif key == "sweep_throughput":
            add(f"sweep of {r['seeds']} seeds of {r['chapter']} ({r['profile']}) on {r['cores']} cores: "
                "submitit local executor vs one after another",
                f"{r['sweep_local_s']} s vs {r['sequential_s']} s, **{r['speedup']}×** "
                f"(load average {r['load_average_before']} before)", key)
        elif key == "book_wall_time":
            for run, v in r["runs"].items():
                parts = ", ".join(f"{c}: {s:.0f} s" for c, s in v["chapters"].items())
                add(f"whole book, {run} (chapter execution; zoo models already trained)",
                    f"{v['total_s']:.0f} s ({parts})", key)
    return "\n".join(rows)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", default=str(HERE / "results.json"))
    ap.add_argument("--only", nargs="*", default=None, help="script names to run (default: all)")
    args = ap.parse_args()
    args.out = str(Path(args.out).resolve())  # the scripts run from bench/
    for script, extra in SCRIPTS:
        if args.only is not None and script not in args.only:
            continue
        if not (HERE / script).is_file():
            print(f"skipping {script}: not present")
            continue
        if script == "bench_paper.py" and args.only is None:
            import torch
            if not torch.cuda.is_available():
                print("skipping bench_paper.py: full size needs a GPU (docs/gpu-session.md)")
                continue
        print(f"== {script}", flush=True)
        subprocess.run([sys.executable, str(HERE / script), "--out", args.out, *extra], cwd=HERE, check=True)
    results = json.loads(Path(args.out).read_text())
    readme = ROOT / "README.md"
    text = readme.read_text()
    if START in text and END in text:
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        readme.write_text(f"{head}{START}\n{table(results)}\n{END}{tail}")
        print("README performance table updated")


if __name__ == "__main__":
    main()
