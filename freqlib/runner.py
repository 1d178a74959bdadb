"""Execute chapters with papermill and build the site from the executed copies.

* Parameters are checked against each chapter's ``parameters`` cell before
  anything runs.
* A chapter is skipped when its notebook, the freqlib sources, its parameters
  and the data variant are all unchanged since the last successful run.
* A notebook is executed into a temporary file and moved into
  ``_build/executed/<profile>/`` only on success; a failing cell stops the run
  with the chapter and cell named, and the partial notebook goes to
  ``_build/failed/``.
* Executed copies are kept per profile, so ``run 00 --profile smoke`` never
  replaces the ``quick`` copy a site is built from; a site is built from one
  profile's folder (:func:`build_site` refuses a mix unless told to label it).
* Each executed chapter gets a run card (profile, device, data variant, wall
  time, git commit, library versions and the lock digest) as its second cell.
"""
from __future__ import annotations

import ast
import datetime
import hashlib
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

from .io import atomic_path, repo_root
from .notebooks import read_glue
from .profiles import paper_dry

__all__ = ["ParameterError", "ChapterFailed", "chapters_in_toc", "chapter_parameters",
           "validate_parameters", "parse_assignments", "execute_chapter", "run_chapters",
           "build_site", "executed_dir", "executed_profiles", "read_glue", "stderr_outputs", "BUILD",
           "EXECUTED"]

BUILD = "_build"
EXECUTED = f"{BUILD}/executed"          # one sub-folder per profile: _build/executed/quick/...
# Parameters every chapter has (``seeds`` only the claim chapters): allowed values or a check.
COMMON = {
    "profile": ("auto", "smoke", "quick", "paper"),
    "device": None,
    "seed": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0, "an int >= 0"),
    "seeds": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
              "an int >= 0 (0: the profile's number of training seeds)"),
}
# Modules that build the site or run chapters but never change a chapter's output:
# editing them must not re-execute the book.
BOOK_TOOLING = {"runner.py", "ledger.py", "site.py", "notebooks.py", "__main__.py", "sweep.py",
                "pooled.py", "environment.py", "paper_run.py", "paper_plan.py", "carry.py",
                "wheelhouse.py"}


class ParameterError(ValueError):
    """A parameter the chapter does not have, or of the wrong type."""


class ChapterFailed(RuntimeError):
    """A cell raised while a chapter was executed; ``ename`` is the exception's name
    (``OutOfTime``: a time-boxed call stopped it between cached results)."""

    def __init__(self, message: str, ename: str = ""):
        super().__init__(message)
        self.ename = ename


# ---------------------------------------------------------------- chapters
def chapters_in_toc(root: Path | None = None) -> list[Path]:
    """Notebook chapters listed in ``_toc.yml``, in book order."""
    import yaml
    root = root or repo_root()
    toc = yaml.safe_load((root / "_toc.yml").read_text())
    files: list[str] = []

    def walk(node):
        if isinstance(node, dict):
            if "file" in node:
                files.append(node["file"])
            for v in node.values():
                walk(v)
        elif isinstance(node, list):
            for v in node:
                walk(v)
    walk(toc)
    return [root / f"{f}.ipynb" for f in files if (root / f"{f}.ipynb").is_file()]


def resolve_chapter(name: str, root: Path | None = None) -> Path:
    """A chapter by path, file name, or prefix (``00``, ``01_high``...)."""
    root = root or repo_root()
    cands = [c for c in chapters_in_toc(root) if c.stem == name or c.stem.startswith(name)
             or str(c.relative_to(root)) == name]
    if len(cands) != 1:
        known = ", ".join(c.stem for c in chapters_in_toc(root))
        raise ParameterError(f"chapter {name!r} {'is ambiguous' if cands else 'not found'}; known: {known}")
    return cands[0]


def chapter_parameters(path: Path) -> dict[str, object]:
    """Defaults of the chapter's ``parameters`` cell, by name."""
    import nbformat
    nb = nbformat.read(path, as_version=4)
    for cell in nb.cells:
        if "parameters" in cell.get("metadata", {}).get("tags", []):
            values = {}
            for node in ast.parse(cell.source).body:
                if isinstance(node, ast.Assign) and len(node.targets) == 1 and isinstance(node.targets[0], ast.Name):
                    values[node.targets[0].id] = ast.literal_eval(node.value)
                elif isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name):
                    values[node.target.id] = ast.literal_eval(node.value)
            return values
    raise ParameterError(f"{path.name} has no cell tagged 'parameters'; papermill cannot inject into it")


