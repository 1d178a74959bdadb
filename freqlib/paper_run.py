"""The paper profile on one GPU: time-boxed, resumable calls of at most a few minutes.

A lent GPU runs one command for at most 10 minutes, starts bare, and carries
at most 64 MiB in and out. So the paper run is a sequence of calls of the same
command, each continuing where the last stopped::

    python -m freqlib paper-run --budget-s 540 --out .carry/run     # again and again, on the GPU
    python -m freqlib paper-run --plan                                # the plan and its estimates

One call:

1. **restores** the zoo carried in ``OUT/zoo`` (bf16 state dicts) into the zoo
   folder, where missing;
2. goes through the chapters not yet done, in book order. For each it trains the
   zoo models of its plan (:func:`freqlib.paper_plan.default_plan`) that are missing, then
   executes the chapter (:func:`freqlib.runner.execute_chapter`) into
   ``OUT/executed``. Before every step it estimates the step's cost (recorded
   timings first, else the planned ones of :data:`freqlib.paper_plan.PLANNED` scaled by how long
   finished steps took against their plan) and **does not start what cannot
   finish** before the deadline; a chapter is started only with all its missing
   models trained in the same call. A *resumable* chapter (:data:`freqlib.paper_plan.RESUMABLE`: its
   heavy work is one :mod:`freqlib.results` entry per model and step) starts when
   one step fits: the chapter's kernel gets ``FREQLIB_DEADLINE``, stops between
   stored results when it passes (status ``partial``), and the next call goes on
   from the results, which travel in ``OUT/results``. Models a chapter reads by
   reference (:class:`ModelSpec` ``by_ref``) are trained inside it, only while a
   result needs them, and never carried;
3. after a chapter, amends its run card (device name, training seeds, call)
   and learns which zoo models it trained itself (not in the plan): they are
   trained up front next time;
4. **prunes** ``OUT/zoo`` to ``--carry-mb``, keeping the models still needed
   that are dearest to retrain per MB, writes ``OUT/state.json`` and
   ``OUT/status.md`` and prints what is left.

Every file is written atomically, so a call killed at any moment leaves the
state of the last finished step; the next call redoes only the unfinished one.

Checkpoints travel as bf16 (convolution and linear weights; 1-D parameters and
buffers stay fp32). For a resumed run to compute exactly what an
uninterrupted one does, every zoo model is *canonicalised* right after training:
its weights are rounded to bf16 in the zoo folder as well, so chapters always
analyse the bf16-rounded network (on CUDA, autocast rounds these weights to bf16
in every forward pass anyway). A model dropped from the carry is retrained
when needed; paper-run's own (up-front) training runs with deterministic
algorithms, and the state keeps each model's weight fingerprint so a retrain
that differs is reported. Models a chapter trains inside its kernel (chapter
2's by-reference ResNet-18, chapter 3's networks trained through masks) use the
default kernels; their results are stored and carried, so they are not retrained.

Device side, after a call: ``--pack $OUT`` writes ``OUT`` as at most 8 tar
parts of at most 15 MiB; here, ``--unpack FILES_AT`` puts them back, moves the
executed notebooks to ``--results`` and merges bench results.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from .carry import canonical_fingerprint, carry_size, copy_missing, pack, stage_carry, unpack, weights_to
from .errors import first_line
from .io import atomic_path, atomic_torch_save, atomic_write_json, atomic_write_text, repo_root
from .paper_plan import (CARRY_MB, MARGIN_S, RESUMABLE, SAFETY, Estimator, ModelSpec, check_params, params_for,
                         plan_for, plan_of_params, plan_table)

__all__ = ["PaperRun", "Step", "device_name", "add_arguments", "cli"]


@contextmanager
def _env(name: str, value: str | None):
    """``$name`` set to ``value`` (None: unset) inside the block, restored after; a chapter's
    kernel started inside inherits it."""
    old = os.environ.pop(name, None)
    if value is not None:
        os.environ[name] = value
    try:
        yield
    finally:
        os.environ.pop(name, None)
        if old is not None:
            os.environ[name] = old


def _deadline_env(value: float | None):
    """``FREQLIB_DEADLINE`` for a chapter's kernel (freqlib.results stops between results there)."""
    from .deadline import DEADLINE_ENV
    return _env(DEADLINE_ENV, None if value is None else f"{value:.1f}")


# ------------------------------------------------------------------- run
@dataclass
class Step:
    kind: str          # "train" or "chapter"
    what: str          # model label or chapter stem
    estimate: float


