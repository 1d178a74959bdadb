"""paper-run: time-boxed, resumable calls that end with the same outputs as one uninterrupted run.

A tiny book (two chapters at the smoke profile, real zoo training, real papermill
execution) runs once without a deadline and once in calls with a deadline, each
call on a fresh zoo folder (a machine wiped between calls) and a carry limit that
holds one model. The clock is a fake that advances by a fixed cost per step, so
where a call stops does not depend on this machine's speed.
"""
import json
import os
from pathlib import Path

import nbformat
import pytest
import torch

from freqlib import carry, paper_plan, paper_run, runner, zoo
from freqlib.notebooks import read_glue, run_card
from freqlib.paper_plan import MARGIN_S, ModelSpec
from freqlib.paper_run import PaperRun

REPO = Path(__file__).resolve().parents[1]
T_TRAIN, T_CHAPTER = 10.0, 30.0
TINY = {"n_train": 512, "epochs": 1, "widths": [4, 8, 8]}   # zoo models a loaded 2-core CPU trains in seconds
PLANNED = {"epoch": {"fastnet": 0.0, "airbench": 0.0, "resnet18": 0.0},
           "eval": {"fastnet": T_TRAIN, "airbench": T_TRAIN, "resnet18": T_TRAIN},
           "chapter": {"": T_CHAPTER}, "setup": 0}

CHAPTER = '''
from freqlib.chapter import setup_chapter, glue
from freqlib.evaluate import accuracy
ctx = setup_chapter(profile, device, seed)
x, y = ctx.test_set(200)
for name, kw in {models}:
    m = ctx.model(name, **kw, **{tiny})
    glue("acc_" + name + "_" + str(kw.get("seed", 0)), round(accuracy(m, x, y), 6))
    glue("logits_" + name + "_" + str(kw.get("seed", 0)), round(float(m(x[:16]).detach().sum()), 4))
'''


def make_book(root: Path, chapters: dict[str, str]) -> None:
    (root / "chapters").mkdir(parents=True)
    (root / "freqlib").symlink_to(REPO / "freqlib")
    toc = "format: jb-book\nroot: intro\nchapters:\n" + "".join(f"- file: chapters/{s}\n" for s in chapters)
    (root / "_toc.yml").write_text(toc)
    for stem, code in chapters.items():
        nb = nbformat.v4.new_notebook()
        nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
        params = nbformat.v4.new_code_cell('profile = "auto"\ndevice = "auto"\nseed = 0')
        params.metadata["tags"] = ["parameters"]
        nb.cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), params, nbformat.v4.new_code_cell(code)]
        nbformat.write(nb, root / "chapters" / f"{stem}.ipynb")


def use_book(root: Path, monkeypatch) -> None:
    """Make ``root`` the repository (FREQLIB_ROOT), keeping the data where it is."""
    from freqlib.data import head_path, mirror_path
    monkeypatch.setenv("FREQLIB_CIFAR10_MIRROR", str(mirror_path()))
    monkeypatch.setenv("FREQLIB_CIFAR10_LOSSLESS_HEAD", str(head_path()))
    monkeypatch.setenv("FREQLIB_ROOT", str(root))


class FakeClock:
    def __init__(self):
        self.now = 1_000_000.0

    def __call__(self):
        return self.now


@pytest.fixture
def book(tmp_path, monkeypatch):
    """A two-chapter book; chapter B also trains a model that is not in the plan."""
    root = tmp_path / "book"
    make_book(root, {
        "10_a": CHAPTER.format(models=[("standard", {}), ("gaussian", {})], tiny=TINY),
        "11_b": CHAPTER.format(models=[("standard", {}), ("gaussian", {}), ("standard", {"seed": 1}),
                                       ("gaussian", {"seed": 1})], tiny=TINY),
    })
    use_book(root, monkeypatch)
    monkeypatch.setenv("FREQLIB_THREADS", "2")
    clock = FakeClock()
    real_get, real_exec = zoo.get_model, runner.execute_chapter

    def get_model(*a, **k):               # a step costs its planned time on the fake clock
        model = real_get(*a, **k)
        clock.now += T_TRAIN
        return model

    def execute_chapter(*a, **k):
        out = real_exec(*a, **k)
        clock.now += T_CHAPTER
        return out
    monkeypatch.setattr(zoo, "get_model", get_model)
    monkeypatch.setattr(runner, "execute_chapter", execute_chapter)
    plan = {"10": [ModelSpec.make("standard", **TINY), ModelSpec.make("gaussian", **TINY)],
            "11": [ModelSpec.make("standard", **TINY), ModelSpec.make("gaussian", **TINY),
                   ModelSpec.make("standard", seed=1, **TINY)]}
    return root, clock, plan


