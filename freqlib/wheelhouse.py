"""The offline wheelhouse: what the book needs on a GPU machine that cannot reach a registry.

The lent GPU machine (an H200, Python 3.12, x86_64) comes with PyTorch,
NumPy, pandas, matplotlib, seaborn, SciPy and ~200 other packages
(:data:`GPU_BASE`, read off the machine's image), but without papermill, a
Jupyter kernel, myst-nb or torchattacks. :data:`WHEELS` lists every
distribution the book imports beyond that set, pinned to the versions it is
tested with. They are downloaded here, where pip reaches the registry,
as wheels for the target interpreter and platform, then carried to the
machine and installed without network and without dependency resolution::

    python -m freqlib wheelhouse --dest .whl              # here (make wheelhouse)
    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir \\
        --upgrade --target /tmp/site .whl/*.whl && export PYTHONPATH=/tmp/site:$PWD   # there

``--no-deps`` means the list must be complete by itself: it holds what is
*imported* when chapters execute (found by running them in a simulated
machine, :func:`simulated_site`), not every declared requirement. myst-nb is
there only for ``glue`` (it imports docutils, not Sphinx); ipykernel runs
without debugpy (its debugger is optional). :func:`closure_report` lists the
declared requirements left out, so a new version that starts importing one
shows up in the tests.
"""
from __future__ import annotations

import re
import subprocess
import sys
import zipfile
from pathlib import Path

__all__ = ["GPU_BASE", "WHEELS", "PLATFORMS", "DECLARED_BUT_UNUSED", "normalise", "download_command",
           "download", "install_command", "wheel_files", "wheelhouse_size", "closure_report",
           "simulated_site", "missing_wheels"]

# The 'cuda' image of the nvidia-h200 machines, as read on 2026-11-17
# (/work/.library/device/KINDS.md, "Python packages already there").
GPU_BASE = frozenset("""
absl-py accelerate aiofiles aiohappyeyeballs aiohttp aiosignal annotated-doc anyio attrs botorch build
certifi charset-normalizer chex click cloudpickle cmake colorama contourpy coverage cuda-bindings cuda-core
cuda-pathfinder cuda-toolkit cupy-cuda13x cycler cython diffrax e3nn einops equinox etils execnet filelock
flatbuffers flax fonttools formulaic frozenlist fsspec gpytorch grpcio h11 h5py hf-xet httpcore httpx
huggingface-hub humanize hypothesis idna imageio iniconfig interface-meta jax jax-cuda13-pjrt
jax-cuda13-plugin jaxlib jaxtyping jinja2 joblib kiwisolver lazy-loader lightning lightning-utilities
linear-operator lineax llvmlite lxml markdown markdown-it-py markupsafe matplotlib mdurl meson ml-dtypes
mpi4py mpmath msgpack multidict multipledispatch mypy-extensions nanobind narwhals networkx ninja numba
numba-cuda numpy numpyro nvidia-cublas nvidia-cuda-cupti nvidia-cuda-nvrtc nvidia-cuda-runtime
nvidia-cudnn-cu13 nvidia-cufft nvidia-cufile nvidia-curand nvidia-cusolver nvidia-cusparse
nvidia-cusparselt-cu13 nvidia-ml-py nvidia-nccl-cu13 nvidia-nvjitlink nvidia-nvshmem-cu13 nvidia-nvtx onnx
onnx-ir onnxruntime onnxscript opencv-python-headless optax opt-einsum opt-einsum-fx optimistix
orbax-checkpoint packaging pandas pathspec patsy peft pillow pip pluggy portalocker prometheus-client
propcache protobuf psutil pyarrow pybind11 py-cpuinfo pygments pyre-extensions pytest pytest-benchmark
pytest-cov pytest-mock pytest-timeout pytest-xdist python-dateutil pytorch-lightning pyyaml regex requests
rich sacrebleu safetensors scikit-build-core scikit-image scikit-learn scipy seaborn sentencepiece
sentence-transformers setuptools shellingham simplejson six sortedcontainers statsmodels sympy tabulate
tensorboard tensorboard-data-server tensorstore threadpoolctl tifffile tiktoken timm tokenizers toolz
torch torchaudio torchdiffeq torch-geometric torchmetrics torchvision tqdm transformers treescope triton
typer typing-extensions typing-inspect urllib3 uvloop wadler-lindig werkzeug wheel wrapt xarray xxhash
yarl zipp
""".split())