def parse_assignments(items: list[str]) -> dict[str, object]:
    """``["profile=quick", "n_images=64"]`` -> dict, values parsed as Python literals."""
    out = {}
    for item in items:
        if "=" not in item:
            raise ParameterError(f"parameter {item!r} must look like name=value")
        k, v = item.split("=", 1)
        try:
            out[k.strip()] = ast.literal_eval(v)
        except (ValueError, SyntaxError):
            out[k.strip()] = v
    return out


def validate_parameters(path: Path, params: dict) -> dict:
    """Check names and types against the chapter's defaults; return merged params."""
    defaults = chapter_parameters(path)
    for name, value in params.items():
        if name not in defaults:
            raise ParameterError(f"{path.stem}: unknown parameter {name!r}; allowed: {', '.join(sorted(defaults))}")
        want = defaults[name]
        ok = (isinstance(value, type(want)) and not (isinstance(value, bool) and not isinstance(want, bool))) \
            or (isinstance(want, float) and isinstance(value, int) and not isinstance(value, bool)) \
            or want is None
        if not ok:
            raise ParameterError(f"{path.stem}: parameter {name!r} must be {type(want).__name__} "
                                 f"(default {want!r}), got {type(value).__name__} {value!r}")
        rule = COMMON.get(name)
        if isinstance(rule, tuple) and callable(rule[0]):
            if not rule[0](value):
                raise ParameterError(f"{path.stem}: {name}={value!r} must be {rule[1]}")
        elif rule and value not in rule:
            raise ParameterError(f"{path.stem}: {name}={value!r} is not one of {', '.join(rule)}")
        if name == "device" and not (value in ("auto", "cpu") or str(value).startswith("cuda")):
            raise ParameterError(f"{path.stem}: device={value!r}; use auto, cpu, cuda or cuda:N")
    return {**defaults, **params}


# --------------------------------------------------------------- execution
def resolved_profile(params: dict) -> str:
    """The profile a run with ``params`` uses (``auto`` resolved for its device)."""
    from .profiles import resolve_profile
    try:
        return resolve_profile(params.get("profile", "auto"), params.get("device", "auto"))
    except ValueError as exc:
        raise ParameterError(str(exc)) from None


def executed_dir(profile: str, root: Path | None = None) -> Path:
    """Where the runner keeps the executed copies of one profile."""
    return (root or repo_root()) / EXECUTED / profile


def executed_profiles(executed: Path) -> dict[str, str]:
    """Profile of every executed chapter under ``executed`` (from its run card), by stem."""
    import nbformat
    out = {}
    for nb_path in sorted(Path(executed).rglob("*.ipynb")):
        if nb_path.name.startswith("."):
            continue
        card = nbformat.read(nb_path, as_version=4).metadata.get("freqlib", {}).get("run_card", {})
        out[nb_path.stem] = str(card.get("profile", "unknown"))
    return out


def _source_fingerprint(path: Path, params: dict) -> str:
    from .data import available_variant
    from .environment import lock_digest
    h = hashlib.sha256(path.read_bytes())
    for src in sorted((repo_root() / "freqlib").glob("*.py")):
        if src.name not in BOOK_TOOLING:
            h.update(src.name.encode() + src.read_bytes())
    h.update(json.dumps(params, sort_keys=True, default=str).encode())
    h.update(available_variant().encode())
    h.update(lock_digest().encode())   # another pinned environment may give other numbers
    return h.hexdigest()[:20]


def _git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=repo_root(),
                             capture_output=True, text=True, timeout=10)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=repo_root(),
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return (out.stdout.strip() or "uncommitted") + ("+changes" if dirty else "")
    except Exception:
        return "unknown"


def _strip_progress_bars(nb) -> None:
    """Drop stderr outputs that are only tqdm progress lines (kept in the log, not the page)."""
    for cell in nb.cells:
        if cell.cell_type != "code":
            continue
        kept = []
        for out in cell.get("outputs", []):
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                lines = [l for l in out.get("text", "").replace("\r", "\n").splitlines() if l.strip()]
                if all("%|" in l or "it/s]" in l or "s/it]" in l for l in lines):
                    continue
            kept.append(out)
        cell.outputs = kept


