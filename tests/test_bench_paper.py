"""bench/bench_paper.py runs its GPU benchmarks' code paths on the CPU at a tiny size, and the
README table shows its CUDA figures (never the tiny CPU ones)."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "bench"))


def test_bench_paper_runs_on_cpu_and_tags_the_device(tmp_path):
    out = tmp_path / "results.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "TQDM_DISABLE": "1"}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_paper.py"), "--device", "cpu",
                          "--only", "airbench", "heatmap", "masks", "cifar10c", "--out", str(out)],
                         capture_output=True, text=True, env=env, timeout=900)
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(out.read_text())
    assert set(got) == {"paper_airbench_cpu", "paper_heatmap_cpu", "paper_masks_cpu", "paper_cifar10c_cpu"}
    for entry in got.values():
        assert entry["device"].startswith("CPU") and entry["size"].startswith("tiny")
        assert entry["machine"]["gpu"] is None
    run = got["paper_airbench_cpu"]["runs"][0]
    assert 0 <= run["test_accuracy"] <= 1 and run["train_seconds"] > 0
    assert got["paper_heatmap_cpu"]["airbench"]["bases"] == 514
    assert set(got["paper_masks_cpu"]["mask_steps_per_s"]) == {"one after the other", "together"}


def test_readme_table_shows_gpu_figures_only():
    from run_all import table
    entry = {"widths": [64, 256, 256], "runs": [{"epochs": 18, "compiled": False, "train_seconds": 7.1,
                                                 "test_accuracy": 0.9391, "tta_accuracy": 0.9432}],
             "machine": {"gpu": "NVIDIA H200", "cpu": "x86_64", "threads": 16}}
    text = table({"paper_airbench_cuda": entry, "paper_airbench_cpu": dict(entry, machine={"gpu": None})})
    rows = [r for r in text.splitlines() if "airbench" in r]
    assert len(rows) == 1 and "93.91%" in rows[0] and "NVIDIA H200" in rows[0]


def test_readme_table_shows_the_mask_ratio():
    from run_all import table
    entry = {"networks": 8, "batch_size": 16, "together_over_one_by_one": 5.2,
             "mask_steps_per_s": {"one after the other": 400.0, "together": 2080.0},
             "chapter3_paper_masks_s_at_100_epochs": {"one after the other": 1878, "together": 361},
             "machine": {"gpu": "NVIDIA H200", "cpu": "x86_64", "threads": 16}}
    rows = [r for r in table({"paper_masks_cuda": entry}).splitlines() if "masks" in r]
    assert len(rows) == 1 and "**5.2×**" in rows[0] and "361 s" in rows[0] and "NVIDIA H200" in rows[0]


def test_mask_bench_reads_chapter_3s_paper_row():
    """The bench plans chapter 3's masks from the chapter's own settings, not from copied numbers."""
    from bench_paper import chapter3_paper
    row = chapter3_paper()
    assert "linf_pgd_c" in row["models"] and "standard" in row["models"]
    assert all(isinstance(row[k], int) and row[k] > 0 for k in ("n_mask", "batch", "max_epochs"))


def test_a_failed_section_or_variant_shows_as_failed_in_the_readme_table():
    from run_all import table
    gpu = {"gpu": "NVIDIA H200", "cpu": "x86_64", "threads": 16}
    entry = {"widths": [64, 256, 256], "machine": gpu,
             "runs": [{"epochs": 18, "compiled": False, "train_seconds": 7.1, "test_accuracy": 0.9391,
                       "tta_accuracy": 0.9432},
                      {"epochs": 18, "compiled": True, "deterministic": False, "error": "BackendCompilerFailed: x"}]}
    text = table({"paper_airbench_cuda": entry, "paper_heatmap_cuda": {"error": "OutOfMemoryError: y", "machine": gpu}})
    assert "93.91%" in text and "failed: BackendCompilerFailed: x" in text
    assert "| paper_heatmap_cuda | failed: OutOfMemoryError: y |" in text


def test_a_section_that_raises_is_recorded_and_the_next_still_runs(tmp_path, monkeypatch):
    import bench_paper
    out = tmp_path / "results.json"
    monkeypatch.setattr(bench_paper, "bench_heatmap", lambda *a: (_ for _ in ()).throw(RuntimeError("boom\nmore")))
    monkeypatch.setattr(bench_paper, "bench_masks", lambda *a: {"mask_steps_per_s": {"together": 1.0}})
    monkeypatch.setattr(sys, "argv", ["bench_paper.py", "--device", "cpu", "--only", "heatmap", "masks",
                                      "--out", str(out)])
    bench_paper.main()
    got = json.loads(out.read_text())
    assert got["paper_heatmap_cpu"]["error"] == "RuntimeError: boom"
    assert got["paper_masks_cpu"]["mask_steps_per_s"] == {"together": 1.0}


def test_asking_for_a_gpu_that_is_not_there_is_one_line():
    if __import__("torch").cuda.is_available():
        return
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, str(ROOT / "bench" / "bench_paper.py"), "--device", "cuda", "--only", "heatmap"],
                         capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode != 0 and "Traceback" not in res.stderr
    assert res.stderr.strip().splitlines() == [res.stderr.strip()] and "CUDA is not available" in res.stderr
