"""The offline wheelhouse: pinned like this environment, the device notes' pip flags, and complete
enough to execute a notebook on a simulated GPU machine (its base packages plus the wheels only)."""
import importlib.metadata as md
import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from freqlib import wheelhouse as wh

ROOT = Path(__file__).resolve().parents[1]


def test_pins_match_this_environment():
    """The GPU runs the versions the tests ran."""
    for name, version in wh.WHEELS.items():
        assert md.version(name) == version, f"{name}: wheelhouse pins {version}, installed {md.version(name)}"


def test_download_uses_the_device_notes_flags():
    cmd = wh.download_command(Path(".whl"), pip=("python3", "-m", "pip"))
    line = " ".join(cmd)
    assert line.startswith("python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 "
                           "--implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 "
                           "--platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 "
                           "--platform manylinux1_x86_64 -d .whl ")
    assert "papermill==2.7.0" in cmd and "ipykernel==" + wh.WHEELS["ipykernel"] in cmd
    assert "--no-index --no-deps" in wh.install_command() and "--target /tmp/site" in wh.install_command()


@pytest.mark.parametrize("version", ["2.7", "3.9", "3.12.1", "three"])
def test_a_python_version_freqlib_cannot_run_on_is_refused(capsys, version):
    from freqlib.__main__ import main
    with pytest.raises(SystemExit) as exit_:
        main(["wheelhouse", "--python", version, "--dest", "unused"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.splitlines()[-1].endswith(
        f"argument --python: must be a Python version 3.N with N >= 10 (freqlib needs Python >= 3.10), got '{version}'")


def test_a_failed_download_is_one_line_and_exit_2(tmp_path, monkeypatch, capsys):
    """No registry (this machine's CI): pip's last lines in one error line, no traceback."""
    from freqlib.__main__ import main
    failed = subprocess.CompletedProcess([], 1, "", "ERROR: No matching distribution found for papermill==2.7.0")
    monkeypatch.setattr(wh.subprocess, "run", lambda *a, **k: failed)
    assert main(["wheelhouse", "--dest", str(tmp_path / "whl")]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err == ["error: pip download failed (ERROR: No matching distribution found for papermill==2.7.0); it needs "
                   "access to the package registry. For another platform tag add --platform manylinux_2_N_x86_64."]


def test_nothing_in_the_wheelhouse_is_already_on_the_machine():
    assert not {wh.normalise(n) for n in wh.WHEELS} & wh.GPU_BASE


def fake_wheel(folder: Path, name: str, version: str, requires: list[str]) -> Path:
    path = folder / f"{name.replace('-', '_')}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(path, "w") as z:
        z.writestr(f"{name}-{version}.dist-info/METADATA",
                   "Metadata-Version: 2.1\nName: %s\nVersion: %s\n" % (name, version)
                   + "".join(f"Requires-Dist: {r}\n" for r in requires))
    return path


def test_closure_report_finds_requirements_nobody_provides(tmp_path):
    fake_wheel(tmp_path, "alpha", "1.0", ["numpy>=1", "beta", "gamma; sys_platform == 'win32'",
                                          "delta; extra == 'docs'", "epsilon>=2"])
    fake_wheel(tmp_path, "beta", "1.0", ["torch"])
    assert wh.closure_report(tmp_path) == {"epsilon": ["alpha"]}   # numpy/torch on the machine, beta here
    assert wh.missing_wheels(tmp_path) == list(wh.WHEELS)


@pytest.mark.skipif(not (ROOT / ".whl").is_dir(), reason="no wheelhouse here (make wheelhouse)")
def test_downloaded_wheelhouse_is_complete():
    assert wh.missing_wheels(ROOT / ".whl") == []
    gaps = wh.closure_report(ROOT / ".whl")
    assert set(gaps) <= set(wh.DECLARED_BUT_UNUSED), gaps
    assert wh.wheelhouse_size(ROOT / ".whl") < 16 * 2 ** 20
    names = [p.name.split("-")[0] for p in (ROOT / ".whl").glob("*.whl")]
    assert len(names) == len(set(names)), "two versions of one wheel stop the offline install"


NOTEBOOK_CODE = r'''
import importlib, pkgutil, sys
import freqlib
for m in pkgutil.iter_modules(freqlib.__path__):
    if m.name != "__main__":
        importlib.import_module("freqlib." + m.name)
import torchattacks, scipy.fft, seaborn, pandas as pd, matplotlib.pyplot as plt, PIL.Image, filelock, yaml
from freqlib.notebooks import glue
plt.plot([0, 1]); plt.show()
glue("site_packages", [p for p in sys.path if "site-packages" in p])
glue("answer", 6 * 7)
pd.DataFrame({"a": [1]})
'''


def test_a_notebook_executes_on_the_simulated_gpu_machine(tmp_path):
    """Kernel and runner see only GPU_BASE (as installed here) plus WHEELS: if a wheel is
    missing from the list, an import fails here before it fails on the GPU."""
    import nbformat
    site = wh.simulated_site(tmp_path / "site")
    kernels = tmp_path / "jupyter" / "kernels" / "python3"
    kernels.mkdir(parents=True)
    (kernels / "kernel.json").write_text(json.dumps({
        "argv": [sys.executable, "-S", "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "simulated GPU machine", "language": "python"}))
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    params = nbformat.v4.new_code_cell('profile = "smoke"\ndevice = "cpu"\nseed = 0')
    params.metadata["tags"] = ["parameters"]
    nb.cells = [nbformat.v4.new_markdown_cell("# check"), params, nbformat.v4.new_code_cell(NOTEBOOK_CODE)]
    (tmp_path / "book").mkdir()
    nbformat.write(nb, tmp_path / "book" / "check.ipynb")
    script = ("from pathlib import Path; from freqlib.runner import execute_chapter; "
              "from freqlib.notebooks import read_glue; import sys; "
              f"p = execute_chapter(Path({str(tmp_path / 'book' / 'check.ipynb')!r}), {{}}, Path({str(tmp_path / 'out')!r}), log=lambda *a: None); "
              "import json; print(json.dumps(read_glue(p))); "
              "print('PARENT', [q for q in sys.path if 'site-packages' in q])")
    env = {**os.environ, "PYTHONPATH": f"{site}{os.pathsep}{ROOT}", "JUPYTER_PATH": str(tmp_path / "jupyter")}
    res = subprocess.run([sys.executable, "-S", "-c", script], capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    out = res.stdout.strip().splitlines()
    glued = json.loads(out[-2])
    assert glued["answer"] == 42 and glued["site_packages"] == []
    assert out[-1] == "PARENT []"
