"""The repository's promises: one dependency list, output-free chapters, CI = README."""
import json
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def test_environment_yml_matches_pyproject():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    wanted = set(project["dependencies"]) | set(project["optional-dependencies"]["test"])
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    pip = next(d["pip"] for d in env["dependencies"] if isinstance(d, dict))
    listed = {p for p in pip if not p.startswith("-e")}
    norm = lambda s: {re.sub(r"\s+", "", x).lower() for x in s}
    assert norm(listed) == norm(wanted), f"only in env: {norm(listed) - norm(wanted)}, only in pyproject: {norm(wanted) - norm(listed)}"


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
        code = [c for c in nb["cells"] if c["cell_type"] == "code"]
        assert all(not c["outputs"] and c["execution_count"] is None for c in code), f"{path.name} has outputs"
        params = [c for c in code if "parameters" in c.get("metadata", {}).get("tags", [])]
        assert len(params) == 1, f"{path.name}: exactly one cell tagged parameters"
        src = "".join(params[0]["source"])
        for name in ("profile", "device", "seed"):
            assert re.search(rf"^{name}\s*=", src, re.M), f"{path.name}: parameter {name} missing"


def test_data_and_checkpoints_are_ignored():
    ignore = (ROOT / ".gitignore").read_text()
    assert "data/*" in ignore and "!data/README.md" in ignore and "_build/" in ignore
