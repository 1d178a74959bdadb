"""Sweeps: a grid of (chapter × profile × seed × chapter parameters), each
point an independent papermill job on submitit, collected into per-claim
tables pooled over training seeds.

    python -m freqlib sweep 01 --profile smoke --seed 0 1 2          # local executor
    python -m freqlib sweep 01 --seed 0 1 2 -p r_small=4 -p r_small=8  # a repeated -p is a grid axis
    python -m freqlib sweep 01 --profile paper --seed 0 1 2 --cluster slurm --partition gpu --gpus 1
    python -m freqlib sweep --collect 01-smoke-1a2b3c4d                # pooled tables again

Every combination is validated with the runner's checks before anything is
submitted. A chapter with a ``seeds`` parameter gets ``seeds=1`` (one training
seed per job) unless the grid sets it. Layout of ``_build/sweeps/<id>/``:

``sweep.json``
    the grid and its jobs (the id is a hash of the grid, so running the same
    sweep again finds it and re-runs only its failed, missing or stale jobs).
``jobs/<job>/chapters/NN_name.ipynb``
    the executed notebook, with ``result.json`` (its glued values: claims,
    deviations, run card) or ``error.json`` (chapter, parameters, error).
``submitit/``
    submitit's pickles and logs (stdout/stderr of every job).
``pooled.json``, ``pooled.md``
    per claim: the verdict of every seed, the numbers pooled over seeds with
    :func:`freqlib.verdicts.pool`, and the verdict the claim's criteria give on
    the pooled intervals. The ledger and :func:`pooled_table` read these.

Scheduling is submitit's: its local executor (one process per job) or Slurm
(one job array, ``--partition``/``--time``/``--gpus``/``--cpus`` passed
through). submitit's local executor starts every job it is given at once, so
the sweep hands it at most ``parallel`` jobs at a time (default: one per core
with one thread each), like Slurm's ``--array=...%N`` limit.

Reading pooled results back (:func:`pooled_table` for chapters, the ledger's
:func:`pooled_for_run`) lives in :mod:`freqlib.pooled` and is re-exported here.
"""
from __future__ import annotations

import datetime
import hashlib
import itertools
import json
import os
import re
import subprocess
import time
from pathlib import Path

from .io import atomic_write_json, atomic_write_text
from .pooled import SWEEPS, _fmt_params, pooled_for_run, pooled_table, sweeps_dir  # noqa: F401 (re-exported)
from .runner import (ParameterError, _source_fingerprint, chapter_parameters, execute_chapter,
                     resolve_chapter, resolved_profile, validate_parameters)

__all__ = ["SWEEPS", "plan", "default_id", "run_sweep", "run_job", "job_states", "collect",
           "pooled_table", "pooled_for_run", "sweeps_dir", "CLUSTERS"]

CLUSTERS = ("local", "slurm")
RESERVED = ("profile", "seed", "device")      # grid axes of their own
POLL_S = 1.0


# ------------------------------------------------------------------ planning
def _chapter(name: str) -> Path:
    """A chapter of the ToC by name/prefix, or a notebook file (tests, your own notebooks)."""
    path = Path(name)
    if path.suffix == ".ipynb" and path.is_file():
        return path.resolve()
    return resolve_chapter(name)


def _slug(params: dict) -> str:
    """A folder-name form of ``params``; a hash where that form would lose information."""
    raw = ",".join(f"{k}={v}" for k, v in sorted(params.items()))
    text = re.sub(r"[^A-Za-z0-9_.=,+-]+", "_", raw)
    if text == raw and len(text) <= 60:
        return text
    return text[:40] + "-" + hashlib.sha256(raw.encode()).hexdigest()[:8]


def plan(chapters: list[str], profiles: list[str] = ("auto",), seeds: list[int] = (0,),
         grid: dict[str, list] | None = None, device: str = "auto") -> list[dict]:
    """Every job of the grid, validated (raises :class:`ParameterError` on the first bad one)."""
    if not chapters:
        raise ParameterError("a sweep needs at least one chapter (e.g. `sweep 01 --seed 0 1 2`)")
    grid = dict(grid or {})
    for name in grid:
        if name in RESERVED:
            raise ParameterError(f"set {name} with --{name}, not -p {name}=...")
    jobs, seen = [], set()
    for name in chapters:
        path = _chapter(name)
        # one training seed per job (pooled at collect), unless the grid says otherwise
        fixed = {"seeds": 1} if "seeds" in chapter_parameters(path) and "seeds" not in grid else {}
        for profile, seed in itertools.product(profiles, seeds):
            for values in itertools.product(*grid.values()):
                extra = dict(zip(grid, values))
                params = {"profile": profile, "device": device, "seed": seed, **extra, **fixed}
                validate_parameters(path, params)       # the runner's checks, before anything runs
                params["profile"] = resolved_profile(params)
                ident = json.dumps([str(path), params], sort_keys=True, default=str)
                if ident in seen:                      # the same value listed twice
                    continue
                seen.add(ident)
                key = "--".join([path.stem, params["profile"], f"seed{seed}"] + ([_slug(extra)] if extra else []))
                jobs.append({"key": key, "chapter": str(path), "stem": path.stem, "params": params})
    return jobs