@dataclass
class PaperRun:
    """One call of the paper run (see the module docstring)."""
    out: Path
    profile: str = "paper"
    device: str = "auto"
    chapters: list | None = None             # chapter stems or prefixes (default: the book's)
    params: dict = field(default_factory=dict)
    carry_mb: float = CARRY_MB
    deadline: float = float("inf")           # time.time() at which the call must have stopped
    plan: dict | None = None
    planned: dict | None = None              # replaces PLANNED[device] (tests)
    deterministic: bool = True
    compile: bool = False                    # torch.compile the zoo trainings of this process (not the chapters')
    retry_failed: bool = False               # execute chapters that failed in an earlier call again
    split_groups: bool = False               # train models of a chapter too big for one call anyway
    force_next: bool = False                 # start a ready chapter over its estimate even if tried before
    rerun: list | None = None                # chapter stems or prefixes to execute again although done
    root: Path | None = None
    clock: object = time.time
    log: object = print

    # ---------------------------------------------------------- set-up
    def __post_init__(self):
        from .profiles import resolve_device, resolve_profile
        self.out = Path(self.out)
        self.device = resolve_device(self.device)
        self.profile = resolve_profile(self.profile, self.device)
        self.root = Path(self.root) if self.root else repo_root()
        if self.plan is None:
            self.plan = plan_of_params(self.profile, self.params)
        self.state = self._load_state()
        self.estimator = Estimator(self.device, self.planned, self.state["timings"])
        self.did: list[str] = []
        self.left: list[tuple[str, str]] = []
        self.failed_now: set[str] = set()

    def _load_state(self) -> dict:
        path = self.out / "state.json"
        state = json.loads(path.read_text()) if path.is_file() else {}
        if state and state.get("profile") != self.profile:
            raise ValueError(f"{path} belongs to a run of profile {state.get('profile')!r}, not {self.profile!r}: "
                             "use another --out folder or delete it")
        state.setdefault("profile", self.profile)
        for key, empty in (("chapters", {}), ("models", {}), ("learned", {}), ("timings", []), ("calls", [])):
            state.setdefault(key, empty)
        return state

    def _save_state(self) -> None:
        atomic_write_json(self.out / "state.json", self.state)

    def remaining(self) -> float:
        return self.deadline - self.clock() - MARGIN_S

    def fits(self, estimate: float) -> bool:
        return SAFETY * estimate <= self.remaining()

    # ------------------------------------------------------------- zoo
    def _variant(self, spec: ModelSpec) -> str:
        from .data import available_variant
        from .profiles import recipe_config
        from .zoo import dataset_variant
        dataset = recipe_config(spec.name, self.profile, **spec.kwargs).dataset
        return available_variant() if dataset == "cifar10" else dataset_variant(dataset)

    def key_of(self, spec: ModelSpec) -> tuple[str, dict]:
        from .zoo import model_key
        return model_key(spec.name, self.profile, self._variant(spec), **spec.kwargs)

    def stem_of(self, spec: ModelSpec) -> str:
        return f"{spec.name}-{self.profile}-{self.key_of(spec)[0]}"

    def in_zoo(self, spec: ModelSpec) -> bool:
        from .zoo import zoo_dir
        stem = self.stem_of(spec)
        return (zoo_dir() / f"{stem}.pt").is_file() and (zoo_dir() / f"{stem}.json").is_file()

    def needs(self, stem: str) -> list[ModelSpec]:
        learned = [ModelSpec(n, o) for n, o in self.state["learned"].get(stem, [])]
        return list(dict.fromkeys(plan_for(stem, self.plan) + learned))

    def estimate_train(self, spec: ModelSpec) -> float:
        key, cfg = self.key_of(spec)
        done = self.state["models"].get(key)
        if done and done.get("seconds"):
            return done["seconds"] * 1.1
        return self.estimator.planned_train(cfg) * self.estimator.factor("train")

    def estimate_chapter(self, stem: str) -> float:
        """The chapter's seconds, with the training of the models it reaches by reference;
        for a chapter stopped between results, what is left of that."""
        entry = self.state["chapters"].get(stem, {})
        planned = self.estimator.planned_chapter(stem) * self.estimator.factor("chapter")
        planned += sum(self.estimate_train(s) for s in self.by_ref(stem) if not self.in_zoo(s))
        if entry.get("wall_s"):
            return entry["wall_s"] * 1.1
        if entry.get("killed"):   # an earlier call died inside it: it takes longer than thought
            planned = max(planned, entry.get("estimate", planned)) * 1.5 ** entry["killed"]
        if entry.get("spent_s"):  # stopped between results before: the rest
            planned = max(planned - entry["spent_s"], self.largest_step(stem))
        return planned

    def by_ref(self, stem: str) -> list[ModelSpec]:
        return [s for s in self.needs(stem) if s.by_ref]

    def resumable(self, stem: str) -> bool:
        return any(stem.startswith(p) for p in RESUMABLE)

    def largest_step(self, stem: str) -> float:
        """The longest stretch of a resumable chapter between two stored results: training
        one of its by-reference models and computing one result; 1.5 times more after each
        call in which it made no progress or was killed (its part after the last result,
        which nothing stops, is then longer than a step)."""
        train = max([self.estimate_train(s) for s in self.by_ref(stem) if not self.in_zoo(s)], default=0.0)
        item = self.estimator.planned.get("item", 60) * self.estimator.factor("chapter")
        entry = self.state["chapters"].get(stem, {})
        return (train + item) * 1.5 ** (entry.get("stalled", 0) + entry.get("killed", 0))

    def restore(self) -> int:
        """Write carried bf16 checkpoints missing from the zoo folder back as fp32, and
        carried results (:mod:`freqlib.results`) back into the results folder."""
        import torch
        from .results import results_dir
        from .zoo import zoo_dir
        results = copy_missing(self.out / "results", results_dir())
        if results:
            self.log(f"restored {results} carried result(s) into {results_dir()}")
        n = 0
        for carried in sorted((self.out / "zoo").glob("*.pt")):
            target = zoo_dir() / carried.name
            record = self.out / "records" / carried.with_suffix(".json").name
            if target.is_file() and target.with_suffix(".json").is_file():
                continue
            ckpt = torch.load(carried, map_location="cpu", weights_only=True)
            ckpt["state_dict"] = weights_to(ckpt["state_dict"], torch.float32)
            atomic_torch_save(ckpt, target)
            if record.is_file():
                atomic_write_text(target.with_suffix(".json"), record.read_text())
            n += 1
        return n

    def canonicalise(self, stem: str, seconds: float | None = None) -> None:
        """Round a freshly trained checkpoint's weights to bf16 in the zoo folder, put its
        bf16 copy and record in the carry, and note its fingerprint."""
        import torch
        from .zoo import zoo_dir
        path = zoo_dir() / f"{stem}.pt"
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        if ckpt.get("canonical") != "bf16":
            ckpt["state_dict"] = weights_to(weights_to(ckpt["state_dict"], torch.bfloat16), torch.float32)
            ckpt["canonical"] = "bf16"
            atomic_torch_save(ckpt, path)
        carried = dict(ckpt, state_dict=weights_to(ckpt["state_dict"], torch.bfloat16))
        atomic_torch_save(carried, self.out / "zoo" / f"{stem}.pt")
        record = json.loads(path.with_suffix(".json").read_text())
        atomic_write_json(self.out / "records" / f"{stem}.json", record)
        key = ckpt["key"]
        fingerprint = canonical_fingerprint(ckpt["state_dict"])
        entry = self.state["models"].setdefault(key, {"stem": stem, "name": record["name"]})
        if entry.get("fingerprint") and entry["fingerprint"] != fingerprint:
            entry["retrain_differs"] = entry.get("retrain_differs", 0) + 1
            self.log(f"note: {stem} retrained with different weights than its first training "
                     "(non-deterministic kernels); chapters after this call analyse the retrained one")
        entry.pop("failed", None)
        entry.update(fingerprint=fingerprint, test_accuracy=record.get("test_accuracy"),
                     pgd_linf_accuracy=record.get("pgd_linf_accuracy"), device=record.get("device"))
        if seconds is not None:
            entry["seconds"] = round(seconds, 2)
            entry["train_seconds"] = record.get("train_seconds")
        entry["mb"] = round((self.out / "zoo" / f"{stem}.pt").stat().st_size / 2 ** 20, 3)

    def train(self, spec: ModelSpec) -> None:
        from .zoo import get_model
        planned = self.estimator.planned_train(self.key_of(spec)[1])
        start = self.clock()
        # compiled here only: a chapter's kernel would recompile per model, mode and batch size
        with _env("FREQLIB_COMPILE", "1" if self.compile else None):
            model = get_model(spec.name, self.profile, self.device, **spec.kwargs)
        seconds = self.clock() - start
        self.estimator.record("train", planned, seconds)
        stem = f"{spec.name}-{self.profile}-{model.record['key']}"
        self.canonicalise(stem, seconds)
        self.did.append(f"trained {spec.label}: {seconds:.0f} s, test accuracy "
                        f"{model.record['test_accuracy']:.4f}, PGD-50 {model.record['pgd_linf_accuracy']:.4f}")
        self.log(self.did[-1])
        self._save_state()

    def carry_results(self) -> int:
        """Copy results computed in this call into the carry (they are small; kept all run long)."""
        from .results import results_dir
        return copy_missing(results_dir(), self.out / "results")

    # -------------------------------------------------------- chapters
    def chapter_paths(self) -> list[Path]:
        from .runner import chapters_in_toc, resolve_chapter
        if self.chapters:
            return [resolve_chapter(c, self.root) for c in self.chapters]
        return chapters_in_toc(self.root)

    def check_params(self) -> None:
        check_params(self.params, self.chapter_paths())

    def params_for(self, path: Path) -> dict:
        return params_for(self.params, path)

    def execute(self, path: Path) -> None:
        from .runner import execute_chapter
        from .zoo import zoo_dir
        stem = path.stem
        entry = self.state["chapters"].setdefault(stem, {})
        estimate = self.estimate_chapter(stem)
        planned = self.estimator.planned_chapter(stem)
        entry.update(status="running", started=self.clock(), estimate=round(estimate, 1),
                     call=len(self.state["calls"]))
        self._save_state()
        before = {p.name for p in zoo_dir().glob("*.json")} if zoo_dir().is_dir() else set()
        start = self.clock()
        params = {"profile": self.profile, "device": self.device, **self.params_for(path)}
        results_before = self._n_results()
        try:
            with _deadline_env(self._soft_deadline(stem)):
                target = execute_chapter(path, params, self.out / "executed", force=True, log=self.log)
        except Exception as exc:                                       # noqa: BLE001 (recorded, run goes on)
            self.carry_results()
            entry.pop("started", None)
            if getattr(exc, "ename", "") == "OutOfTime":
                self._stopped_between_results(stem, entry, self.clock() - start, self._n_results() - results_before)
                return
            entry.update(status="failed", error=str(exc)[:500], params=self.params_for(path))
            self._save_state()
            self.did.append(f"{stem}: FAILED ({str(exc)[:200]})")
            self.log(self.did[-1])
            return
        self.carry_results()
        wall = self.clock() - start
        self.estimator.record("chapter", planned, wall)
        self._learn_unplanned(stem, before)
        stderr = self._amend_run_card(target)
        total = wall + entry.get("spent_s", 0.0)
        entry.update(status="done", wall_s=round(wall, 1), total_s=round(total, 1),
                     file=str(target.relative_to(self.out)), params=self.params_for(path), stderr=stderr)
        entry.pop("started", None)
        entry.pop("killed", None)
        self._save_state()
        self.did.append(f"executed {stem}: {wall:.0f} s" + (f" ({total:.0f} s over {entry.get('attempts', 0) + 1} "
                                                            "calls)" if entry.get("spent_s") else "")
                        + (f"; {len(stderr)} output(s) on stderr (see below)" if stderr else ""))
        self.log(self.did[-1])

    def _soft_deadline(self, stem: str) -> float | None:
        """When the chapter must stop starting new results: the call's deadline less the
        margin and one (safe) step. None without a deadline, and for a chapter that is not
        resumable (stopping it would keep nothing: it starts only when it fits)."""
        if self.deadline == float("inf") or not self.resumable(stem):
            return None
        # in the kernel's clock (time.time), whatever clock this run keeps (tests use a fake one)
        return time.time() + (self.deadline - MARGIN_S - SAFETY * self.largest_step(stem) - self.clock())

    def _n_results(self) -> int:
        from .results import results_dir
        return len(list(results_dir().glob("*.pt"))) if results_dir().is_dir() else 0

    def _stopped_between_results(self, stem: str, entry: dict, wall: float, new: int) -> None:
        """The chapter stopped cleanly (OutOfTime) with ``new`` results stored: it is left
        ``partial`` and continues next call; an attempt without progress doubles as a stall."""
        entry.update(status="partial", attempts=entry.get("attempts", 0) + 1,
                     spent_s=round(entry.get("spent_s", 0.0) + wall, 1), results=entry.get("results", 0) + new)
        if new == 0:
            entry["stalled"] = entry.get("stalled", 0) + 1
        self._save_state()
        self.did.append(f"{stem}: stopped between results after {wall:.0f} s ({new} new result(s) stored); "
                        "the next call continues")
        self.log(self.did[-1])

    def spec_from_record(self, rec: dict) -> ModelSpec | None:
        """The (name, overrides) that reproduce a zoo record's key, or None (a synthetic
        data set, or code changed since it was trained)."""
        from .profiles import RECIPES, recipe_config
        cfg = rec["config"]
        fixed = {} if rec["name"] in RECIPES else {"perturbation": cfg["perturbation"]}
        base = recipe_config(rec["name"], self.profile, **fixed).to_dict()
        overrides = {**{k: v for k, v in cfg.items() if base.get(k) != v}, **fixed}
        spec = ModelSpec.make(rec["name"], **overrides)
        try:
            return spec if self.key_of(spec)[0] == rec["key"] else None
        except Exception:                                              # noqa: BLE001 (unknown recipe etc.)
            return None

    def _learn_unplanned(self, stem: str, before: set) -> None:
        """Models the chapter trained itself: canonicalise and carry them, and plan them next time."""
        from .zoo import zoo_dir
        # compared by zoo key: a spec rebuilt from a record spells its overrides its own way
        # (chapter 2's ResNet-18 gets lr, momentum, ... from ARCH_SETTINGS), the key is the model
        by_ref = {self.key_of(r)[0] for r in self.by_ref(stem)}
        planned = {self.key_of(r)[0] for r in plan_for(stem, self.plan)}
        for rec_path in sorted(zoo_dir().glob("*.json")):
            if rec_path.name in before:
                continue
            rec = json.loads(rec_path.read_text())
            if rec.get("profile") != self.profile or not rec_path.with_suffix(".pt").is_file():
                continue
            spec = self.spec_from_record(rec)
            if spec is None:
                continue
            if rec["key"] in by_ref:
                continue                    # read by reference: its results are carried, not the model
            self.canonicalise(rec_path.stem, rec.get("train_seconds"))
            learned = self.state["learned"].setdefault(stem, [])
            if [spec.name, spec.overrides] not in learned and rec["key"] not in planned:
                learned.append([spec.name, spec.overrides])
                self.log(f"{stem} trained {spec.label} itself (not in the plan): planned up front from now on")

    def _amend_run_card(self, target: Path) -> list[str]:
        """Add the device's name, the training seeds and the call to the run card;
        return the notebook's stderr outputs (:func:`freqlib.runner.stderr_outputs`)."""
        import nbformat
        from .notebooks import read_glue
        from .runner import stderr_outputs, training_seeds
        glued = read_glue(target)
        extra = {"device name": device_name(self.device),
                 "training seeds": training_seeds(glued),
                 "paper-run call": f"{len(self.state['calls'])} (deadline {time.strftime('%H:%M:%S', time.gmtime(self.deadline)) if self.deadline != float('inf') else 'none'} UTC)"}
        commit = (self.out / "source-commit.txt")
        nb = nbformat.read(target, as_version=4)
        meta = nb.metadata.setdefault("freqlib", {})
        card = meta.setdefault("run_card", {})
        if commit.is_file() and str(card.get("git commit", "unknown")).startswith(("unknown", "uncommitted")):
            extra["git commit"] = commit.read_text().strip()
        card.update(extra)
        for cell in nb.cells:
            if "run-card" in cell.get("metadata", {}).get("tags", []):
                lines = [ln for ln in cell.source.splitlines()
                         if not any(ln.startswith(f"| {k} |") for k in extra)]
                end = max(i for i, ln in enumerate(lines) if ln.strip() == ":::")
                lines[end:end] = [f"| {k} | {v} |" for k, v in extra.items()]
                cell.source = "\n".join(lines)
        with atomic_path(target, suffix=".ipynb") as tmp:
            nbformat.write(nb, tmp)
        return stderr_outputs(nb)

    def _rerun_paths(self) -> list[Path]:
        """The chapters ``rerun`` names; one that is not in this run stops the call."""
        paths = self.chapter_paths()
        chosen = []
        for name in self.rerun or []:
            match = [p for p in paths if p.stem == name or p.stem.startswith(str(name))]
            if len(match) != 1:
                raise ValueError(f"--rerun {name}: {'no chapter' if not match else 'several chapters'} of this run "
                                 f"matches; use one of {', '.join(p.stem[:2] for p in paths)}")
            chosen += match
        return chosen

    # ------------------------------------------------------------ loop
    def pending(self, failed: bool | None = None) -> list[Path]:
        """Chapters not done (failed ones only with ``retry_failed``: a failure is a bug
        to fix, and repeating it costs GPU time)."""
        failed = self.retry_failed if failed is None else failed
        skip = ("done",) if failed else ("done", "failed")
        return [p for p in self.chapter_paths() if self.state["chapters"].get(p.stem, {}).get("status") not in skip]

    def run(self) -> int:
        """One call: returns 0 when the book is done, 3 when chapters are left, 1 on a failure."""
        import torch
        self.check_params()
        rerun = self._rerun_paths()
        if self.deterministic:
            os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
            torch.use_deterministic_algorithms(True, warn_only=True)
        self.out.mkdir(parents=True, exist_ok=True)
        for stem, entry in self.state["chapters"].items():      # an earlier call died inside it
            if entry.get("status") == "running":
                entry.update(status="killed", killed=entry.get("killed", 0) + 1)
        for path in self.chapter_paths():
            entry, asked = self.state["chapters"].get(path.stem, {}), self.params_for(path)
            if entry.get("status") in ("done", "failed") and entry.get("params", {}) != asked:
                # e.g. a short session ran -p seeds=1, this one the full seeds: the chapter's
                # output would not match what this call asks; its stored results are reused
                self.log(f"{path.stem}: executed with parameters {entry.get('params', {})}, this call asks "
                         f"{asked}: it runs again")
                entry.update(status="stale")
                for k in ("wall_s", "total_s", "spent_s", "error"):   # timings of other settings mislead
                    entry.pop(k, None)
        for path in rerun:
            # a fix after the chapter ran (its stored results and models are reused)
            self.log(f"{path.stem}: executed again (--rerun)")
            entry = self.state["chapters"].setdefault(path.stem, {})
            entry.update(status="stale")
            for k in ("wall_s", "total_s", "spent_s", "error", "stderr"):
                entry.pop(k, None)
        self.state["options"] = {"chapters": self.chapters, "carry_mb": self.carry_mb, "params": self.params}
        call = {"started": round(self.clock(), 1), "device": device_name(self.device),
                "deadline": None if self.deadline == float("inf") else round(self.deadline, 1)}
        self.state["calls"].append(call)
        restored = self.restore()
        if restored:
            self.log(f"restored {restored} carried checkpoint(s) into the zoo")
        self._save_state()
        call_budget = self.deadline - self.clock() - MARGIN_S
        for path in self.pending():
            stem = path.stem
            missing = [s for s in self.needs(stem) if not s.by_ref and not self.in_zoo(s)]
            broken = next((self.known_failure(s) for s in missing if self.known_failure(s)), None)
            if broken:
                self._fail(stem, broken)
                continue
            t_models = sum(self.estimate_train(s) for s in missing)
            t_chapter = self.estimate_chapter(stem)
            # a resumable chapter needs only room for one step after its models: it stops between results
            t_after = self.largest_step(stem) if self.resumable(stem) else t_chapter
            if not self.fits(t_models + t_after):
                never = SAFETY * (t_models + t_after) > call_budget
                what = (f"one step ~{t_after:.0f} s (resumable)" if t_after < t_chapter
                        else f"chapter ~{t_chapter:.0f} s")
                why = (f"needs ~{t_models + t_after:.0f} s ({len(missing)} model(s) ~{t_models:.0f} s + "
                       f"{what}), {max(0.0, self.remaining()):.0f} s left")
                if never:
                    why += ("; more than a whole call: shrink its plan (paper-run --plan), or train its models "
                            "ahead with --split-groups on a machine that stays warm between calls")
                    if self.split_groups:
                        for spec in missing:
                            if not self.in_zoo(spec) and self.fits(self.estimate_train(spec)):
                                if not self._train_or_fail(spec, stem):
                                    break
                self.left.append((stem, why))
                continue
            stopped = False
            for spec in missing:
                if self.in_zoo(spec):               # the same model was listed twice
                    continue
                if not self.fits(self.estimate_train(spec) + t_after):
                    stopped = True
                    break
                if not self._train_or_fail(spec, stem):
                    stopped = True
                    break
            if self.state["chapters"].get(stem, {}).get("status") == "failed":
                continue
            if stopped or not self.fits(t_after):
                self.left.append((stem, "its models took longer than planned; chapter left for the next call"))
                continue
            if t_after < t_chapter and not self.fits(t_chapter):
                self.log(f"{stem}: ~{t_chapter:.0f} s left to do, {max(0.0, self.remaining()):.0f} s in this call: "
                         "starting it to stop between stored results")
            self.execute(path)
        self._attempt_oversized()
        self._prefill()
        self.prune()
        call.update(ended=round(self.clock(), 1), did=self.did, left=[f"{s}: {r}" for s, r in self.left])
        self._save_state()
        self.write_status()
        if any(e.get("status") == "failed" for e in self.state["chapters"].values()):
            return 1
        return 3 if self.pending() else 0

    def _attempt_oversized(self) -> None:
        """When nothing else could run, start a chapter whose estimate exceeds a whole call
        but whose models are all there, once: estimates are uncertain, and never starting
        it wastes every later call too. If the call is killed inside it, the next call
        marks it killed and it is not attempted again this way."""
        if self.did:
            return
        for path in self.pending():
            entry = self.state["chapters"].get(path.stem, {})
            ready = all(self.in_zoo(s) for s in self.needs(path.stem) if not s.by_ref)
            if ready and (self.force_next or not (entry.get("killed") or entry.get("oversized_attempt"))):
                self.state["chapters"].setdefault(path.stem, entry)["oversized_attempt"] = True
                self.left = [(s, r) for s, r in self.left if s != path.stem]
                self.log(f"{path.stem}: estimated ~{self.estimate_chapter(path.stem):.0f} s, more than this call "
                         f"has ({max(0.0, self.remaining()):.0f} s); nothing else can run, so it starts once anyway")
                self.execute(path)
                return

    def known_failure(self, spec: ModelSpec) -> str | None:
        """The error of an earlier attempt to train ``spec`` (not retried without ``retry_failed``:
        a training that raised will raise again, and each attempt costs GPU time)."""
        key = self.key_of(spec)[0]
        entry = self.state["models"].get(key, {})
        return None if self.retry_failed and key not in self.failed_now else entry.get("failed")

    def _fail(self, stem: str, msg: str) -> None:
        self.state["chapters"].setdefault(stem, {}).update(status="failed", error=msg)
        self._save_state()
        self.did.append(f"{stem}: FAILED ({msg})")
        self.log(self.did[-1])

    def _train_or_fail(self, spec: ModelSpec, stem: str) -> bool:
        """Train ``spec``; on an error remember it and mark chapter ``stem`` failed (the call goes on)."""
        known = self.known_failure(spec)
        if known:
            self._fail(stem, known)
            return False
        try:
            self.train(spec)
            return True
        except Exception as exc:                                       # noqa: BLE001 (recorded)
            msg = f"training {spec.label} failed: {type(exc).__name__}: {str(exc)[:300]}"
            key = self.key_of(spec)[0]
            self.state["models"].setdefault(key, {"stem": self.stem_of(spec), "name": spec.name})["failed"] = msg
            self.failed_now.add(key)                # at most one attempt per call, also with retry_failed
            self._fail(stem, msg)
            return False

    def _prefill(self) -> None:
        """With time left, train models of chapters still pending that will be carried."""
        budget = self.carry_mb * 2 ** 20 - carry_size(self.out)
        for path in self.pending():
            for spec in self.needs(path.stem):
                if spec.by_ref or self.in_zoo(spec) or self.known_failure(spec):
                    continue
                est = self.estimate_train(spec)
                mb = self._expected_mb(spec)
                if not self.fits(est) or mb * 2 ** 20 > budget:
                    return
                if not self._train_or_fail(spec, path.stem):
                    return
                budget -= mb * 2 ** 20

    def _expected_mb(self, spec: ModelSpec) -> float:
        """bf16 size of a model's checkpoint, from a built copy of it."""
        from .models import build_model
        cfg = self.key_of(spec)[1]
        model = build_model(cfg["arch"], cfg["widths"], stem=cfg["stem"] or None)
        return sum(v.numel() * (2 if v.is_floating_point() and v.ndim >= 2 else v.element_size())
                   for v in model.state_dict().values()) / 2 ** 20

    def prune(self) -> None:
        """Keep in the carry only models still needed, dearest to retrain per MB first, within carry_mb."""
        needed: dict[str, ModelSpec] = {}
        for path in self.pending():
            for spec in self.needs(path.stem):
                if not spec.by_ref:
                    needed.setdefault(self.stem_of(spec), spec)
        files = sorted((self.out / "zoo").glob("*.pt"))
        results = sum(p.stat().st_size for p in (self.out / "results").glob("*.pt"))
        models = {e["stem"]: e for e in self.state["models"].values() if "stem" in e}

        def value(p: Path) -> float:
            e = models.get(p.stem, {})
            return (e.get("seconds") or 1.0) / max(p.stat().st_size / 2 ** 20, 1e-3)
        keep_bytes = 0
        for p in sorted(files, key=value, reverse=True):
            size = p.stat().st_size
            if p.stem in needed and results + keep_bytes + size <= self.carry_mb * 2 ** 20:
                keep_bytes += size
                continue
            p.unlink()
            why = "not needed any more" if p.stem not in needed else f"over the carry limit of {self.carry_mb:g} MB"
            self.log(f"carry: dropped {p.stem} ({why})")
        self.log(f"carry: {keep_bytes / 2 ** 20:.1f} MB of zoo checkpoints and {results / 2 ** 20:.1f} MB of results "
                 f"({self.carry_mb:g} MB allowed)")

    # ---------------------------------------------------------- report
    def write_status(self) -> str:
        lines = [f"# paper-run: profile {self.profile} on {device_name(self.device)}", ""]
        lines += ["| chapter | status | wall time | over calls | call |", "|---|---|---|---|---|"]
        for p in self.chapter_paths():
            e = self.state["chapters"].get(p.stem, {})
            over = (f"{e.get('total_s', e.get('spent_s'))} s in {e.get('attempts', 0) + (e.get('status') == 'done')} "
                    f"calls, {e.get('results', 0)} results stored" if e.get("spent_s") else "—")
            lines.append(f"| {p.stem} | {e.get('status', 'pending')} | "
                         f"{str(e.get('wall_s', '—')) + ' s' if e.get('wall_s') else '—'} | {over} | {e.get('call', '—')} |")
        trained = [e for e in self.state["models"].values() if e.get("fingerprint")]
        failed = [e["stem"] for e in self.state["models"].values() if e.get("failed")]
        lines += ["", f"zoo models trained: {len(trained)}; carried: "
                      f"{len(list((self.out / 'zoo').glob('*.pt')))} checkpoints and "
                      f"{len(list((self.out / 'results').glob('*.pt')))} results ({carry_size(self.out) / 2 ** 20:.1f} MB)"]
        if failed:
            lines.append(f"models whose training failed (not retried without --retry-failed): {', '.join(failed)}")
        if self.did:
            lines += ["", "## This call", *[f"- {d}" for d in self.did]]
        if self.left:
            lines += ["", "## Left for the next call", *[f"- {s}: {r}" for s, r in self.left]]
        noisy = [(p.stem, e["stderr"]) for p in self.chapter_paths()
                 if (e := self.state["chapters"].get(p.stem, {})).get("status") == "done" and e.get("stderr")]
        if noisy:
            lines += ["", "## Stderr on executed pages (readers see it; the site check refuses it)",
                      *[f"- {stem} {line}" for stem, found in noisy for line in found[:5]],
                      "", "Fix the cause, then execute those chapters again: "
                      f"`--rerun {' '.join(stem[:2] for stem, _ in noisy)}`"]
        differs = [e["stem"] for e in self.state["models"].values() if e.get("retrain_differs")]
        if differs:
            lines += ["", "Retrained with different weights (non-deterministic kernels): " + ", ".join(differs)]
        text = "\n".join(lines) + "\n"
        atomic_write_text(self.out / "status.md", text)
        self.log(text)
        return text