def fresh_machine(tmp_path, monkeypatch, name: str) -> Path:
    """A new FREQLIB_DATA (empty zoo: the machine is wiped); the decoded data cache is shared."""
    data = tmp_path / name
    data.mkdir()
    source = Path(os.environ.get("FREQLIB_DATA", REPO / "data")) / "cache"
    if source.is_dir():
        (data / "cache").symlink_to(source)
    monkeypatch.setenv("FREQLIB_DATA", str(data))
    return data


def outputs(out: Path) -> dict:
    glued = {nb.stem: {k: v for k, v in read_glue(nb).items()}
             for nb in sorted((out / "executed").rglob("*.ipynb"))}
    state = json.loads((out / "state.json").read_text())
    prints = {e["stem"]: e["fingerprint"] for e in state["models"].values()}
    return {"glued": glued, "fingerprints": prints}


def test_interrupted_run_resumes_to_the_same_outputs(book, tmp_path, monkeypatch):
    root, clock, plan = book
    kw = dict(profile="smoke", device="cpu", plan=plan, planned=PLANNED, clock=clock, log=lambda *a: None)

    # one uninterrupted call
    fresh_machine(tmp_path, monkeypatch, "data-whole")
    whole = PaperRun(tmp_path / "whole", carry_mb=100, **kw)
    assert whole.run() == 0
    expected = outputs(tmp_path / "whole")

    # the same in calls: a deadline that fits chapter A and its two models (2 x 10 + 30 s, x 1.2 + 20 s
    # margin); the carry keeps one of them, so call 2 restores one and retrains the other for chapter B
    assert list((tmp_path / "whole" / "zoo").glob("*.pt")) == []       # nothing left to carry when done
    size = max(e["mb"] for e in json.loads((tmp_path / "whole" / "state.json").read_text())["models"].values())
    out = tmp_path / "calls"
    codes = []
    for call in range(4):
        fresh_machine(tmp_path, monkeypatch, f"data-call{call}")
        run = PaperRun(out, carry_mb=1.5 * size, deadline=clock.now + 85, **kw)
        codes.append(run.run())
        if codes[-1] == 0:
            break
        assert len(list((out / "zoo").glob("*.pt"))) <= 1       # the carry limit holds one model
    assert codes[0] == 3 and codes[-1] == 0 and len(codes) >= 2
    state = json.loads((out / "state.json").read_text())
    assert state["calls"][0]["left"] and "11_b" in state["calls"][0]["left"][0]
    assert any("trained gaussian seed 0" in d or "trained standard seed 0" in d for d in state["calls"][1]["did"])
    assert state["chapters"]["10_a"]["call"] == 1 and state["chapters"]["11_b"]["call"] >= 2
    # chapter B trained (gaussian, seed 1) itself: learned for later calls
    assert any(name == "gaussian" and '"seed": 1' in o for name, o in state["learned"]["11_b"])
    got = outputs(out)
    assert got["glued"] == expected["glued"]
    assert got["fingerprints"] == expected["fingerprints"]
    card = run_card(out / "executed" / "chapters" / "11_b.ipynb")
    assert card["device name"].startswith("CPU") and card["training seeds"] == "0"
    text = nbformat.read(out / "executed" / "chapters" / "11_b.ipynb", as_version=4).cells[1].source
    assert "| device name |" in text and "| training seeds | 0 |" in text