def stderr_outputs(nb) -> list[str]:
    """``cell N: first line`` of every stderr stream and error output left in an executed
    notebook: what a reader would see on the page, and what the site check refuses."""
    found = []
    for i, cell in enumerate(nb.cells):
        for out in cell.get("outputs", []) if cell.cell_type == "code" else []:
            if out.get("output_type") == "stream" and out.get("name") == "stderr":
                text = next((ln.strip() for ln in out.get("text", "").splitlines() if ln.strip()), "")
            elif out.get("output_type") == "error":
                text = f"{out.get('ename', 'error')}: {out.get('evalue', '')}"
            else:
                continue
            found.append(f"cell {i}: {text[:160]}")
    return found


def training_seeds(glued: dict) -> str:
    """The training seeds a chapter ran with, from what ``setup_chapter`` glued (``seed``,
    ``n_seeds``): the run card says which, where the parameters say only ``seeds=0``."""
    seed, n = int(glued.get("seed", 0) or 0), int(glued.get("n_seeds", 1) or 1)
    return ", ".join(str(s) for s in range(seed, seed + n))


def _insert_run_card(nb, card: dict) -> None:
    import nbformat
    lines = [":::{admonition} Run card", ":class: note", "",
             "| | |", "|---|---|"]
    # parameters as code: Sphinx would curl their quotes (profile=’auto’); a 0 or '' there means
    # "the profile's setting", which the other rows give (training seeds) or the settings table
    def shown(k, v):
        if k != "parameters" or not v:
            return v
        unset = [name for name, _ in re.findall(r"(\w+)=(0|''|\"\")(?=,|$)", v) if name != "seed"]   # seed=0 is seed 0
        note = f" ({', '.join(unset)}: 0 or '' means the profile's setting)" if unset else ""
        return f"`{v}`{note}"
    lines += [f"| {k} | {shown(k, v)} |" for k, v in card.items()]
    lines += [":::"]
    cell = nbformat.v4.new_markdown_cell("\n".join(lines), metadata={"tags": ["run-card"]})
    at = 1 if nb.cells and nb.cells[0].cell_type == "markdown" else 0
    nb.cells.insert(at, cell)


# A kernel that dies while starting ran no cell, so trying again is safe. Kernels launched at
# the same moment (a local sweep's jobs) can race for the same ports (papermill #239).
KERNEL_START_ERRORS = ("Kernel died before replying to kernel_info", "Kernel didn't respond")
KERNEL_START_TRIES = 3


def _execute_notebook(path: Path, tmp: Path, params: dict, log) -> None:
    """papermill.execute_notebook, tried again (after 1 s, then 2 s) when the kernel fails to start."""
    import papermill
    for attempt in range(1, KERNEL_START_TRIES + 1):
        try:
            papermill.execute_notebook(str(path), str(tmp), parameters=params, kernel_name="python3",
                                       cwd=str(path.parent), progress_bar=False, log_output=True)
            return
        except RuntimeError as exc:
            started = not any(m in str(exc) for m in KERNEL_START_ERRORS)
            if started or attempt == KERNEL_START_TRIES:
                raise
            log(f"{path.stem}: the kernel did not start ({exc}); trying again ({attempt + 1}/{KERNEL_START_TRIES})")
            time.sleep(attempt)


