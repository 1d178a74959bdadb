"""Command line: ``python -m freqlib {run,build,sweep,zoo,report,screenshots} ...``.

Examples::

    python -m freqlib run 01 -p profile=quick -p n_images=256   # one chapter -> _build/executed/quick
    python -m freqlib build --profile quick                     # all chapters + site of one profile
    python -m freqlib build --executed results/paper            # site from committed runs
    python -m freqlib sweep 01 --profile smoke --seed 0 1 2     # seeds as parallel jobs (submitit)
    python -m freqlib sweep 01 --seed 0 1 2 --cluster slurm --partition gpu --gpus 1
    python -m freqlib sweep --collect 01-smoke-1a2b3c4d         # pooled tables of a sweep
    python -m freqlib zoo standard --profile quick              # train/cache one model
    python -m freqlib report linf_at --out report.html          # frequency report of a model
    python -m freqlib screenshots                               # PNGs of the built site for docs/
    python -m freqlib set-repository https://github.com/OWNER/REPO   # launch buttons, install cells
    python -m freqlib paper-run --budget-s 540 --out .carry/run # paper profile in resumable GPU calls
    python -m freqlib wheelhouse --dest .whl                    # wheels for the offline GPU machine
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

STARTED = time.time()   # paper-run's budget counts from here


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m freqlib", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    def common(p):
        p.add_argument("--profile", default=None, help="auto (default), smoke, quick or paper")
        p.add_argument("--device", default=None, help="auto (default), cpu, cuda")
        p.add_argument("--seed", type=int, default=None)
        p.add_argument("--seeds", type=int, default=None,
                       help="training seeds of a claim chapter (0: the chapter's default)")
        p.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                       help="a chapter parameter (repeatable)")
        p.add_argument("--force", action="store_true", help="execute even if unchanged")

    run = sub.add_parser("run", help="execute chapters into _build/executed")
    run.add_argument("chapters", nargs="*", help="chapter names or prefixes (default: all)")
    common(run)
    build = sub.add_parser("build", help="execute chapters, then build the site")
    build.add_argument("chapters", nargs="*", help="chapters to execute (default: all)")
    common(build)
    build.add_argument("--executed", type=Path, default=None,
                       help="build from these executed notebooks without executing (e.g. results/paper)")
    build.add_argument("--allow-mixed", action="store_true",
                       help="build even if the executed chapters mix profiles (the ledger says so)")
    _add_sweep_parser(sub)
    zoo = sub.add_parser("zoo", help="train (or load) zoo models")
    zoo.add_argument("names", nargs="+")
    zoo.add_argument("--profile", default="auto")
    zoo.add_argument("--device", default="auto")

    report = sub.add_parser("report", help="frequency report (HTML) of a zoo model or a checkpoint")
    report.add_argument("model", help="zoo name, freqlib checkpoint (.pt), torch.export program (.pt2) or TorchScript file")
    report.add_argument("--profile", default="quick",
                        help="smoke, quick (default), paper or auto: chapter 5's settings at that profile")
    report.add_argument("--device", default="auto")
    report.add_argument("--seed", type=int, default=0, help="seed of the heat map, mask and bootstrap (chapter 5's)")
    report.add_argument("--n-images", type=_positive_int, default=None,
                        help="test images analysed (default: the profile's, as chapter 5)")
    report.add_argument("--out", type=Path, default=None, help="HTML file (default: <model>-report.html)")
    shots = sub.add_parser("screenshots", help="screenshots of the built site into docs/")
    shots.add_argument("--html", type=Path, default=Path("_build/html"))
    shots.add_argument("--out", type=Path, default=Path("docs"))
    repo = sub.add_parser("set-repository", help="name the book's repository (_config.yml, install cells, "
                                                 "CITATION.cff); '' removes it")
    repo.add_argument("url", help="https://github.com/OWNER/REPO, or '' for none (no launch buttons)")
    repo.add_argument("--branch", default=None, help="branch launched on Binder/Colab (default: as in _config.yml)")
    # paper-run and wheelhouse: options live in their modules
    from . import paper_run, wheelhouse
    paper_run.add_arguments(sub.add_parser("paper-run", help="the paper profile in resumable, time-boxed GPU calls"))
    wheelhouse.add_arguments(sub.add_parser("wheelhouse", help="download the wheels the GPU machine lacks"))

    args = parser.parse_args(argv)
    import logging
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    logging.getLogger("papermill").setLevel(logging.INFO)  # streams cell output (progress) live
    from .data import DataUnavailableError
    from .runner import ChapterFailed, ParameterError, build_site, parse_assignments, run_chapters
    try:
        if args.command == "paper-run":
            return paper_run.cli(args, STARTED)
        if args.command == "wheelhouse":
            return wheelhouse.cli(args)
        if args.command == "zoo":
            from .profiles import resolve_profile
            from .zoo import get_model
            profile = resolve_profile(args.profile, args.device)
            for name in args.names:
                rec = get_model(name, profile, args.device).record
                print(f"{name} ({profile}): test accuracy {rec['test_accuracy']:.4f}, "
                      f"PGD accuracy {rec['pgd_linf_accuracy']:.4f}, {rec['train_seconds']:.0f} s on {rec['device']}")
            return 0
        if args.command == "report":
            return _report(args)
        if args.command == "sweep":
            return _sweep(args)
        if args.command == "set-repository":
            from .book import set_repository
            for path in set_repository(args.url, args.branch):
                print(f"wrote {path}")
            return 0
        if args.command == "screenshots":
            from .site import screenshot
            pages = {"landing.png": args.html / "intro.html"}
            chapter = sorted((args.html / "chapters").glob("01_*.html"))
            if chapter:
                pages["chapter.png"] = chapter[0]
            pages["bibliography.png"] = args.html / "bibliography.html"
            pages["api.png"] = args.html / "api" / "heatmap.html"
            for name, page in pages.items():
                print(screenshot(page, args.out / name, full_page=name == "landing.png",
                                 height=1300 if name == "api.png" else 1000))
            return 0
        params = parse_assignments(args.param)
        for key in ("profile", "device", "seed", "seeds"):
            if getattr(args, key) is not None:
                params[key] = getattr(args, key)
        if args.command == "run" or args.executed is None:
            run_chapters(args.chapters or None, params, force=args.force)
        if args.command == "build":
            build_site(args.executed, profile=params.get("profile"), allow_mixed=args.allow_mixed)
        return 0
    except (ParameterError, ChapterFailed, ValueError, FileNotFoundError, DataUnavailableError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _add_sweep_parser(sub) -> None:
    sw = sub.add_parser("sweep", help="a grid of chapter runs (profiles x seeds x parameters) on submitit",
                        description="Each grid point is an independent papermill job; results go to "
                                    "_build/sweeps/<id>/ and are pooled over seeds per claim. Running the "
                                    "same sweep again re-runs only failed, missing or stale jobs.")
    sw.add_argument("chapters", nargs="*", help="chapter names or prefixes, or notebook files")
    sw.add_argument("--profile", nargs="+", default=["auto"], help="one or more profiles (default: auto)")
    sw.add_argument("--seed", nargs="+", type=int, default=[0], help="seeds, one job each (default: 0)")
    sw.add_argument("--device", default="auto")
    sw.add_argument("-p", "--param", action="append", default=[], metavar="NAME=VALUE",
                    help="a chapter parameter; repeat a name to sweep over its values")
    sw.add_argument("--cluster", default="local", help="local (default: jobs in parallel on this machine) or slurm")
    sw.add_argument("--parallel", type=int, default=None,
                    help="jobs at once (local: default one per core; slurm: array limit)")
    sw.add_argument("--partition", default=None, help="Slurm partition")
    sw.add_argument("--time", type=int, default=None, help="minutes per job (default 1440)")
    sw.add_argument("--gpus", type=int, default=None, help="GPUs per job")
    sw.add_argument("--cpus", type=int, default=None, help="CPUs per Slurm job (default 1)")
    sw.add_argument("--slurm-arg", action="append", default=[], metavar="NAME=VALUE",
                    help="another sbatch option, e.g. --slurm-arg account=myproj (repeatable)")
    sw.add_argument("--id", default=None, help="sweep id (default: derived from the grid)")
    sw.add_argument("--no-wait", action="store_true", help="slurm: submit and return; --collect later")
    sw.add_argument("--collect", metavar="SWEEP_ID", default=None,
                    help="aggregate a sweep's results into pooled tables (no execution)")


def _sweep(args) -> int:
    from .runner import ParameterError, parse_assignments
    from .sweep import collect, run_sweep
    if args.collect:
        if args.chapters:
            raise ParameterError("--collect takes a sweep id only; drop the chapter names")
        summary = collect(args.collect)
        return 0 if not summary["failures"] else 1
    grid: dict[str, list] = {}
    for item in args.param:
        for name, value in parse_assignments([item]).items():
            grid.setdefault(name, []).append(value)
    slurm_args = {}
    for item in args.slurm_arg:
        if "=" not in item:
            raise ParameterError(f"--slurm-arg {item!r} must look like name=value")
        k, v = item.split("=", 1)
        slurm_args[k.strip()] = v.strip()
    options = {"parallel": args.parallel, "partition": args.partition, "time": args.time, "gpus": args.gpus,
               "cpus": args.cpus, "slurm_args": slurm_args}
    result = run_sweep(args.chapters, args.profile, args.seed, grid, args.device, args.cluster, options,
                       sweep_id=args.id, wait=not args.no_wait)
    if args.no_wait:
        print(f"sweep {result['id']}: {result['submitted']} jobs submitted; "
              f"`python -m freqlib sweep --collect {result['id']}` when they are done")
        return 0
    return 0 if not result["failures"] else 1


def _positive_int(text: str) -> int:
    """argparse type: a whole number of at least 1 (0 or a negative count has no meaning here)."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number of at least 1")
    return value


