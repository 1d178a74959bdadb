"""The papermill runner: parameter checks, failures, skipping, run cards."""
import nbformat
import pytest

from freqlib import runner
from freqlib.notebooks import read_glue
from freqlib.__main__ import main


def make_notebook(path, body: str, params: str = 'profile = "auto"\ndevice = "auto"\nseed = 0\nn_images = 10\nscale = 0.5\n'):
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A test chapter"),
                nbformat.v4.new_code_cell(params, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell("from freqlib.chapter import glue\nglue('profile', profile)\nglue('variant', 'synthetic')"),
                nbformat.v4.new_code_cell(body)]
    nbformat.write(nb, path)
    return path


def test_unknown_and_mistyped_parameters_are_named(tmp_path):
    nb = make_notebook(tmp_path / "ch.ipynb", "pass")
    with pytest.raises(runner.ParameterError, match="unknown parameter 'n_imgs'; allowed: device, n_images, profile, scale, seed"):
        runner.validate_parameters(nb, {"n_imgs": 5})
    with pytest.raises(runner.ParameterError, match="'n_images' must be int"):
        runner.validate_parameters(nb, {"n_images": "many"})
    with pytest.raises(runner.ParameterError, match="profile='fast' is not one of auto, smoke, quick, paper"):
        runner.validate_parameters(nb, {"profile": "fast"})
    assert runner.validate_parameters(nb, {"scale": 2})["scale"] == 2  # int is fine for a float