def test_carried_checkpoints_are_bf16_and_restore_exactly(book, tmp_path, monkeypatch):
    root, clock, plan = book
    fresh_machine(tmp_path, monkeypatch, "d1")
    run = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={"10": plan["10"][:1]},
                   chapters=["10"], planned=PLANNED, clock=clock, log=lambda *a: None)
    run.train(plan["10"][0])
    stem = run.stem_of(plan["10"][0])
    carried = torch.load(tmp_path / "run" / "zoo" / f"{stem}.pt", weights_only=True)
    kept = torch.load(zoo.zoo_dir() / f"{stem}.pt", weights_only=True)
    for k, v in carried["state_dict"].items():
        if v.is_floating_point() and v.ndim >= 2:
            assert v.dtype == torch.bfloat16 and torch.equal(v.float(), kept["state_dict"][k])
        else:
            assert v.dtype != torch.bfloat16 and torch.equal(v, kept["state_dict"][k])
    fresh_machine(tmp_path, monkeypatch, "d2")
    assert run.restore() == 1
    restored = torch.load(zoo.zoo_dir() / f"{stem}.pt", weights_only=True)
    assert carry.canonical_fingerprint(restored["state_dict"]) == \
        carry.canonical_fingerprint(kept["state_dict"])
    assert run.in_zoo(plan["10"][0])


def test_a_step_that_cannot_finish_is_not_started(book, tmp_path, monkeypatch):
    root, clock, _ = book
    fresh_machine(tmp_path, monkeypatch, "d")
    started = []

    def execute(path, params, out_dir, **k):            # a chapter that takes its planned time
        target = out_dir / "chapters" / path.name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
        started.append(path.stem)
        clock.now += T_CHAPTER
        return target
    monkeypatch.setattr(runner, "execute_chapter", execute)
    quiet = dict(profile="smoke", device="cpu", planned=PLANNED, clock=clock, chapters=["10"], log=lambda *a: None)
    with monkeypatch.context() as m:                   # its model is missing and cannot be carried
        m.setattr(PaperRun, "in_zoo", lambda self, spec: False)
        run = PaperRun(tmp_path / "run", plan={"10": [ModelSpec.make("standard", **TINY)]}, carry_mb=0,
                       deadline=clock.now + 50, **quiet)          # (10 + 30 s) x 1.2 + 20 s margin > 50 s
        assert run.run() == 3 and started == []
    assert "10_a" in run.left[0][0] and "more than a whole call" in run.left[0][1]
    assert "Left for the next call" in (tmp_path / "run" / "status.md").read_text()
    # its models ready but the chapter alone over a whole call, and nothing else to do:
    # it starts once (estimates are uncertain), and not a second time without --force-next
    run = PaperRun(tmp_path / "run", plan={}, deadline=clock.now + 50, **quiet)
    assert run.run() == 0 and started == ["10_a"]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    state["chapters"]["10_a"]["status"] = "pending"
    (tmp_path / "run" / "state.json").write_text(json.dumps(state))
    run = PaperRun(tmp_path / "run", plan={}, deadline=clock.now + 50, **quiet)
    assert run.run() == 3 and started == ["10_a"]
    # with enough time, the first chapter starts and the second waits
    run = PaperRun(tmp_path / "run2", plan={}, deadline=clock.now + 57, **dict(quiet, chapters=None))
    assert run.run() == 3 and started == ["10_a", "10_a"]


def test_a_call_killed_inside_a_chapter_raises_its_estimate(book, tmp_path, monkeypatch):
    root, clock, _ = book
    fresh_machine(tmp_path, monkeypatch, "d")
    out = tmp_path / "run"
    out.mkdir()
    (out / "state.json").write_text(json.dumps({"profile": "smoke", "chapters": {
        "10_a": {"status": "running", "estimate": 30.0, "started": 1.0}}}))
    run = PaperRun(out, profile="smoke", device="cpu", plan={}, planned=PLANNED, clock=clock, chapters=["10"],
                   deadline=clock.now + 70, log=lambda *a: None)
    monkeypatch.setattr(runner, "execute_chapter", lambda *a, **k: pytest.fail("must not start"))
    assert run.run() == 3                      # 45 s x 1.2 + 20 s > 70 s: not started this time
    state = json.loads((out / "state.json").read_text())
    assert state["chapters"]["10_a"]["killed"] == 1 and run.estimate_chapter("10_a") == pytest.approx(45.0)