# Everything the book imports on that machine beyond GPU_BASE, pinned to the
# versions of the project's own environment (so the GPU runs what the tests ran).
WHEELS = {
    # executing chapters: papermill -> nbclient -> a Jupyter kernel
    "papermill": "2.7.0", "entrypoints": "0.4.2", "tenacity": "9.2.1",
    "nbclient": "0.11.0", "nbformat": "5.11.1", "fastjsonschema": "2.22.3",
    "jsonschema": "4.26.0", "jsonschema-specifications": "2025.9.1", "referencing": "0.37.0",
    "rpds-py": "2026.9.1",
    "jupyter-client": "8.10.0", "jupyter-core": "5.9.1", "platformdirs": "4.14.7", "traitlets": "5.16.1",
    "pyzmq": "27.3.0", "tornado": "6.6.1",
    "ipykernel": "7.4.0", "comm": "0.2.3", "matplotlib-inline": "0.2.2", "nest-asyncio2": "1.7.4",
    "ipython": "9.18.1", "ipython-pygments-lexers": "1.1.1",
    "pexpect": "4.9.0", "ptyprocess": "0.7.0", "prompt-toolkit": "3.0.53", "wcwidth": "0.9.4",
    "stack-data": "0.6.3", "executing": "2.3.0", "asttokens": "3.0.2", "pure-eval": "0.2.4",
    # glue (myst_nb.ext.glue imports docutils for its logger, nothing of Sphinx)
    "myst-nb": "1.4.0", "docutils": "0.21.2",
    # attacks
    "torchattacks": "3.5.1",
}
# Declared requirements the book never imports on the GPU machine (installed with
# --no-deps, so they are simply left out; see closure_report).
DECLARED_BUT_UNUSED = {
    "debugpy": "ipykernel's debugger: optional, ipykernel runs without it",
    "jedi": "IPython's tab completion (optional; 4.9 MB, with parso)",
    "appnope": "macOS only",
    "colorama": "Windows only",
    "sphinx": "myst-nb builds sites with it; executing notebooks only needs glue",
    "myst-parser": "myst-nb's Sphinx parser (site building)",
    "jupyter-cache": "myst-nb's execution cache (the runner executes with papermill instead)",
    "importlib-metadata": "myst-nb back-port for old Pythons; not imported by glue",
    "typing-extensions": "in GPU_BASE",
}

PLATFORMS = ("manylinux_2_28_x86_64", "manylinux_2_27_x86_64", "manylinux_2_17_x86_64",
             "manylinux2014_x86_64", "manylinux1_x86_64")


