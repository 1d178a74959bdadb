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


def test_run_card_and_skip_when_unchanged(tmp_path):
    nb = make_notebook(tmp_path / "ok.ipynb", "print(n_images * 2)")
    out, logs = tmp_path / "out", []
    done = runner.execute_chapter(nb, {"profile": "smoke", "n_images": 21}, out, log=logs.append)
    executed = nbformat.read(done, as_version=4)
    card = executed.cells[1]
    assert "run-card" in card.metadata["tags"] and "Run card" in card.source
    assert "| profile | smoke |" in card.source and "| data variant | synthetic |" in card.source
    assert "42" in executed.cells[-1].outputs[0]["text"]
    assert read_glue(done)["profile"] == "smoke"
    runner.execute_chapter(nb, {"profile": "smoke", "n_images": 21}, out, log=logs.append)
    assert "skipped" in logs[-1]
    runner.execute_chapter(nb, {"profile": "smoke", "n_images": 22}, out, log=logs.append)
    assert "done" in logs[-1]


def test_toc_lists_existing_chapters():
    chapters = runner.chapters_in_toc()
    assert chapters and chapters[0].name == "00_primer.ipynb"
    assert runner.resolve_chapter("00") == chapters[0]
    with pytest.raises(runner.ParameterError, match="not found"):
        runner.resolve_chapter("99_nothing")