def test_a_failing_chapter_is_recorded_and_not_retried(tmp_path, monkeypatch):
    root = tmp_path / "book"
    make_book(root, {"10_bad": "raise RuntimeError('planted failure')", "11_ok": "x = 1"})
    use_book(root, monkeypatch)
    fresh_machine(tmp_path, monkeypatch, "d")
    run = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={}, log=lambda *a: None)
    assert run.run() == 1
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["chapters"]["10_bad"]["status"] == "failed" and "planted failure" in state["chapters"]["10_bad"]["error"]
    assert state["chapters"]["11_ok"]["status"] == "done"
    again = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={}, log=lambda *a: None)
    assert again.pending() == [] and [p.stem for p in again.pending(failed=True)] == ["10_bad"]


def test_a_chapter_done_with_other_parameters_runs_again(tmp_path, monkeypatch):
    """A short session's ``-p seed=1`` run must not stand in for a later run with other parameters."""
    root = tmp_path / "book"
    make_book(root, {"10_a": "glue_seed = seed", "11_b": "x = 1"})
    use_book(root, monkeypatch)
    fresh_machine(tmp_path, monkeypatch, "d")
    messages = []
    kw = dict(profile="smoke", device="cpu", plan={}, log=messages.append)
    injected = lambda: "".join(c.source for c in nbformat.read(tmp_path / "run" / "executed" / "chapters" / "10_a.ipynb",
                                                               as_version=4).cells
                               if "injected-parameters" in c.metadata.get("tags", []))
    assert PaperRun(tmp_path / "run", params={"seed": 1}, **kw).run() == 0 and "seed = 1" in injected()
    assert PaperRun(tmp_path / "run", params={"seed": 1}, **kw).run() == 0 and not any("again" in m for m in messages)
    assert PaperRun(tmp_path / "run", **kw).run() == 0                 # default parameters: both run again
    assert sum("runs again" in m for m in messages) == 2 and "seed = 1" not in injected()
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert {e["status"] for e in state["chapters"].values()} == {"done"}
    assert all(e["params"] == {} for e in state["chapters"].values())


def test_stderr_on_a_page_is_reported_and_rerun_executes_the_fixed_chapter(tmp_path, monkeypatch):
    """A warning the GPU run prints lands on the reader's page: the status names it at once,
    and ``--rerun`` executes the chapter again after the fix (a done chapter otherwise stays)."""
    root = tmp_path / "book"
    noisy = "import warnings\nwarnings.warn('planted warning')"
    make_book(root, {"10_a": noisy, "11_b": "import sys\nprint('progress 50%|#####', file=sys.stderr)"})
    use_book(root, monkeypatch)
    fresh_machine(tmp_path, monkeypatch, "d")
    kw = dict(profile="smoke", device="cpu", plan={}, log=lambda *a: None)
    assert PaperRun(tmp_path / "run", **kw).run() == 0
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert len(state["chapters"]["10_a"]["stderr"]) == 1 and "planted warning" in state["chapters"]["10_a"]["stderr"][0]
    assert state["chapters"]["11_b"]["stderr"] == []               # a progress bar is not a warning
    status = (tmp_path / "run" / "status.md").read_text()
    assert "planted warning" in status and "--rerun 10" in status
    with pytest.raises(ValueError, match="--rerun 12: no chapter"):
        PaperRun(tmp_path / "run", rerun=["12"], **kw).run()
    nb = nbformat.read(root / "chapters" / "10_a.ipynb", as_version=4)
    nb.cells[2].source = "x = 1"                                     # the fix
    nbformat.write(nb, root / "chapters" / "10_a.ipynb")
    assert PaperRun(tmp_path / "run", **kw).run() == 0               # done stays done
    assert json.loads((tmp_path / "run" / "state.json").read_text())["chapters"]["10_a"]["stderr"]
    assert PaperRun(tmp_path / "run", rerun=["10"], **kw).run() == 0
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["chapters"]["10_a"]["status"] == "done" and state["chapters"]["10_a"]["stderr"] == []
    assert "Stderr" not in (tmp_path / "run" / "status.md").read_text()