def _report(args) -> int:
    import torch
    from .chapter import ChapterContext
    from .data import DataUnavailableError
    from .profiles import profile_settings, resolve_device, resolve_profile
    from .errors import first_line
    from .report import ReportError, load_classifier, profile_report, report_lines, write_html
    from .zoo import cifar10_tensors
    device = resolve_device(args.device)
    profile = resolve_profile(args.profile, device)
    loaded = load_classifier(args.model, profile, device)      # a bad file fails here, before any data loads
    _, _, variant = cifar10_tensors("test", "cpu")
    # chapter 5's context without its notebook: the same images (test_set) and data label
    ctx = ChapterContext(profile, device, args.seed, variant, profile_settings(profile))
    try:
        rep = profile_report(args.model, ctx, args.n_images, loaded)
    except (ReportError, DataUnavailableError, torch.OutOfMemoryError):
        raise                                         # the data's or the device's fault, said as such
    except Exception as exc:
        if not Path(args.model).is_file():
            raise                                     # a zoo model: a failure is freqlib's, show it whole
        # a foreign model that loads but breaks a lens (no gradient, an odd operator): one line, no traceback
        raise ReportError(f"{args.model}: the report failed on this model ({first_line(exc)})") from None
    out = args.out or Path(f"{Path(args.model).stem}-report.html")
    print(write_html(rep, out))
    print(f"{profile} profile; 95% bootstrap intervals over the analysed images (the mask's centroid: over "
          "mask frequencies)")
    print("\n".join(report_lines(rep)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
