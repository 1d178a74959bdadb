"""Sweeps on submitit: validation before submitting, the local executor end to
end (a planted failure, re-running only what failed), pooled tables and their
verdicts, the ledger's reading of them, and a real single-node Slurm."""
import json
import os
import re
import time

import nbformat
import pytest

import slurm_cluster
import sweep_notebook
from freqlib import sweep
from freqlib.__main__ import main
from freqlib.ledger import collect_claims
from freqlib.runner import ParameterError


@pytest.fixture
def sweeps(tmp_path, monkeypatch):
    monkeypatch.setenv("FREQLIB_SWEEPS", str(tmp_path / "sweeps"))
    return tmp_path / "sweeps"


@pytest.fixture
def claim_nb(tmp_path):
    return sweep_notebook.write(tmp_path / "t_claims.ipynb")


def test_bad_input_stops_before_submitting(sweeps, claim_nb, capsys):
    with pytest.raises(ParameterError, match="chapter '99' not found"):
        sweep.run_sweep(["99"], ["smoke"], [0])
    with pytest.raises(ParameterError, match="unknown parameter 'shfit'"):
        sweep.run_sweep([str(claim_nb)], ["smoke"], [0], {"shfit": [1.0]})
    with pytest.raises(ParameterError, match="'shift' must be float"):
        sweep.run_sweep([str(claim_nb)], ["smoke"], [0], {"shift": [0.1, "big"]})
    with pytest.raises(ParameterError, match="seed=-1 must be an int >= 0"):
        sweep.run_sweep([str(claim_nb)], ["smoke"], [0, -1])
    with pytest.raises(ParameterError, match="profile='fast'"):
        sweep.run_sweep([str(claim_nb)], ["fast"], [0])
    with pytest.raises(ParameterError, match="slurm"):
        sweep.run_sweep([str(claim_nb)], ["smoke"], [0], cluster="pbs")
    assert not sweeps.exists(), "nothing may be written before every job is valid"
    assert main(["sweep", str(claim_nb), "--profile", "smoke", "-p", "shift=[1]"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "'shift' must be float" in err[0]


def test_plan_sets_one_training_seed_per_job_and_a_stable_id(claim_nb):
    jobs = sweep.plan([str(claim_nb)], ["smoke"], [0, 1, 2], {"shift": [0.1, 0.2]}, device="cpu")
    assert len(jobs) == 6 and all(j["params"]["seeds"] == 1 for j in jobs)
    assert len({j["key"] for j in jobs}) == 6
    again = sweep.plan([str(claim_nb)], ["smoke"], [0, 1, 2], {"shift": [0.1, 0.2]}, device="cpu")
    assert sweep.default_id(jobs) == sweep.default_id(again)
    assert sweep.default_id(jobs) != sweep.default_id(jobs[:3])


def test_local_sweep_reports_failures_reruns_only_them_and_pools(sweeps, claim_nb, tmp_path):
    marker = tmp_path / "fail-seed-1"
    marker.write_text("planted")
    logs = []
    kw = dict(profiles=["smoke"], seeds=[0, 1], grid={"fail_while": [str(marker)]}, device="cpu",
              cluster="local", log=logs.append)
    first = sweep.run_sweep([str(claim_nb)], **kw)
    assert first["ok"] == 1 and len(first["failures"]) == 1
    failed = first["failures"][0]
    assert failed["chapter"] == "t_claims" and failed["params"]["seed"] == 1
    assert "RuntimeError: planted failure for seed 1" in failed["error"]
    assert any("FAILED" in line and "seed1" in line for line in logs)
    sid = first["id"]
    done0 = next((sweeps / sid / "jobs").glob("*seed0*")) / "result.json"
    stamp = done0.stat().st_mtime_ns

    marker.unlink()                       # the cause is fixed: the same sweep again
    logs.clear()
    second = sweep.run_sweep([str(claim_nb)], **kw)
    assert second["id"] == sid and second["ok"] == 2 and not second["failures"]
    assert any("1 ok, 1 failed" in line and "running 1" in line for line in logs), logs
    assert done0.stat().st_mtime_ns == stamp, "a job that succeeded was re-run"

    pooled = json.loads((sweeps / sid / "pooled.json").read_text())
    (group,) = pooled["groups"]
    (claim,) = group["claims"]
    per_seed = [json.loads((d / "result.json").read_text())["claims"][0]["numbers"]["mean"]["value"]
                for d in sorted((sweeps / sid / "jobs").iterdir())]
    assert claim["claim"] == "T1" and claim["seeds"] == [0, 1]
    assert claim["numbers"]["mean"]["value"] == pytest.approx(sum(per_seed) / 2)
    assert claim["verdict"] == "reproduced" and claim["seeds_text"] == "reproduced in 2 of 2 seeds"
    assert claim["jpeg_check"] == {"JPEG q75": "same verdict in 0 of 2 seeds"}
    md = (sweeps / sid / "pooled.md").read_text()
    assert "| T1 | reproduced | reproduced in 2 of 2 seeds |" in md
    table = sweep.pooled_table("t_claims", "smoke")
    assert table.loc["T1", "pooled verdict"] == "reproduced" and table.attrs["sweep"] == sid
    assert sweep.pooled_table("t_claims", "paper") is None

    # the ledger shows the pooled result beside a run of the same chapter and parameters
    # (the seed-0 job's notebook is such a run)
    run = next((sweeps / sid / "jobs").glob("*seed0*/t_claims.ipynb"))
    (row,) = collect_claims({"t_claims": run}, [claim_nb.relative_to(claim_nb.parent)])
    assert row["sweep (pooled)"] == f"reproduced, reproduced in 2 of 2 seeds (sweep {sid})"
    assert row["criteria"] == "✔" and row["seeds"] == "1 seed"
    assert row["JPEG check"].startswith("JPEG q75: not reproduced")


def _rows(values_by_seed, low, high):
    rule = [{"describe": "mean above 0", "keys": ["mean"], "above": 0.0, "below": None}]
    return [(s, {"claim": "T1", "verdict": "?", "rules": rule,
                 "numbers": {"mean": {"value": v, "low": v - low, "high": v + high, "over": "images", "n": 100}}})
            for s, v in enumerate(values_by_seed)]


def test_pooled_verdict_is_judged_on_pooled_intervals():
    assert sweep._pool_claim(_rows([0.5, 0.6, 0.55], 0.1, 0.1))["verdict"] == "reproduced"
    assert sweep._pool_claim(_rows([-0.5, -0.6, -0.55], 0.1, 0.1))["verdict"] == "not reproduced"
    mixed = sweep._pool_claim(_rows([-0.5, 0.6, 0.05], 0.1, 0.1))
    assert mixed["verdict"] == "inconclusive" and mixed["numbers"]["mean"]["low"] < 0 < mixed["numbers"]["mean"]["high"]
    no_rules = _rows([0.5, 0.6], 0.1, 0.1)
    for _, r in no_rules:
        del r["rules"]
    assert sweep._pool_claim(no_rules)["verdict"].startswith("not judged")


def test_collect_unknown_sweep_is_one_line(sweeps, capsys):
    assert main(["sweep", "--collect", "nope"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no sweep 'nope'" in err[0]


ZOO_WORKER = r'''
import hashlib, json, sys, time
from pathlib import Path
import torch
from freqlib import profiles, zoo
from freqlib.data import planted_frequency_dataset

folder, me = Path(sys.argv[1]), sys.argv[2]
zoo.zoo_dir = lambda: folder
profiles.PROFILES["smoke"] = dict(arch="fastnet", widths=(8, 8, 16), epochs=1, n_train=256, batch_size=128,
                                  lr=0.2, n_test=64, n_robust=16, robust_restarts=1, n_boot=100, seeds=1)
x, y, _ = planted_frequency_dataset(320, "low", seed=0)
zoo.dataset_tensors = lambda dataset, split: (x[:256], y[:256], "planted") if split == "train" else (x[256:], y[256:], "planted")
trained = []
original = zoo._train_and_record
def spy(*a, **k):
    trained.append(time.time())
    time.sleep(2.0)                 # hold the lock long enough for the other process to queue on it
    return original(*a, **k)
zoo._train_and_record = spy
folder.mkdir(exist_ok=True)
(folder / f"ready-{me}").touch()    # a barrier: both processes ask at the same moment
while len(list(folder.glob("ready-*"))) < 2:
    time.sleep(0.01)
t = time.time()
model = zoo.get_model("standard", "smoke", "cpu")
digest = hashlib.sha256(b"".join(v.cpu().numpy().tobytes() for v in model.state_dict().values())).hexdigest()
print(json.dumps({"trained": len(trained), "digest": digest, "waited": time.time() - t}))
'''


def test_two_processes_asking_for_one_model_train_it_once(tmp_path):
    """The zoo's file lock: one process trains, the other waits and loads the same weights."""
    import subprocess
    import sys
    script = tmp_path / "worker.py"
    script.write_text(ZOO_WORKER)
    procs = [subprocess.Popen([sys.executable, str(script), str(tmp_path / "models"), str(i)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
    outs = []
    for p in procs:
        out, err = p.communicate(timeout=300)
        assert p.returncode == 0, err[-2000:]
        outs.append(json.loads(out.strip().splitlines()[-1]))
    assert sorted(o["trained"] for o in outs) == [0, 1], outs
    assert outs[0]["digest"] == outs[1]["digest"]
    loader = next(o for o in outs if o["trained"] == 0)
    assert loader["waited"] > 1.5, "the loading process did not wait for the training one"
    assert len(list((tmp_path / "models").glob("*.pt"))) == 1


@pytest.fixture(scope="module")
def slurm():
    """A private single-node Slurm (tests/slurm_cluster.py); fails on CI if it cannot start."""
    try:
        cluster = slurm_cluster.start()
    except slurm_cluster.SlurmUnavailable as exc:
        if os.environ.get("CI"):
            pytest.fail(f"the test Slurm cannot start on CI: {exc}")
        pytest.skip(f"no test Slurm here: {exc}")
    old = os.environ.get("SLURM_CONF")
    os.environ["SLURM_CONF"] = str(cluster.conf)
    yield cluster
    if old is None:
        os.environ.pop("SLURM_CONF", None)
    else:
        os.environ["SLURM_CONF"] = old
    slurm_cluster.stop(cluster)


def test_slurm_sweep_end_to_end(slurm, sweeps, claim_nb):
    """Bad options are refused by sbatch in one line; a real chapter (the primer) is submitted
    without waiting and collected later, while a 2-task array of the claim notebook runs."""
    with pytest.raises(ParameterError, match="Slurm refused the sweep's job array: .*partition"):
        sweep.run_sweep([str(claim_nb)], ["smoke"], [0], device="cpu", cluster="slurm",
                        options={"partition": "nosuchpartition"}, log=lambda *a: None)
    primer = sweep.run_sweep(["00"], ["smoke"], [1], device="cpu", cluster="slurm", options={"time": 10},
                             wait=False, log=lambda *a: None)
    assert primer["submitted"] == 1
    logs = []
    summary = sweep.run_sweep([str(claim_nb)], ["smoke"], [0, 1], device="cpu", cluster="slurm",
                              options={"time": 10}, log=logs.append)
    assert any("submitted Slurm job array" in line for line in logs), logs
    assert summary["ok"] == 2 and not summary["failures"], summary["failures"]
    (group,) = summary["groups"]
    assert group["claims"][0]["seeds"] == [0, 1]
    # each job really ran under Slurm: submitit's log folder is named after the array task
    logs_dir = sweeps / summary["id"] / "submitit"
    tasks = sorted(p.name.split("_")[1] for p in logs_dir.iterdir() if re.fullmatch(r"\d+_\d+", p.name))
    assert tasks == ["0", "1"]
    nb = next((sweeps / summary["id"] / "jobs").glob("*seed1*/*.ipynb"))
    assert nbformat.read(nb, as_version=4).metadata["freqlib"]["parameters"]["seed"] == 1

    jobs = json.loads((sweeps / primer["id"] / "sweep.json").read_text())["jobs"]
    deadline = time.time() + 240
    while sweep.job_states(sweeps / primer["id"], jobs)[jobs[0]["key"]][0] == "missing":
        assert time.time() < deadline, "the primer's Slurm job did not finish in 4 minutes"
        time.sleep(1)
    collected = sweep.collect(primer["id"], log=lambda *a: None)
    assert collected["ok"] == 1, collected["failures"]
    result = json.loads(next((sweeps / primer["id"] / "jobs").glob("*/result.json")).read_text())
    assert result["chapter"] == "00_primer" and result["run_card"]["profile"] == "smoke"
    assert 1.0 < result["glued"]["power_alpha"] < 4.0