def test_parameters_reach_the_chapters_that_declare_them(tmp_path, monkeypatch):
    """``-p seeds=1`` goes to the chapters with a ``seeds`` parameter only; one that no chapter
    declares, or of the wrong type, stops the call before anything runs."""
    from freqlib.runner import ParameterError
    root = tmp_path / "book"
    make_book(root, {"10_a": "x = 1", "11_b": "x = 2"})
    nb = nbformat.read(root / "chapters" / "11_b.ipynb", as_version=4)
    nb.cells[1].source += "\nseeds = 0"
    nbformat.write(nb, root / "chapters" / "11_b.ipynb")
    use_book(root, monkeypatch)
    fresh_machine(tmp_path, monkeypatch, "d")
    kw = dict(profile="smoke", device="cpu", plan={}, log=lambda *a: None)
    run = PaperRun(tmp_path / "run", params={"seeds": 1}, **kw)
    assert [run.params_for(p) for p in run.chapter_paths()] == [{}, {"seeds": 1}]
    assert run.run() == 0
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert state["chapters"]["10_a"]["params"] == {} and state["chapters"]["11_b"]["params"] == {"seeds": 1}
    for bad, match in (({"sedes": 1}, "declared by no chapter"), ({"seeds": "one"}, "must be int")):
        with pytest.raises(ParameterError, match=match):
            PaperRun(tmp_path / "bad", params=bad, **kw).run()
        assert not (tmp_path / "bad" / "state.json").exists()


def test_a_model_that_fails_to_train_is_not_trained_again(book, tmp_path, monkeypatch):
    root, clock, _ = book
    fresh_machine(tmp_path, monkeypatch, "d")
    attempts = []

    def broken(name, *a, **k):
        attempts.append(name)
        raise RuntimeError("planted training failure")
    monkeypatch.setattr(zoo, "get_model", broken)
    monkeypatch.setattr(runner, "execute_chapter", lambda *a, **k: pytest.fail("must not execute"))
    spec = ModelSpec.make("l2_at", **TINY)
    run = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={"10": [spec], "11": [spec]},
                   planned=PLANNED, clock=clock, log=lambda *a: None)
    assert run.run() == 1 and attempts == ["l2_at"]
    state = json.loads((tmp_path / "run" / "state.json").read_text())
    assert {s: e["status"] for s, e in state["chapters"].items()} == {"10_a": "failed", "11_b": "failed"}
    assert "planted training failure" in state["chapters"]["11_b"]["error"]
    assert "not retried" in (tmp_path / "run" / "status.md").read_text()
    again = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={"10": [spec], "11": [spec]},
                     planned=PLANNED, clock=clock, retry_failed=True, log=lambda *a: None)
    assert again.run() == 1 and attempts == ["l2_at", "l2_at"]      # retried once, on request


def test_models_a_chapter_trained_itself_are_recognised(tmp_path, monkeypatch):
    """A zoo record turns back into the (name, overrides) that reproduce its key, also for
    chapter 2's ResNet-18 models with constrained stems; a record of changed code does not."""
    from freqlib.data import available_variant
    fresh_machine(tmp_path, monkeypatch, "d")
    run = PaperRun(tmp_path / "run", profile="paper", device="cpu", plan={}, log=lambda *a: None)
    for spec in paper_plan.default_plan("paper")["02"][::4]:
        key, cfg = zoo.model_key(spec.name, "paper", available_variant(), **spec.kwargs)
        found = run.spec_from_record({"name": spec.name, "key": key, "config": cfg})
        assert found is not None and run.key_of(found)[0] == key
    assert run.spec_from_record({"name": "standard", "key": "0" * 16,
                                 "config": zoo.model_key("standard", "paper", "x")[1]}) is None