def default_id(jobs: list[dict]) -> str:
    """``<chapters>-<profiles>-<hash of the grid>``: the same grid gives the same id."""
    stems = sorted({j["stem"].split("_")[0] for j in jobs})
    profiles = sorted({j["params"]["profile"] for j in jobs})
    blob = json.dumps([[j["stem"], j["params"]] for j in jobs], sort_keys=True, default=str)
    return f"{'+'.join(stems)}-{'+'.join(profiles)}-{hashlib.sha256(blob.encode()).hexdigest()[:8]}"


# ------------------------------------------------------------------- a job
def _job_dir(sweep: Path, job: dict) -> Path:
    return sweep / "jobs" / job["key"]


def _jsonable(value):
    try:
        json.dumps(value)
        return value
    except TypeError:
        return str(value)


def run_job(job: dict, sweep: str) -> dict:
    """Execute one job (in a submitit worker); writes ``result.json`` or ``error.json``."""
    from .notebooks import read_glue, run_card
    out = _job_dir(Path(sweep), job)
    out.mkdir(parents=True, exist_ok=True)
    for name in ("result.json", "error.json"):
        (out / name).unlink(missing_ok=True)
    if job.get("threads"):
        os.environ["FREQLIB_THREADS"] = str(job["threads"])
    path = Path(job["chapter"])
    try:
        done = execute_chapter(path, job["params"], out, failed_dir=out / "failed", log=print)
    except Exception as exc:
        error = {"status": "failed", "key": job["key"], "chapter": job["stem"], "params": job["params"],
                 "error": (str(exc).strip().splitlines() or [type(exc).__name__])[0]}
        atomic_write_json(out / "error.json", error)
        raise
    import nbformat
    glued = read_glue(done)
    meta = nbformat.read(done, as_version=4).metadata.get("freqlib", {})
    result = {"status": "ok", "key": job["key"], "chapter": job["stem"], "params": job["params"],
              "notebook": str(done.relative_to(out)), "fingerprint": meta.get("fingerprint"),
              "run_card": run_card(done), "wall_seconds": meta.get("wall_seconds"),
              "claims": json.loads(glued["claims"]) if "claims" in glued else [],
              "deviations": json.loads(glued["deviations"]) if "deviations" in glued else None,
              "glued": {k: _jsonable(v) for k, v in glued.items() if k not in ("claims", "deviations")}}
    atomic_write_json(out / "result.json", result)
    return {"key": job["key"], "status": "ok"}


def job_states(sweep: Path, jobs: list[dict]) -> dict[str, tuple[str, str]]:
    """``key -> (state, detail)``: ``ok``, ``failed`` (with the error), ``stale``
    (done with other code, data or lock than now) or ``missing``."""
    states = {}
    for job in jobs:
        d = _job_dir(sweep, job)
        if (d / "result.json").is_file():
            res = json.loads((d / "result.json").read_text())
            path = Path(job["chapter"])
            current = _source_fingerprint(path, validate_parameters(path, job["params"])) if path.is_file() else None
            states[job["key"]] = ("ok", "") if res.get("fingerprint") == current else \
                ("stale", "executed with other code, data or lock than now")
        elif (d / "error.json").is_file():
            states[job["key"]] = ("failed", json.loads((d / "error.json").read_text())["error"])
        else:
            states[job["key"]] = ("missing", "")
    return states