def device_name(device: str) -> str:
    import torch
    if str(device).startswith("cuda"):
        return torch.cuda.get_device_name(torch.device(device))
    return f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"



# -------------------------------------------------------------------- CLI
def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be a number, got {text!r}") from None


def _seconds(text: str) -> float:
    """``--budget-s``: a positive number (0 would read as "no budget", a negative one as none left)."""
    value = _number(text)
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be a number of seconds > 0, got {text}; leave it out to run "
                                         "until the book is done")
    return value


def _megabytes(text: str) -> float:
    """``--carry-mb``: zero or more MiB (0 carries no checkpoint; models are retrained each call)."""
    value = _number(text)
    if not value >= 0:
        raise argparse.ArgumentTypeError(f"must be a number of MiB >= 0, got {text}")
    return value


def add_arguments(p) -> None:
    """The ``paper-run`` sub-command's options (kept here, so __main__ stays one line)."""
    p.add_argument("--out", type=Path, default=Path(".carry/run"), help="run folder carried between calls")
    p.add_argument("--budget-s", type=_seconds, default=None, help="seconds this call may take (from its start)")
    p.add_argument("--deadline", type=float, default=None, help="Unix time by which the call must have stopped")
    p.add_argument("--profile", default="paper")
    p.add_argument("--device", default="auto")
    p.add_argument("--chapters", nargs="*", default=None, help="chapter prefixes (default: the book's)")
    p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE", help="chapter parameter")
    p.add_argument("--carry-mb", type=_megabytes, default=None,
                   help=f"zoo MiB carried between calls (default: OUT/carry-mb.txt, else {CARRY_MB:g})")
    p.add_argument("--compile", action="store_true",
                   help="FREQLIB_COMPILE=1 for this process's zoo trainings: torch.compile airbench on CUDA")
    p.add_argument("--no-deterministic", action="store_true", help="allow non-deterministic kernels in training")
    p.add_argument("--retry-failed", action="store_true", help="execute chapters that failed before again")
    p.add_argument("--force-next", action="store_true",
                   help="when nothing fits, start the next ready chapter even if it was tried before")
    p.add_argument("--rerun", nargs="+", default=None, metavar="CHAPTER",
                   help="execute these chapters again although done (after a fix; stored results are reused)")
    p.add_argument("--split-groups", action="store_true",
                   help="train models of a chapter too big for one call anyway (useful on a warm machine)")
    p.add_argument("--planned", type=Path, default=None, help="JSON replacing the planned timings")
    p.add_argument("--plan", action="store_true", help="print the plan with planned seconds and sizes, then exit")
    p.add_argument("--pack", type=Path, default=None, metavar="DEST", help="pack OUT into DEST (device side), exit")
    p.add_argument("--extra", nargs="*", default=["bench/results.json", "_build/failed"],
                   help="files packed beside OUT")
    p.add_argument("--unpack", type=Path, default=None, metavar="FILES_AT",
                   help="put a packed call back into OUT (here), exit")
    p.add_argument("--results", type=Path, default=Path(".carry/results"),
                   help="where --unpack moves executed notebooks")
    p.add_argument("--bench", type=Path, default=Path("bench/results.json"), help="where --unpack merges bench results")
    p.add_argument("--stage", action="store_true", help="stage the carry folder here (make gpu-carry), exit")
    p.add_argument("--data-src", type=Path, default=None, help="folder with the data files (--stage)")