def test_a_by_reference_model_the_chapter_trained_is_not_planned_up_front(tmp_path, monkeypatch):
    """Chapter 2 trains its ResNet-18 itself, by design: its records must not be learned as
    unplanned models (which later calls would train up front, 9 ResNet-18 on every fresh
    machine), although a spec rebuilt from a record spells its overrides differently."""
    from freqlib.data import available_variant
    fresh_machine(tmp_path, monkeypatch, "d")
    run = PaperRun(tmp_path / "run", profile="paper", device="cpu", log=lambda *a: None)
    zoo_folder = zoo.zoo_dir()
    zoo_folder.mkdir(parents=True, exist_ok=True)
    for spec in [s for s in paper_plan.default_plan("paper")["02"] if s.by_ref][::3]:
        key, cfg = zoo.model_key(spec.name, "paper", available_variant(), **spec.kwargs)
        stem = f"{spec.name}-paper-{key}"
        (zoo_folder / f"{stem}.json").write_text(json.dumps({"name": spec.name, "key": key, "config": cfg,
                                                             "profile": "paper"}))
        (zoo_folder / f"{stem}.pt").write_bytes(b"")
        assert cfg["arch"] == "resnet18" and run.spec_from_record(
            {"name": spec.name, "key": key, "config": cfg}).overrides != spec.overrides   # what fooled the old check
    run._learn_unplanned("02_filter_proportion", before=set())
    assert run.state["learned"].get("02_filter_proportion", []) == []


RESUMABLE_CHAPTER = '''
import time, torch
from freqlib import results
from freqlib.chapter import setup_chapter, glue
ctx = setup_chapter(profile, device, seed)
vals = []
for i in range(5):
    def work(i=i):
        time.sleep(3.0)                       # a result that takes a while (a model scored on CIFAR-10-C)
        return {"v": torch.tensor([float(i * i)]), "stamp": torch.tensor([time.time()], dtype=torch.float64)}
    vals.append(results.cached(f"item{i}", {"i": i}, work))
glue("total", sum(v["v"].item() for v in vals))
glue("stamps", [v["stamp"].item() for v in vals])
'''


def test_a_resumable_chapter_stops_between_results_and_the_next_call_goes_on(tmp_path, monkeypatch):
    """A chapter of five slow cached results, in a call whose time is up after a few:
    it stops cleanly (OutOfTime), the finished results travel in the carry, and the
    next call, on a wiped machine, reads them back (same time stamps: not recomputed)
    and finishes with the total an uninterrupted run computes (0 + 1 + 4 + 9 + 16)."""
    import time as clock_module
    root = tmp_path / "book"
    make_book(root, {"12_r": RESUMABLE_CHAPTER})
    use_book(root, monkeypatch)
    monkeypatch.setattr(paper_run, "RESUMABLE", ("12",))
    planned = dict(PLANNED, item=1.0)
    kw = dict(profile="smoke", device="cpu", plan={}, planned=planned, log=lambda *a: None)

    out = tmp_path / "calls"
    fresh_machine(tmp_path, monkeypatch, "call0")
    # no new result starts later than 12 s after the call starts (margin 20 s and one 1.2-s step before the
    # deadline): the kernel starts in a few seconds, the five results need 15 s more, so the stop falls
    # inside them even on a slow machine
    first = PaperRun(out, deadline=clock_module.time() + MARGIN_S + 1.2 + 12, **kw)
    assert first.run() == 3
    entry = json.loads((out / "state.json").read_text())["chapters"]["12_r"]
    carried = sorted(p.name for p in (out / "results").glob("*.pt"))
    assert entry["status"] == "partial" and 1 <= entry["results"] == len(carried) < 5, entry
    assert not (out / "executed" / "chapters" / "12_r.ipynb").exists()
    stamps = {p.name.split("-")[0]: torch.load(p, weights_only=False)["result"]["stamp"].item()
              for p in (out / "results").glob("*.pt")}

    fresh_machine(tmp_path, monkeypatch, "call1")                   # wiped: only the carry survives
    second = PaperRun(out, **kw)
    assert second.run() == 0
    got = read_glue(out / "executed" / "chapters" / "12_r.ipynb")
    assert got["total"] == sum(i * i for i in range(5))
    for name, stamp in stamps.items():                               # read back, not computed again
        assert got["stamps"][int(name[4:])] == stamp
    state = json.loads((out / "state.json").read_text())
    assert state["chapters"]["12_r"]["status"] == "done" and state["chapters"]["12_r"]["total_s"] > entry["spent_s"]
    assert "over calls" in (out / "status.md").read_text()