def execute_chapter(path: Path, params: dict, out_dir: Path, force: bool = False,
                    log=print, failed_dir: Path | None = None) -> Path:
    """Execute one chapter into ``out_dir``; returns the executed notebook's path.
    A failing chapter's partial notebook goes to ``failed_dir`` (default ``_build/failed``)."""
    import nbformat
    import papermill

    from .environment import provenance

    params = validate_parameters(path, params)
    target = out_dir / path.relative_to(repo_root()) if path.is_relative_to(repo_root()) else out_dir / path.name
    fingerprint = _source_fingerprint(path, params)
    if target.is_file() and not force:
        try:
            old = nbformat.read(target, as_version=4).metadata.get("freqlib", {})
        except Exception:
            old = {}
        if old.get("fingerprint") == fingerprint:
            log(f"{path.stem}: unchanged since its last run, skipped")
            return target
    log(f"{path.stem}: executing with {params}")
    start = time.time()
    with atomic_path(target, suffix=".ipynb") as tmp:
        try:
            _execute_notebook(path, tmp, params, log)
        except papermill.PapermillExecutionError as exc:
            failed = Path(failed_dir or repo_root() / BUILD / "failed") / path.name
            failed.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(tmp, failed)
            shown = failed.relative_to(repo_root()) if failed.is_relative_to(repo_root()) else failed
            evalue = (str(exc.evalue).strip().splitlines() or [""])[0]
            raise ChapterFailed(f"{path.stem}: cell {exc.exec_count} raised {exc.ename}: {evalue} "
                                f"(partial notebook: {shown})", exc.ename) from None
        wall = time.time() - start
        nb = nbformat.read(tmp, as_version=4)
        _strip_progress_bars(nb)
        glued = read_glue(tmp)
        env = provenance()
        profile = glued.get("profile", params.get("profile"))
        card = {
            "profile": f"{profile} (DRY RUN: smoke sizes, not results)" if profile == "paper" and paper_dry() else profile,
            "device": glued.get("device", params.get("device")),
            "data variant": glued.get("analysis_variant", glued.get("variant", "not recorded")),
            "training seeds": training_seeds(glued),
            "wall time": f"{wall:.0f} s",
            "git commit": _git_commit(),
            "executed": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "parameters": ", ".join(f"{k}={v!r}" for k, v in params.items()),
            "libraries": f"torch {env['torch']}, torchvision {env['torchvision']}, numpy {env['numpy']}, "
                         f"Python {env['python']}",
            "lock": env["lock"] + ("" if env["lock_matches"] in ("yes", "no lock")
                                   else f" (installed libraries differ: {env['lock_matches'][4:]})"),
        }
        _insert_run_card(nb, card)
        nb.metadata["freqlib"] = {"fingerprint": fingerprint, "run_card": card, "wall_seconds": wall,
                                  "parameters": params, "environment": env}
        nbformat.write(nb, tmp)
    log(f"{path.stem}: done in {wall:.0f} s")
    return target


def run_chapters(names: list[str] | None = None, params: dict | None = None, force: bool = False,
                 out_dir: Path | None = None, log=print) -> list[Path]:
    """Execute chapters (all in the ToC by default) into ``_build/executed/<profile>``.
    Chapter-specific names in ``params`` must exist in every selected chapter."""
    root = repo_root()
    chapters = [resolve_chapter(n, root) for n in names] if names else chapters_in_toc(root)
    params = params or {}
    for ch in chapters:  # validate all before running any
        validate_parameters(ch, params)
    out_dir = out_dir or executed_dir(resolved_profile(params), root)
    return [execute_chapter(ch, params, out_dir, force, log) for ch in chapters]


# -------------------------------------------------------------------- site
def _fold_injected_parameters(notebook: Path) -> None:
    """Fold the cell papermill injects (``# Parameters``, tagged
    ``injected-parameters``) on the site: it repeats the parameters cell with
    this run's values, which the run card already lists. A reader can still
    unfold it."""
    import nbformat
    nb = nbformat.read(notebook, as_version=4)
    for cell in nb.cells:
        tags = cell.get("metadata", {}).get("tags", [])
        if "injected-parameters" in tags and "hide-input" not in tags:
            tags.append("hide-input")
            cell.metadata["mystnb"] = {"code_prompt_show": "Show the parameters papermill injected for this run",
                                       "code_prompt_hide": "Hide the injected parameters"}
    nbformat.write(nb, notebook)


def _placeholder(source: Path, target: Path, executed: Path) -> None:
    """Stand-in page for a chapter with no executed copy: its title and how to run it
    (its source would fail the -W build on glue references that were never computed)."""
    import nbformat
    nb = nbformat.read(source, as_version=4)
    title = next((line for c in nb.cells if c.cell_type == "markdown"
                  for line in c.source.splitlines() if line.startswith("# ")), f"# {source.stem}")
    note = (f"{title}\n\n:::{{note}}\nThis chapter has no executed copy in `{executed.name}`, so this "
            f"build shows no results for it. Execute it with `python -m freqlib run {source.stem}` "
            f"(or `make book`) and rebuild.\n:::\n")
    stub = nbformat.v4.new_notebook(metadata=nb.metadata, cells=[nbformat.v4.new_markdown_cell(note)])
    nbformat.write(stub, target)