def cli(args, started: float | None = None) -> int:
    from .runner import parse_assignments
    if args.stage:
        stage_carry(data_src=args.data_src)
        return 0
    if args.unpack:
        unpack(args.unpack, args.out, args.results, args.bench)
        return 0
    if args.plan:
        from .runner import chapters_in_toc, resolve_chapter
        params = parse_assignments(args.param)
        check_params(params, [resolve_chapter(c, repo_root()) for c in args.chapters] if args.chapters
                     else chapters_in_toc())
        print(plan_table(args.profile if args.profile != "auto" else "paper",
                         "cuda" if args.device == "auto" else args.device, params=params))
        return 0
    carry_mb = args.carry_mb
    if carry_mb is None:
        f = args.out / "carry-mb.txt"
        carry_mb = float(os.environ.get("FREQLIB_CARRY_MB") or (f.read_text().strip() if f.is_file() else CARRY_MB))
    planned = json.loads(args.planned.read_text()) if args.planned else None
    if args.pack:
        state = json.loads((args.out / "state.json").read_text()) if (args.out / "state.json").is_file() else {}
        if state:
            opts = state.get("options", {})
            run = PaperRun(args.out, profile=state["profile"], device="cpu", chapters=opts.get("chapters"),
                           carry_mb=opts.get("carry_mb", carry_mb), log=lambda *a: None)
            try:
                run.prune()   # a call killed before its end may have trained past the carry limit
            except Exception as exc:                                   # noqa: BLE001 (the pack matters more)
                print(f"note: carry not pruned ({first_line(exc)}); packing as it is")
        written = pack(args.out, args.pack, tuple(args.extra))
        print(f"packed {args.out} into {len(written)} file(s) in {args.pack}: "
              + ", ".join(f"{p.name} {p.stat().st_size / 2 ** 20:.1f} MiB" for p in written))
        return 0
    started = float(os.environ.get("FREQLIB_CALL_START", started or time.time()))
    deadline = min(args.deadline or float("inf"), started + args.budget_s if args.budget_s else float("inf"))
    if deadline <= time.time():
        raise SystemExit(f"error: the call's deadline passed {time.time() - deadline:.0f} s ago (--deadline or "
                         "--budget-s counted from FREQLIB_CALL_START); give a later one")
    if deadline == float("inf"):
        print("note: no --budget-s or --deadline: running until the book is done", flush=True)
    run = PaperRun(args.out, profile=args.profile, device=args.device, chapters=args.chapters,
                   params=parse_assignments(args.param), carry_mb=carry_mb, deadline=deadline, planned=planned,
                   deterministic=not args.no_deterministic, compile=args.compile, retry_failed=args.retry_failed,
                   split_groups=args.split_groups, force_next=args.force_next, rerun=args.rerun)
    return run.run()