def test_a_resumable_chapter_that_makes_no_progress_gets_longer_steps(tmp_path, monkeypatch):
    """A stalled or killed resumable chapter asks for 1.5 times more room per call, so it
    cannot be started again and again with too little time; other chapters are not resumable."""
    fresh_machine(tmp_path, monkeypatch, "d")
    run = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={}, planned=dict(PLANNED, item=10.0),
                   log=lambda *a: None)
    assert run.resumable("02_filter_proportion") and not run.resumable("01_high_frequency_reliance")
    assert run.largest_step("02_filter_proportion") == 10.0
    run.state["chapters"]["02_filter_proportion"] = {"stalled": 1, "killed": 1}
    assert run.largest_step("02_filter_proportion") == pytest.approx(22.5)
    assert run._soft_deadline("02_filter_proportion") is None                 # no deadline: nothing stops
    run.deadline = run.clock() + 100
    soft = run._soft_deadline("02_filter_proportion")
    assert soft == pytest.approx(__import__("time").time() + 100 - MARGIN_S - 1.2 * 22.5, abs=1)
    assert run._soft_deadline("01_high_frequency_reliance") is None


def test_compile_reaches_this_process_s_trainings_only(book, tmp_path, monkeypatch):
    """--compile sets FREQLIB_COMPILE around paper-run's own zoo trainings; chapter kernels
    started later do not inherit it (they would recompile per model, mode and batch size)."""
    root, clock, _ = book
    fresh_machine(tmp_path, monkeypatch, "d")
    monkeypatch.delenv("FREQLIB_COMPILE", raising=False)
    seen = []

    def broken(name, *a, **k):
        seen.append(os.environ.get("FREQLIB_COMPILE"))
        raise RuntimeError("planted training failure")
    monkeypatch.setattr(zoo, "get_model", broken)
    spec = ModelSpec.make("standard", **TINY)
    run = PaperRun(tmp_path / "run", profile="smoke", device="cpu", plan={"10": [spec], "11": [spec]},
                   planned=PLANNED, clock=clock, compile=True, log=lambda *a: None)
    run.run()
    assert seen == ["1"] and "FREQLIB_COMPILE" not in os.environ


@pytest.mark.parametrize("argv, says", [
    (["--budget-s", "0"], "--budget-s: must be a number of seconds > 0, got 0"),     # 0 read as no budget
    (["--budget-s", "-5"], "--budget-s: must be a number of seconds > 0, got -5"),
    (["--budget-s", "abc"], "--budget-s: must be a number, got 'abc'"),
    (["--carry-mb", "-1"], "--carry-mb: must be a number of MiB >= 0, got -1"),
])
def test_a_budget_that_is_no_budget_is_refused_in_one_line(tmp_path, capsys, argv, says):
    from freqlib.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["paper-run", "--out", str(tmp_path / "run"), *argv])
    assert exit_.value.code == 2 and says in capsys.readouterr().err.splitlines()[-1]
    assert not (tmp_path / "run").exists()                    # refused before anything is written


def test_a_deadline_already_past_is_refused_before_anything_is_written(tmp_path):
    from freqlib.__main__ import main
    with pytest.raises(SystemExit, match=r"^error: the call's deadline passed \d+ s ago"):
        main(["paper-run", "--out", str(tmp_path / "run"), "--deadline", "5"])
    assert not (tmp_path / "run").exists()
    # a valid budget passes the check (a plan only, so nothing runs)
    assert main(["paper-run", "--out", str(tmp_path / "run"), "--budget-s", "540", "--plan"]) == 0