# -------------------------------------------------------------- submission
def _executor(sweep: Path, cluster: str, options: dict):
    import submitit
    if cluster not in CLUSTERS:
        raise ParameterError(f"cluster={cluster!r} is not one of {', '.join(CLUSTERS)}")
    ex = submitit.AutoExecutor(folder=str(sweep / "submitit" / "%j"), cluster=cluster)
    params = {"timeout_min": int(options.get("time") or 24 * 60), "name": f"freqlib-{sweep.name}"}
    if cluster == "slurm":
        params.update(slurm_array_parallelism=int(options.get("parallel") or 256),
                      cpus_per_task=int(options.get("cpus") or 1))
        if options.get("partition"):
            params["slurm_partition"] = options["partition"]
        if options.get("gpus"):
            params["gpus_per_node"] = int(options["gpus"])
        if options.get("slurm_args"):
            params["slurm_additional_parameters"] = dict(options["slurm_args"])
    elif options.get("gpus"):
        params["gpus_per_node"] = int(options["gpus"])
    ex.update_parameters(**params)
    return ex


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def _in_slurm_queue(task_ids: list[str]) -> set[str]:
    """Array tasks (``123_4``) Slurm still lists. submitit asks ``sacct``, which a
    Slurm without accounting cannot answer; a task that left the queue without a
    result crashed (killed, out of time, node lost)."""
    arrays = sorted({t.split("_")[0] for t in task_ids})
    try:
        out = subprocess.run(["squeue", "-h", "-r", "-o", "%i", "-j", ",".join(arrays)], capture_output=True,
                             text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return set(task_ids)
    return set(out.stdout.split()) if out.returncode == 0 else set(task_ids)


def _finished(running: list, cluster: str) -> list:
    """Jobs of ``running`` that have ended. On Slurm: a result pickle, or gone from the
    queue (asking ``squeue`` rather than submitit's ``sacct``, which needs accounting)."""
    if cluster == "local":
        return [j for j in running if j.done()]
    queued = _in_slurm_queue([j.job_id for j in running])
    return [j for j in running if j.paths.result_pickle.exists() or j.job_id not in queued]


def _submit_and_wait(sweep: Path, todo: list[dict], cluster: str, options: dict, wait: bool, log) -> dict:
    """Submit ``todo``; with ``wait``, return ``key -> submitit error text`` for jobs that
    ended without a result or error file of their own."""
    ex = _executor(sweep, cluster, options)
    crashed: dict[str, str] = {}
    if cluster == "slurm":
        threads, parallel = int(options.get("cpus") or 1), 0
        todo = [dict(j, threads=threads) for j in todo]
        try:
            jobs = ex.map_array(run_job, todo, [str(sweep)] * len(todo))   # one job array
        except Exception as exc:   # sbatch said no: a partition, GPU or time limit it rejects
            lines = [l for l in str(exc).splitlines() if "error" in l.lower()] or [str(exc).strip()]
            raise ParameterError(f"Slurm refused the sweep's job array: {lines[0][:300]}") from None
        log(f"submitted Slurm job array {jobs[0].job_id.split('_')[0]} ({len(jobs)} tasks)")
        pending, running = [], list(zip(jobs, todo))
    else:
        parallel = max(1, int(options.get("parallel") or _cores()))
        threads = max(1, _cores() // parallel)
        pending, running = [dict(j, threads=threads) for j in todo], []
    if not wait:
        return crashed
    total = len(todo)
    try:
        _wait(sweep, ex, cluster, pending, running, parallel, total, crashed, log)
    except KeyboardInterrupt:            # do not leave jobs running behind an interrupted sweep
        for sub, _ in running:
            sub.cancel(check=False)
        raise
    return crashed


def _wait(sweep, ex, cluster, pending, running, parallel, total, crashed, log) -> None:
    finished = 0
    while pending or running:
        while pending and len(running) < parallel:     # local only: submitit has no queue of its own
            job = pending.pop(0)
            running.append((ex.submit(run_job, job, str(sweep)), job))
        ended = _finished([j for j, _ in running], cluster)
        for sub, job in [(s, j) for s, j in running if s in ended]:
            finished += 1
            d = _job_dir(sweep, job)
            if (d / "result.json").is_file():
                log(f"[{finished}/{total}] {job['key']}: ok")
            else:
                err = (json.loads((d / "error.json").read_text())["error"] if (d / "error.json").is_file()
                       else _submitit_error(sub))
                crashed[job["key"]] = err
                log(f"[{finished}/{total}] {job['key']}: FAILED: {err}")
        running[:] = [(s, j) for s, j in running if s not in ended]
        if pending or running:
            time.sleep(POLL_S)


def _submitit_error(job) -> str:
    try:
        exc = job.exception()
    except Exception as e:   # the job vanished (killed, node lost): say what submitit knows
        exc = e
    if exc is None:
        return "the job ended without writing a result"
    lines = [l for l in str(exc).strip().splitlines() if l.strip()]
    return lines[-1] if lines else type(exc).__name__


def run_sweep(chapters: list[str], profiles: list[str] = ("auto",), seeds: list[int] = (0,),
              grid: dict[str, list] | None = None, device: str = "auto", cluster: str = "local",
              options: dict | None = None, sweep_id: str | None = None, wait: bool = True,
              log=print) -> dict:
    """Plan, submit what is not done yet, wait, and collect. Returns the collected summary
    (or, with ``wait=False`` on Slurm, the sweep's id and jobs)."""
    options = dict(options or {})
    if cluster not in CLUSTERS:
        raise ParameterError(f"--cluster {cluster!r} is not one of {', '.join(CLUSTERS)}")
    if not wait and cluster == "local":
        raise ParameterError("--no-wait needs --cluster slurm: local jobs end with this process")
    jobs = plan(chapters, profiles, seeds, grid, device)
    sid = sweep_id or default_id(jobs)
    if not re.fullmatch(r"[A-Za-z0-9_.+-]+", sid):
        raise ParameterError(f"sweep id {sid!r}: use letters, digits and _ . + - only")
    sweep = sweeps_dir() / sid
    spec_path = sweep / "sweep.json"
    if spec_path.is_file():
        old = json.loads(spec_path.read_text())
        if [j["key"] for j in old["jobs"]] != [j["key"] for j in jobs]:
            raise ParameterError(f"sweep {sid} exists with another grid; choose another --id")
    atomic_write_json(spec_path, {"id": sid, "cluster": cluster, "options": options, "jobs": jobs,
                                  "created": _now()})
    states = job_states(sweep, jobs)
    todo = [j for j in jobs if states[j["key"]][0] != "ok"]
    counts = {s: sum(v[0] == s for v in states.values()) for s in ("ok", "failed", "stale", "missing")}
    log(f"sweep {sid}: {len(jobs)} jobs ({', '.join(f'{v} {k}' for k, v in counts.items() if v)}); "
        f"running {len(todo)} on {cluster}")
    crashed = _submit_and_wait(sweep, todo, cluster, options, wait, log) if todo else {}
    if not wait:
        return {"id": sid, "jobs": len(jobs), "submitted": len(todo)}
    for key, err in crashed.items():   # a job killed before it could write its own error.json
        d = sweep / "jobs" / key
        if not (d / "error.json").is_file() and not (d / "result.json").is_file():
            job = next(j for j in jobs if j["key"] == key)
            atomic_write_json(d / "error.json", {"status": "failed", "key": key, "chapter": job["stem"],
                                                 "params": job["params"], "error": err})
    return collect(sid, log=log)


# --------------------------------------------------------------- collecting
def _now() -> str:
    return datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _estimate(d: dict):
    from .verdicts import Estimate
    bounds = d.get("bounds")
    return Estimate(d["value"], d["low"], d["high"], d.get("over", "images"), d.get("n", 0),
                    bounds=None if bounds is None else tuple(bounds))


def _pool_claim(rows: list[tuple[int, dict]]) -> dict:
    """One claim over seeds: per-seed verdicts, pooled numbers, the pooled verdict."""
    from .verdicts import Criterion, pool, seeds_text, verdict
    seeds = [s for s, _ in rows]
    first = rows[0][1]
    names = [k for k in first.get("numbers", {}) if all(k in r.get("numbers", {}) for _, r in rows)]
    pooled = {k: pool([_estimate(r["numbers"][k]) for _, r in rows]) for k in names}
    rules = first.get("rules")
    if rules:
        # unit and labels are for display; claims JSON written before they existed has neither
        criteria = [Criterion(r["describe"], tuple(r["keys"]), above=r["above"], below=r["below"],
                              size=r.get("size", False), unit=r.get("unit", ""), scale=r.get("scale", 1.0),
                              labels=r.get("labels") or {k: k for k in r["keys"]}) for r in rules]
        try:
            states = [c.judge(pooled) for c in criteria]
            pooled_verdict = verdict(states)
        except KeyError as exc:
            states, pooled_verdict = [], f"not judged ({exc})"
    else:
        states, pooled_verdict = [], "not judged (the claims JSON has no rules)"
    per_seed = [r["verdict"] for _, r in rows]
    jpeg = {}
    for _, r in rows:
        for label, v in (r.get("variants") or {}).items():
            jpeg.setdefault(label, []).append(v.get("verdict") == r["verdict"] and not v.get("changed"))
    return {
        "claim": first["claim"], "paper": first.get("paper", ""), "statement": first.get("statement", ""),
        "paper's value": first.get("paper's value", ""), "seeds": seeds, "seed_verdicts": per_seed,
        "verdict": pooled_verdict, "states": states,
        "seeds_text": seeds_text(pooled_verdict, per_seed) if len(rows) > 1 else "1 seed",
        "numbers": {k: {**e.to_dict(), "text": e.fmt()} for k, e in pooled.items()},
        "criteria": [{"describe": c.describe, "needs": c.threshold_text, "state": s}
                     for c, s in zip(criteria if rules else [], states)],
        "jpeg_check": {label: f"same verdict in {sum(v)} of {len(v)} seeds" for label, v in jpeg.items()},
    }


def collect(sweep_id: str, log=print) -> dict:
    """Aggregate a sweep's jobs into ``pooled.json`` and ``pooled.md``; returns the summary."""
    sweep = sweeps_dir() / sweep_id
    if not (sweep / "sweep.json").is_file():
        known = ", ".join(sorted(p.name for p in sweeps_dir().glob("*") if (p / "sweep.json").is_file())) or "none"
        raise ParameterError(f"no sweep {sweep_id!r} under {sweeps_dir()}; known: {known}")
    spec = json.loads((sweep / "sweep.json").read_text())
    jobs = spec["jobs"]
    states = job_states(sweep, jobs)
    failures = []
    groups: dict[str, dict] = {}
    for job in jobs:
        state, detail = states[job["key"]]
        if state != "ok":
            failures.append({"key": job["key"], "chapter": job["stem"], "params": job["params"],
                             "state": state, "error": detail})
            continue
        res = json.loads((_job_dir(sweep, job) / "result.json").read_text())
        fixed = {k: v for k, v in job["params"].items() if k not in ("seed", "device")}
        gkey = json.dumps([job["stem"], fixed], sort_keys=True, default=str)
        g = groups.setdefault(gkey, {"chapter": job["stem"], "profile": job["params"]["profile"],
                                     "params": fixed, "claims": {}, "jobs": 0})
        g["jobs"] += 1
        for row in res["claims"]:
            g["claims"].setdefault(row["claim"], []).append((job["params"]["seed"], row))
    out_groups = []
    for g in groups.values():
        claims = [_pool_claim(sorted(rows, key=lambda t: t[0])) for rows in g["claims"].values()]
        out_groups.append({k: g[k] for k in ("chapter", "profile", "params", "jobs")} | {"claims": claims})
    summary = {"id": sweep_id, "collected": _now(), "jobs": len(jobs),
               "ok": len(jobs) - len(failures), "failures": failures, "groups": out_groups}
    atomic_write_json(sweep / "pooled.json", summary)
    atomic_write_text(sweep / "pooled.md", _markdown(summary))
    log(f"sweep {sweep_id}: {summary['ok']} of {len(jobs)} jobs ok; tables in {sweep / 'pooled.md'}")
    for f in failures:
        log(f"  {f['state'].upper()} {f['chapter']} {f['params']}: {f['error'] or 'no result yet'}")
    return summary


def _markdown(summary: dict) -> str:
    lines = [f"# Sweep {summary['id']}", "", f"Collected {summary['collected']}: {summary['ok']} of "
             f"{summary['jobs']} jobs ok.", ""]
    for g in summary["groups"]:
        lines += [f"## {g['chapter']} ({_fmt_params(g['params'])})", "", _claims_table(g["claims"]), ""]
    if summary["failures"]:
        lines += ["## Jobs without a result", "", "| job | chapter | parameters | state | error |",
                  "|---|---|---|---|---|"]
        for f in summary["failures"]:
            lines.append(f"| {f['key']} | {f['chapter']} | {_fmt_params(f['params'])} | {f['state']} | "
                         f"{(f['error'] or '—').replace('|', '/')} |")
    return "\n".join(lines) + "\n"


def _claims_table(claims: list[dict]) -> str:
    lines = ["| claim | pooled verdict | seeds | per-seed verdicts | pooled numbers | paper's value | JPEG check |",
             "|---|---|---|---|---|---|---|"]
    for c in claims:
        nums = "; ".join(f"{k} = {v['text']}" for k, v in c["numbers"].items())
        seeds = ", ".join(f"{s}: {v}" for s, v in zip(c["seeds"], c["seed_verdicts"]))
        jpeg = "; ".join(f"{k}: {v}" for k, v in c["jpeg_check"].items()) or "—"
        cells = [c["claim"], c["verdict"], c["seeds_text"], seeds, nums or "—", c["paper's value"], jpeg]
        lines.append("| " + " | ".join(str(x).replace("|", "/").replace("\n", " ") for x in cells) + " |")
    return "\n".join(lines)