def normalise(name: str) -> str:
    """PEP 503 name: lower case, runs of ``-_.`` as one ``-``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def download_command(dest: Path, python: str = "3.12", platforms=PLATFORMS, names=None,
                     pip=(sys.executable, "-m", "pip")) -> list[str]:
    """The ``pip download`` line of the device notes (binary wheels only, no dependency resolution)."""
    cmd = [*pip, "download", "--no-deps", "--only-binary=:all:", "--python-version", python,
           "--implementation", "cp"]
    for p in platforms:
        cmd += ["--platform", p]
    cmd += ["-d", str(dest)]
    cmd += [f"{n}=={WHEELS[n]}" for n in (names or WHEELS)]
    return cmd


def install_command(dest: str = ".whl", target: str = "/tmp/site") -> str:
    """The offline install on the GPU machine (device notes)."""
    return (f"python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade "
            f"--target {target} {dest}/*.whl && export PYTHONPATH={target}:$PWD")


def wheel_files(dest: Path) -> dict[str, Path]:
    """Wheels in ``dest`` by normalised distribution name."""
    return {normalise(p.name.split("-")[0]): p for p in sorted(Path(dest).glob("*.whl"))}


def missing_wheels(dest: Path) -> list[str]:
    have = wheel_files(dest)
    return [n for n in WHEELS if normalise(n) not in have]


def wheelhouse_size(dest: Path) -> int:
    """Bytes of the wheels in ``dest``."""
    return sum(p.stat().st_size for p in Path(dest).glob("*.whl"))


class WheelhouseError(RuntimeError):
    """The wheels could not be fetched (no registry, no wheel for that Python or platform)."""


def download(dest: Path, python: str = "3.12", platforms=PLATFORMS, log=print) -> Path:
    """Download every wheel of :data:`WHEELS` into ``dest`` (skips those already there).

    Two versions of one distribution stop the offline install, so wheels of
    other versions of listed names are removed.
    """
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    for name, path in wheel_files(dest).items():
        version = path.name.split("-")[1]
        pinned = {normalise(n): v for n, v in WHEELS.items()}.get(name)
        if pinned is not None and version != pinned:
            log(f"removing {path.name} (pinned {name}=={pinned})")
            path.unlink()
    todo = missing_wheels(dest)
    if todo:
        cmd = download_command(dest, python, platforms, todo)
        log(" ".join(cmd))
        res = subprocess.run(cmd, capture_output=True, text=True)
        if res.returncode != 0:
            tail = (res.stderr or res.stdout).strip().splitlines()[-3:]
            raise WheelhouseError("pip download failed (" + " / ".join(tail) + "); it needs access to the "
                                  "package registry. For another platform tag add --platform manylinux_2_N_x86_64.")
    still = missing_wheels(dest)
    if still:
        raise WheelhouseError(f"no wheel for {', '.join(still)} in {dest} after download")
    log(f"{len(WHEELS)} wheels in {dest}: {wheelhouse_size(dest) / 2**20:.1f} MiB")
    return dest


# ------------------------------------------------------------------ checks
def _requirements(wheel: Path) -> list[str]:
    with zipfile.ZipFile(wheel) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        text = z.read(meta).decode("utf-8", "replace")
    return [line.split(":", 1)[1].strip() for line in text.splitlines() if line.startswith("Requires-Dist:")]


def closure_report(dest: Path, python: str = "3.12") -> dict[str, list[str]]:
    """Declared requirements of the wheels in ``dest`` that neither the wheelhouse
    nor :data:`GPU_BASE` provides, by requirement name -> wheels declaring it.

    Markers are evaluated for Linux and ``python``; extras are ignored. Names in
    :data:`DECLARED_BUT_UNUSED` are expected here; anything else is a gap.
    """
    from packaging.requirements import Requirement
    env = {"python_version": python, "python_full_version": python + ".0", "sys_platform": "linux",
           "platform_system": "Linux", "os_name": "posix", "platform_machine": "x86_64",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "extra": ""}
    have = set(wheel_files(dest)) | GPU_BASE
    gaps: dict[str, list[str]] = {}
    for name, wheel in wheel_files(dest).items():
        for line in _requirements(wheel):
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate(env):
                continue
            if normalise(req.name) not in have:
                gaps.setdefault(normalise(req.name), []).append(name)
    return gaps


def _with_requirements(names) -> set[str]:
    """``names`` plus the declared requirements of those installed here, transitively:
    the image's package list names what was installed, not what came along with it
    (matplotlib's pyparsing, say), and a package that works there has its requirements."""
    import importlib.metadata as md
    from packaging.requirements import Requirement
    out, todo = set(), [normalise(n) for n in names]
    while todo:
        name = todo.pop()
        if name in out:
            continue
        out.add(name)
        try:
            reqs = md.requires(name) or []
        except md.PackageNotFoundError:
            continue
        for line in reqs:
            req = Requirement(line)
            if req.marker is None or req.marker.evaluate({"extra": ""}):
                todo.append(normalise(req.name))
    return out


def simulated_site(dest: Path, extra: tuple[str, ...] = ()) -> Path:
    """A folder of links to the packages of *this* environment that the GPU
    machine would have: :data:`GPU_BASE` plus :data:`WHEELS` (plus ``extra``).

    Run ``python -S`` with ``PYTHONPATH=<dest>:<repo>`` to import exactly those
    (``-S`` keeps site-packages off the path); the tests execute a notebook
    that way to show the wheelhouse is complete.
    """
    import importlib.metadata as md
    dest = Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    wanted = _with_requirements(GPU_BASE) | {normalise(n) for n in WHEELS} | {normalise(n) for n in extra}
    for dist in md.distributions():
        name = dist.metadata["Name"]
        if not name or normalise(name) not in wanted:
            continue
        base = Path(dist.locate_file(""))
        tops = {Path(str(f)).parts[0] for f in (dist.files or []) if not str(f).startswith("..")}
        for top in tops:
            src = base / top
            link = dest / top
            if top.endswith(".pth") or top == "__pycache__" or not src.exists() or link.exists():
                continue
            link.symlink_to(src)
    return dest


# -------------------------------------------------------------------- CLI
def python_version(text: str) -> str:
    """``--python``: a CPython version freqlib supports, written 3.N (pip's --python-version)."""
    match = re.fullmatch(r"3\.(\d+)", text)
    if not match or int(match.group(1)) < 10:
        import argparse
        raise argparse.ArgumentTypeError(f"must be a Python version 3.N with N >= 10 (freqlib needs Python >= 3.10), "
                                         f"got {text!r}")
    return text


def add_arguments(p) -> None:
    p.add_argument("--dest", type=Path, default=Path(".whl"), help="folder for the wheels (git-ignored)")
    p.add_argument("--python", type=python_version, default="3.12", help="the GPU machine's Python version")
    p.add_argument("--platform", action="append", default=None,
                   help=f"platform tag (repeatable; default {' '.join(PLATFORMS)})")
    p.add_argument("--check", action="store_true", help="only check the folder: complete, sizes, declared gaps")


def cli(args) -> int:
    platforms = tuple(args.platform) if args.platform else PLATFORMS
    if not args.check:
        try:
            download(args.dest, args.python, platforms)
        except WheelhouseError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
    missing = missing_wheels(args.dest)
    gaps = {k: v for k, v in closure_report(args.dest, args.python).items() if k not in DECLARED_BUT_UNUSED}
    print(f"{args.dest}: {len(wheel_files(args.dest))} wheels, {wheelhouse_size(args.dest) / 2 ** 20:.1f} MiB; "
          f"missing: {', '.join(missing) or 'none'}; undeclared gaps: {gaps or 'none'}")
    print("install on the GPU machine:  " + install_command(str(args.dest)))
    return 1 if missing or gaps else 0