def test_cli_bad_parameter_one_line_error(capsys):
    assert main(["run", "00", "-p", "n_imagez=3"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown parameter 'n_imagez'" in err[0]
    assert main(["run", "00", "--profile", "gpu"]) == 2
    assert "profile='gpu'" in capsys.readouterr().err


def test_parse_assignments():
    assert runner.parse_assignments(["a=3", "b=0.5", "c=hello", "d=[1, 2]", "e=True"]) == \
        {"a": 3, "b": 0.5, "c": "hello", "d": [1, 2], "e": True}
    with pytest.raises(runner.ParameterError, match="name=value"):
        runner.parse_assignments(["oops"])


def test_failing_cell_names_chapter_and_cell_and_leaves_nothing(tmp_path):
    nb = make_notebook(tmp_path / "broken.ipynb", "raise ValueError('boom')")
    out = tmp_path / "out"
    with pytest.raises(runner.ChapterFailed, match=r"broken: cell 4 raised ValueError: boom"):
        runner.execute_chapter(nb, {"profile": "smoke"}, out, log=lambda *a: None)
    assert not list(out.rglob("*.ipynb")) and not list(out.rglob("*.part*"))


def test_a_kernel_that_fails_to_start_is_started_again_and_other_errors_are_not(tmp_path, monkeypatch):
    import papermill
    nb = make_notebook(tmp_path / "ok.ipynb", "print(n_images * 2)")
    real, calls = papermill.execute_notebook, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("Kernel died before replying to kernel_info")
        return real(*args, **kwargs)
    monkeypatch.setattr(papermill, "execute_notebook", flaky)
    monkeypatch.setattr(runner.time, "sleep", lambda s: None)
    logs = []
    done = runner.execute_chapter(nb, {"profile": "smoke", "n_images": 21}, tmp_path / "out", log=logs.append)
    assert len(calls) == 2 and any("did not start" in line for line in logs) and done.is_file()

    def raising(message):
        def run(*args, **kwargs):
            calls.append(1)
            raise RuntimeError(message)
        return run
    calls.clear()
    monkeypatch.setattr(papermill, "execute_notebook", raising("Kernel died before replying to kernel_info"))
    with pytest.raises(RuntimeError, match="kernel_info"):
        runner.execute_chapter(nb, {"profile": "smoke", "n_images": 5}, tmp_path / "out2", log=logs.append)
    assert len(calls) == runner.KERNEL_START_TRIES and not list((tmp_path / "out2").rglob("*.ipynb"))

    calls.clear()                       # any other error is the chapter's and is not retried
    monkeypatch.setattr(papermill, "execute_notebook", raising("CUDA out of memory"))
    with pytest.raises(RuntimeError, match="out of memory"):
        runner.execute_chapter(nb, {"profile": "smoke", "n_images": 6}, tmp_path / "out3", log=logs.append)
    assert len(calls) == 1


def test_run_card_and_skip_when_unchanged(tmp_path):
    nb = make_notebook(tmp_path / "ok.ipynb", "print(n_images * 2)")
    out, logs = tmp_path / "out", []
    done = runner.execute_chapter(nb, {"profile": "smoke", "n_images": 21}, out, log=logs.append)
    executed = nbformat.read(done, as_version=4)
    card = executed.cells[1]
    assert "run-card" in card.metadata["tags"] and "Run card" in card.source
    assert "| profile | smoke |" in card.source and "| data variant | synthetic |" in card.source
    # the seeds it trained (setup_chapter glues seed and n_seeds; none here: one network, seed 0), and the
    # parameters as code, whose quotes Sphinx would otherwise curl
    assert "| training seeds | 0 |" in card.source and "| parameters | `profile='smoke', device='auto', seed=0, n_images=21, scale=0.5` |" in card.source
    assert runner.training_seeds({"seed": 2, "n_seeds": 3}) == "2, 3, 4"
    assert "42" in executed.cells[-1].outputs[0]["text"]
    assert read_glue(done)["profile"] == "smoke"
    from freqlib.environment import lock_digest, versions
    meta = executed.metadata["freqlib"]
    assert meta["run_card"]["lock"].split()[0] == lock_digest() == meta["environment"]["lock"]
    assert ("differ" in meta["run_card"]["lock"]) == (meta["environment"]["lock_matches"] != "yes")
    assert f"torch {versions()['torch']}, torchvision {versions()['torchvision']}, numpy" in meta["run_card"]["libraries"]
    runner.execute_chapter(nb, {"profile": "smoke", "n_images": 21}, out, log=logs.append)
    assert "skipped" in logs[-1]
    runner.execute_chapter(nb, {"profile": "smoke", "n_images": 22}, out, log=logs.append)
    assert "done" in logs[-1]
    # a 0 that means "the profile's setting" says so; seed=0 is training seed 0 and does not
    zero = runner.execute_chapter(nb, {"profile": "smoke", "n_images": 0}, out, log=logs.append)
    card = nbformat.read(zero, as_version=4).cells[1].source
    assert "n_images=0, scale=0.5` (n_images: 0 or '' means the profile's setting) |" in card


def test_toc_lists_existing_chapters():
    chapters = runner.chapters_in_toc()
    assert chapters and chapters[0].name == "00_primer.ipynb"
    assert runner.resolve_chapter("00") == chapters[0]
    with pytest.raises(runner.ParameterError, match="not found"):
        runner.resolve_chapter("99_nothing")


def test_seed_and_seeds_must_be_non_negative_ints(tmp_path):
    nb = make_notebook(tmp_path / "ch.ipynb", "pass",
                       params='profile = "auto"\ndevice = "auto"\nseed = 0\nseeds = 0\n')
    assert runner.validate_parameters(nb, {"seeds": 3, "seed": 2})["seeds"] == 3
    with pytest.raises(runner.ParameterError, match=r"seeds=-1 must be an int >= 0"):
        runner.validate_parameters(nb, {"seeds": -1})
    with pytest.raises(runner.ParameterError, match=r"seed=-2 must be an int >= 0"):
        runner.validate_parameters(nb, {"seed": -2})
    with pytest.raises(runner.ParameterError, match="'seeds' must be int"):
        runner.validate_parameters(nb, {"seeds": 1.5})
    with pytest.raises(runner.ParameterError, match="unknown parameter 'seeds'"):
        runner.validate_parameters(make_notebook(tmp_path / "primer.ipynb", "pass"), {"seeds": 2})


def test_each_profile_keeps_its_own_executed_copies(monkeypatch):
    """`run 00 --profile smoke` must not replace the quick copy the site is built from."""
    seen = []
    monkeypatch.setattr(runner, "execute_chapter", lambda ch, params, out, force, log: seen.append(out))
    runner.run_chapters(["00"], {"profile": "smoke"})
    runner.run_chapters(["00"], {"profile": "quick", "device": "cpu"})
    root = runner.repo_root()
    assert seen == [root / "_build/executed/smoke", root / "_build/executed/quick"]


@pytest.fixture(scope="module")
def executed_claims(tmp_path_factory):
    """A claim notebook executed once (tests/sweep_notebook.py)."""
    import sweep_notebook
    tmp = tmp_path_factory.mktemp("claims")
    src = sweep_notebook.write(tmp / "a_claims.ipynb")
    return runner.execute_chapter(src, {"profile": "smoke", "device": "cpu"}, tmp / "run", log=lambda *a: None)


def _copy(done, folder, name, profile=None, lock=None):
    nb = nbformat.read(done, as_version=4)
    card = nb.metadata["freqlib"]["run_card"]
    card.update({k: v for k, v in (("profile", profile), ("lock", lock)) if v})
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{name}.ipynb")
    return folder / f"{name}.ipynb"


def test_site_refuses_a_mix_of_profiles_and_ledger_marks_it(tmp_path, executed_claims):
    from freqlib.ledger import collect_claims, collect_deviations, deviations_markdown, ledger_markdown
    from freqlib.environment import lock_digest
    a = _copy(executed_claims, tmp_path / "executed" / "chapters", "a_claims", lock=lock_digest())
    b = _copy(executed_claims, tmp_path / "executed" / "chapters", "b_claims", "quick", "0123456789ab")
    c = _copy(executed_claims, tmp_path / "other", "c_claims", "smoke",
              f"{lock_digest()} (installed libraries differ: torch 9.9 (lock 2.13.0+cpu))")
    with pytest.raises(ValueError, match=r"mixes profiles \(a_claims: smoke, b_claims: quick\).*--allow-mixed"):
        runner.build_site(tmp_path / "executed", output_root=tmp_path / "site", log=lambda *a: None)
    assert not (tmp_path / "site").exists()
    runs = {"a_claims": a, "b_claims": b}
    rows = collect_claims(runs, [a.relative_to(a.parent), b.relative_to(b.parent)])
    assert [r["claim"] for r in rows] == ["T1", "T1"]
    assert "⚠" not in rows[0]["run date"] and rows[1]["run date"].endswith("⚠ lock 0123456789ab")
    (other,) = collect_claims({"c_claims": c}, [c.relative_to(c.parent)])
    assert other["run date"].endswith("⚠ not the locked libraries")
    assert rows[0]["seeds"] == "1 seed" and rows[0]["criteria"] == "✔"
    assert rows[0]["JPEG check"].startswith("JPEG q75: not reproduced (mean above 0: holds → fails)")
    assert "[" in rows[0]["ours"] and "]" in rows[0]["ours"]        # the interval
    md = ledger_markdown(rows, {"smoke", "quick"})
    assert md.startswith("**Mixed profiles**") and "| JPEG pixels |" in md and "⚠ lock" in md
    assert "| not reproduced (1 criterion changes) |" in md          # the short JPEG cell
    assert "sweep (pooled)" not in md                                # no sweep collected: no column
    several = ledger_markdown([dict(rows[0], seeds="partly in 2 of 3 seeds", verdict="partly")])
    assert "| partly; partly in 2 of 3 seeds |" in several
    devs = collect_deviations(runs)
    assert [d["chapter"] for d in devs] == ["a_claims", "b_claims"] and devs[0]["ours"] == "synthetic numbers"
    assert "| [a_claims](chapters/a_claims.ipynb) | evaluation | no paper | synthetic numbers |" in deviations_markdown(devs)


def test_lock_matches_names_the_libraries_that_differ(monkeypatch):
    from freqlib import environment
    pins = environment.locked_versions()
    assert pins["torch"] == "2.13.0+cpu" and "numpy" in pins
    monkeypatch.setattr(environment, "versions", lambda: {"torch": pins["torch"], "numpy": pins["numpy"],
                                                           "torchvision": pins["torchvision"], "python": "3"})
    assert environment.lock_matches() == "yes"
    monkeypatch.setattr(environment, "versions", lambda: {"torch": "2.15.0", "numpy": pins["numpy"],
                                                           "torchvision": pins["torchvision"], "python": "3"})
    assert environment.lock_matches() == "no: torch 2.15.0 (lock 2.13.0+cpu)"


def test_zoo_timings_tell_a_recipes_variants_apart(monkeypatch, tmp_path):
    """Chapter 6 trains one recipe on several datasets and budgets: each row says which."""
    from freqlib import ledger, zoo
    rec = lambda key, dataset, epochs: {"name": "shortcut_standard", "seed": 0, "profile": "quick", "key": key,
                                        "train_seconds": 10.0, "test_accuracy": 0.5, "device": "CPU",
                                        "config": {"dataset": dataset, "n_train": 20000, "epochs": epochs}}
    monkeypatch.setattr(zoo, "list_models", lambda current=False: [rec("a1", "shortcut-high", 3),
                                                                   rec("b2", "shortcut-high", 0.75),
                                                                   rec("c3", "shortcut-high-20db", 3)])
    monkeypatch.setattr(ledger, "run_card", lambda path: {"profile": "quick"})
    rows = [r for r in ledger.timings_markdown({"06": tmp_path}).splitlines() if r.startswith("| shortcut_standard")]
    assert len(rows) == 3 and len(set(r.split("|", 4)[4] for r in rows)) == 3    # not three equal rows
    assert "| shortcut-high | 20,000 × 0.75 |" in rows[1] and "| shortcut-high-20db | 20,000 × 3 |" in rows[2]