def _unlink_glue(stage: Path, stems: list[str]) -> None:
    """Replace glue pasted from chapters that were not executed (``{glue:text}`06_x.ipynb::key```,
    or a ``{glue}`` directive with ``:doc: 06_x.ipynb``) by a note, so the -W build still passes."""
    import re

    import nbformat
    names = "|".join(re.escape(s) for s in stems)
    role = re.compile(r"\{glue(?::\w*)?\}`[^`]*?(?:" + names + r")\.ipynb::[^`]*`")
    block = re.compile(r"```\{glue(?::\w*)?\}[^\n]*\n:doc: [^\n]*(?:" + names + r")\.ipynb\n```")
    for path in stage.rglob("*.ipynb"):
        nb = nbformat.read(path, as_version=4)
        changed = False
        for cell in nb.cells:
            if cell.cell_type == "markdown":
                new = block.sub("*(not shown: that chapter was not executed for this build)*",
                                role.sub("*(not executed)*", cell.source))
                changed |= new != cell.source
                cell.source = new
        if changed:
            nbformat.write(nb, path)


def build_site(executed: Path | None = None, output_root: Path | None = None, log=print,
               profile: str | None = None, allow_mixed: bool = False) -> Path:
    """Build ``<output_root>/_build/html`` from executed notebooks (never re-executing).

    ``executed`` is a folder of executed chapters (``results/paper``, a test's
    folder); without it, ``_build/executed/<profile>`` (``auto``: the machine's
    profile). The book's sources are staged in ``_build/site-src`` with each
    chapter replaced by its executed copy; a chapter with no executed copy becomes
    a short page saying how to run it, and the ledger marks it "not run". Chapters executed
    at different profiles are refused, or labelled on the landing page with
    ``allow_mixed``.
    """
    from .ledger import write_ledger
    root = repo_root()
    if executed is None:
        profile = resolved_profile({"profile": profile or "auto"})
        executed = executed_dir(profile, root)
        hint = f"run `python -m freqlib run --profile {profile}` first"
    else:
        executed = Path(executed)
        hint = "pass a folder of executed chapters (with chapters/NN_name.ipynb inside)"
    if not executed.is_dir():
        raise ValueError(f"no executed notebooks at {executed}; {hint}")
    profiles = executed_profiles(executed)
    if len(set(profiles.values())) > 1:
        mix = ", ".join(f"{stem}: {p}" for stem, p in profiles.items())
        if not allow_mixed:
            raise ValueError(f"{executed} mixes profiles ({mix}); build one profile at a time "
                             "(`build --profile quick`) or pass --allow-mixed to label every chapter's profile")
        log(f"warning: building a site that mixes profiles ({mix})")
    output_root = Path(output_root) if output_root else root
    stage = output_root / BUILD / "site-src"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    for item in root.iterdir():
        if item.name.startswith((".", "_build")) or item.name in {"data", "freqlib", "tests", "bench", "results"}:
            continue
        if item.is_dir():
            shutil.copytree(item, stage / item.name, ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
        elif item.suffix in {".yml", ".md", ".bib", ".png", ".svg"}:
            shutil.copy2(item, stage / item.name)
    runs, missing = {}, []
    for src in chapters_in_toc(root):
        rel = src.relative_to(root)
        done = executed / rel
        if done.is_file():
            shutil.copyfile(done, stage / rel)
            _fold_injected_parameters(stage / rel)
            runs[rel.stem] = done
        else:
            _placeholder(src, stage / rel, executed)
            missing.append(rel.stem)
    if missing:
        _unlink_glue(stage, missing)
    write_ledger(stage, runs, [c.relative_to(root) for c in chapters_in_toc(root)])
    cmd = [str(Path(sys.executable).with_name("jupyter-book")), "build", str(stage), "--path-output", str(output_root),
           "-W", "-n", "--keep-going"]
    log("building the site: jupyter-book " + " ".join(cmd[1:]))
    res = subprocess.run(cmd, cwd=root, capture_output=True, text=True)
    html = output_root / BUILD / "html"
    if res.returncode != 0 or "warning" in res.stderr.lower():
        sys.stderr.write(res.stdout[-6000:] + res.stderr[-6000:])
        raise RuntimeError("jupyter-book build failed or warned (it runs with -W); see the log above")
    log(f"site built: {html / 'index.html'}")
    return html
