"""The paper run's plan and estimates: which models each chapter needs, what a step costs."""
import pytest

from freqlib import paper_plan
from freqlib.paper_run import PaperRun


def test_estimates_learn_from_finished_steps():
    est = paper_plan.Estimator("cuda")
    assert est.factor("chapter") == 1.0
    est.record("train", planned=10, actual=30)
    est.record("train", planned=10, actual=20)
    assert est.factor("train") == pytest.approx(2.5) and est.factor("chapter") == pytest.approx(2.5)
    est.record("chapter", planned=100, actual=50)
    assert est.factor("chapter") == pytest.approx(0.5)
    cfg = {"arch": "airbench", "perturbation": "fgsm_linf", "epochs": 30, "n_train": 50_000}
    assert est.planned_train(cfg) == pytest.approx(0.45 * 30 * 2.3 + 3.0 * 3)


def test_plan_table_counts_models_and_sizes():
    text = paper_plan.plan_table("paper", "cuda")
    rows = {line.split("|")[1].strip(): line for line in text.splitlines() if line.startswith("| 0")}
    from freqlib.runner import chapters_in_toc
    assert set(rows) == {p.stem[:2] for p in chapters_in_toc()}   # every chapter of the book is planned
    assert "| 01 | 11 |" in rows["01"]                  # 4 recipes x 3 seeds, standard seed 0 already planned
    # 3 planted + 2 shortcut + D4's AT x 3 seeds; D4's ST, 2 curve ATs and 4 shorter-budget STs once
    assert "| 06 | 25 |" in rows["06"]
    # chapter 2 reads its nine ResNet-18 (one seed at paper) by reference and is resumable: its longest
    # step is one model's training plus one result, which fits a call; no step of the book is over one call
    assert "| 02 | 9 (9 by reference) |" in rows["02"] and "(resumable)" in rows["02"]
    assert "⚠" not in text
    short = paper_plan.plan_table("paper", "cuda", call_s=150)        # the flag can fail: a shorter call
    flagged = [ln.split("|")[1].strip() for ln in short.splitlines() if "⚠" in ln and ln.startswith("| 0")]
    assert "02" in flagged and "00" not in flagged and "longer than one 150-s call" in short
    assert "3.8 (1 models)" in rows["00"]                # airbench94 in bf16
    assert "Total planned" in text


def test_the_plan_trains_the_seeds_the_chapters_will_read(tmp_path):
    """``-p seeds=1`` (or ``seed=1``) reaches the plan: no model is trained up front for a seed no
    chapter reads, and chapters that load seed 0 only keep it."""
    seeds_of = lambda specs: sorted({s.kwargs.get("seed", 0) for s in specs})
    full, one, shifted = (paper_plan.default_plan("paper", **kw) for kw in ({}, {"seeds": 1}, {"seed": 1, "seeds": 1}))
    assert seeds_of(full["01"]) == [0, 1, 2] and seeds_of(one["01"]) == [0] and seeds_of(shifted["01"]) == [1]
    assert seeds_of(shifted["03"]) == [1] and seeds_of(shifted["06"]) == [1]
    assert seeds_of(full["04"]) == [0, 1, 2] and seeds_of(shifted["04"]) == [1]
    for stem in ("00", "05"):
        assert seeds_of(shifted[stem]) == [0]
    assert seeds_of(paper_plan.default_plan("paper", seeds=2)["02"]) == [0, 1]      # ResNet-18: more when asked
    assert len(one["01"]) == 4 and len(full["01"]) == 12
    assert "| 01 | 3 |" in paper_plan.plan_table("paper", "cuda", params={"seeds": 1})
    assert PaperRun(tmp_path / "run", profile="paper", device="cpu", params={"seeds": 1},
                    log=lambda *a: None).plan == one
    for bad in ({"seeds": -1}, {"seed": 0.5}, {"seeds": True}):
        with pytest.raises(ValueError, match="whole number"):
            paper_plan.default_plan("paper", **bad)


def test_min_call_seconds_trains_in_the_call_what_the_carry_cannot_hold():
    assert paper_plan.min_call_seconds([(60, 10), (60, 10)], 100, carry_mb=24) == 100      # both carried
    # 3 x 10 MB, 24 MB carry: the model cheapest to retrain per MB is trained in the call
    assert paper_plan.min_call_seconds([(60, 10), (20, 10), (90, 10)], 100, carry_mb=24) == 120
    assert paper_plan.min_call_seconds([(64, 22)] * 9, 240, carry_mb=24) == 240 + 8 * 64   # chapter 2, one seed


def test_planned_training_counts_the_recipes_attack_passes():
    """PGD-k costs k + 1 passes a batch (profiles.passes_per_batch, the rule chapter 3's cost remark uses)."""
    from freqlib.paper_plan import PLANNED, ROBUST_EVAL, Estimator
    from freqlib.profiles import passes_per_batch, training_passes
    est = Estimator("cpu")
    cfg = lambda pert, steps=7: {"arch": "fastnet", "perturbation": pert, "attack_steps": steps, "epochs": 1,
                                 "n_train": 50_000}
    epoch, evaluation = PLANNED["cpu"]["epoch"]["fastnet"], PLANNED["cpu"]["eval"]["fastnet"]
    assert est.planned_train(cfg("pgd_linf", 10)) == pytest.approx(epoch * 11 + evaluation * ROBUST_EVAL)
    assert est.planned_train(cfg("none")) == pytest.approx(epoch + evaluation)
    assert [passes_per_batch(p, 10) for p in ("none", "fgsm_linf", "pgd_linf")] == [1, 2, 11]
    assert training_passes("linf_pgd_c") == 11
