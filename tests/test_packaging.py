"""The repository's promises: one dependency list, output-free chapters, CI = README."""
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = PROJECT["optional-dependencies"]
# What a library user calls: these must import and run without any Jupyter package.
LIBRARY_MODULES = ("spectral", "attribution", "heatmap", "masks", "corruptions", "attacks", "zoo", "report",
                   "verdicts", "evaluate", "deviations", "environment")
BOOK_ONLY = ("papermill", "nbformat", "ipykernel", "jupyter-book", "sphinx-exercise", "submitit")


def _all_requirements() -> list[str]:
    return PROJECT["dependencies"] + [r for reqs in EXTRAS.values() for r in reqs]


def test_environment_yml_matches_pyproject_with_its_extras():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-e")}
    norm = lambda s: {re.sub(r"\s+", "", x).lower() for x in s}
    wanted = set(_all_requirements())
    assert norm(listed) == norm(wanted), f"only in env: {norm(listed) - norm(wanted)}, only in pyproject: {norm(wanted) - norm(listed)}"
    assert any(p.startswith("-e .[") and "book" in p and "test" in p for p in pip)


def test_jupyter_tooling_is_an_extra_not_a_dependency():
    from packaging.requirements import Requirement
    core = {Requirement(r).name.lower() for r in PROJECT["dependencies"]}
    book = {Requirement(r).name.lower() for r in EXTRAS["book"]}
    assert set(BOOK_ONLY) <= book and not set(BOOK_ONLY) & core
    assert {"pytest", "playwright"} <= {Requirement(r).name.lower() for r in EXTRAS["test"]}


def _lock() -> dict[str, tuple[str, int]]:
    """name -> (pinned version, number of hashes) of requirements.lock."""
    pins, name = {}, None
    for line in (ROOT / "requirements.lock").read_text().splitlines():
        m = re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==(\S+)", line)
        if m:
            name = re.sub(r"[-_.]+", "-", m.group(1)).lower()
            pins[name] = (m.group(2), 0)
        elif name and line.strip().startswith("--hash=sha256:"):
            pins[name] = (pins[name][0], pins[name][1] + 1)
    return pins


def test_lock_agrees_with_pyproject():
    """Every pyproject requirement (extras included) is locked, at a version its range admits."""
    from packaging.requirements import Requirement
    pins = _lock()
    assert len(pins) > 50, "requirements.lock should pin the whole dependency set"
    for raw in _all_requirements():
        req = Requirement(raw)
        name = re.sub(r"[-_.]+", "-", req.name).lower()
        assert name in pins, f"{req.name} is in pyproject.toml but not in requirements.lock (run `make lock`)"
        assert req.specifier.contains(pins[name][0], prereleases=True), \
            f"requirements.lock pins {name}=={pins[name][0]}, outside pyproject's {req}"
    unhashed = [n for n, (_, k) in pins.items() if k == 0]
    assert not unhashed, f"pins without hashes: {unhashed}"


def test_lock_pins_the_cpu_torch_and_its_torchvision():
    pins = _lock()
    wanted = dict(re.match(r"^(\S+)==(\S+)", l).groups() for l in (ROOT / "lock-pins.txt").read_text().splitlines()
                  if l and not l.startswith("#"))
    assert wanted == {"torch": "2.13.0+cpu", "torchvision": "0.28.0"}
    for name, version in wanted.items():
        assert pins[name][0] == version, f"requirements.lock has {name}=={pins[name][0]}, lock-pins.txt {version}"
    assert "--find-links /opt/wheels" in (ROOT / "requirements.lock").read_text()


def test_make_installs_from_the_lock_by_default():
    make = (ROOT / "Makefile").read_text()
    assert re.search(r"^LOCK\s*\?= requirements.lock$", make, re.M)
    assert "--require-hashes -r $(LOCK)" in make and "--no-deps -e ." in make
    assert re.search(r"^lock:", make, re.M) and "piptools compile --generate-hashes" in make


BLOCKER = """
import importlib.abc, sys
BLOCKED = {blocked!r}
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in BLOCKED:
            raise ImportError(f"{{name}} is blocked: freqlib must not need it")
sys.meta_path.insert(0, Block())
"""

LIBRARY_USE = """
import importlib, types
import torch
for m in {modules!r}:
    importlib.import_module("freqlib." + m)
from freqlib import spectral, verdicts, environment
x = torch.rand(4, 3, 32, 32)
low = spectral.low_pass(x, 4)
assert low.shape == x.shape
claim = verdicts.Claim("L1", "p", "s", "v", [verdicts.Criterion("mean > 0", "m", above=0.0)])
claim.evaluate({{"m": verdicts.mean_estimate(torch.rand(100) + 0.5, n_boot=200)}}, ours="x")
verdicts.publish([claim], types.SimpleNamespace(profile="smoke", variant="synthetic", device="cpu"))
print(claim.verdict, environment.provenance()["torchvision"])
"""


def test_library_imports_and_runs_without_jupyter():
    """spectral ... evaluate in a process where Jupyter's packages (and torchvision, which the
    lock's CPU torch cannot import) raise ImportError."""
    import subprocess
    import sys
    blocked = {"papermill", "nbformat", "myst_nb", "jupyter_book", "IPython", "ipykernel", "sphinx",
               "submitit", "torchvision"}
    code = BLOCKER.format(blocked=blocked) + LIBRARY_USE.format(modules=LIBRARY_MODULES)
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.split()[0] == "reproduced"
    # the blocker works: importing the book tooling in the same process fails
    res = subprocess.run([sys.executable, "-c", BLOCKER.format(blocked=blocked) + "import freqlib.runner, nbformat"],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode != 0 and "nbformat is blocked" in res.stderr


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text()
    assert "make book" in readme and "make test" in readme
    ci = [l.strip() for l in (ROOT / ".ci" / "run").read_text().splitlines() if l.strip() and not l.startswith("#")]
    assert ci[-1] == "make test"


def test_source_chapters_are_output_free_and_parameterised():
    chapters = sorted((ROOT / "chapters").glob("*.ipynb"))
    assert chapters
    for path in chapters:
        nb = json.loads(path.read_text())
        import nbformat
        nbformat.validate(nb)                  # e.g. cell ids only from nbformat 4.5 on
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name} has outputs"
        params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, f"{path.name}: exactly one cell tagged parameters"
        src = "".join(params[0]["source"])
        for name in ("profile", "device", "seed"):
            assert re.search(rf"^{name}\s*=", src, re.M), f"{path.name}: parameter {name} missing"
        # papermill must parse every assignment (an '=' in a comment makes it skip the line)
        from papermill.translators import PythonTranslator
        parsed = {p.name for p in PythonTranslator.inspect({"source": src})}
        assigned = set(re.findall(r"^(\w+)\s*=", src, re.M))
        assert assigned == parsed, f"{path.name}: papermill cannot parse {sorted(assigned - parsed)}"


def test_data_and_checkpoints_are_ignored():
    ignore = (ROOT / ".gitignore").read_text()
    assert "data/*" in ignore and "!data/README.md" in ignore and "_build/" in ignore
