"""What travels between this machine and a lent GPU, and between its calls.

A device call carries at most 64 MiB in (repository, wheels, data, the run folder)
and brings at most 8 files of 16 MiB back through ``$OUT``. Here:
:func:`stage_carry` prepares and sizes what goes (``make gpu-carry``); on the device
:func:`pack` writes the run folder as tar parts; back here :func:`unpack` restores
them. Zoo checkpoints travel as bf16 (:func:`weights_to`), identified by
:func:`canonical_fingerprint`.
"""
from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import tarfile
from pathlib import Path

from .io import atomic_path, atomic_write_json, atomic_write_text, repo_root

__all__ = ["weights_to", "canonical_fingerprint", "carry_size", "copy_missing", "pack", "unpack", "stage_carry",
           "travelling_repo_bytes", "PART_MB", "MAX_FILES", "DEVICE_LIMIT_MB", "DATA_FILES"]

PART_MB = 15                # size of one tar part brought back through $OUT (16 MiB per file)
MAX_FILES = 8               # files per call through $OUT
DEVICE_LIMIT_MB = 64.0      # what travels to the device per call (device notes)
DATA_FILES = ("cifar10-jpeg.npz", "cifar10-test-head-lossless.npz", "frost")


# ---------------------------------------------------------- checkpoints
def weights_to(state: dict, dtype) -> dict:
    """Convolution and linear weights (float tensors of 2+ dims) in ``dtype``; the rest as is."""
    return {k: (v.to(dtype) if v.is_floating_point() and v.ndim >= 2 else v) for k, v in state.items()}


def canonical_fingerprint(state: dict) -> str:
    """sha256 (16 hex) of a state dict's tensors, in key order."""
    h = hashlib.sha256()
    for k in sorted(state):
        v = state[k].detach().cpu().contiguous()
        h.update(k.encode() + str(v.dtype).encode() + str(tuple(v.shape)).encode())
        h.update(v.view(-1).view(__import__("torch").uint8).numpy().tobytes() if v.numel() else b"")
    return h.hexdigest()[:16]


def carry_size(out: Path) -> int:
    """Bytes of the carried zoo checkpoints and results."""
    return sum(p.stat().st_size for d in ("zoo", "results") for p in (Path(out) / d).glob("*.pt"))


def copy_missing(src: Path, dst: Path) -> int:
    """Copy the ``*.pt`` files of ``src`` that ``dst`` lacks (atomically); returns how many."""
    n = 0
    for f in sorted(Path(src).glob("*.pt")) if Path(src).is_dir() else []:
        target = Path(dst) / f.name
        if not target.is_file():
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target, suffix=".pt") as tmp:
                shutil.copyfile(f, tmp)
            n += 1
    return n



# ---------------------------------------------------------- pack / unpack
def _tar_filter(info: tarfile.TarInfo):
    name = Path(info.name).name
    if ".part" in name or name.endswith(".lock") or "__pycache__" in info.name:
        return None
    return info


def pack(out: Path, dest: Path, extra: tuple = (), part_mb: int = PART_MB, max_files: int = MAX_FILES) -> list[Path]:
    """Write ``out`` (and ``extra`` files, under ``extra/<path>``) as a gzipped tar
    split into parts of at most ``part_mb`` MiB in ``dest``, plus ``status.md``:
    what a device call brings back through ``$OUT``."""
    out, dest = Path(out), Path(dest)
    dest.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        tar.add(out, arcname="run", filter=_tar_filter)
        for item in extra:
            item = Path(item)
            if item.exists():
                tar.add(item, arcname=f"extra/{item.as_posix().lstrip('/')}", filter=_tar_filter)
    data = buf.getvalue()
    size = part_mb * 2 ** 20
    parts = [data[i:i + size] for i in range(0, len(data), size)] or [b""]
    if len(parts) + 1 > max_files:
        raise ValueError(f"{out} packs into {len(data) / 2 ** 20:.1f} MiB = {len(parts)} parts of {part_mb} MiB, "
                         f"over the {max_files - 1} that fit beside status.md: lower --carry-mb or move "
                         "executed notebooks out")
    for stale in dest.glob("run.tgz.*"):          # parts of an earlier pack would join this one
        stale.unlink()
    written = []
    for i, chunk in enumerate(parts):
        # each part whole or absent; its name says how many belong together, so unpack can
        # tell a complete pack from one whose last parts a killed call never wrote
        path = dest / f"run.tgz.{i:02d}of{len(parts):02d}"
        with atomic_path(path) as tmp:
            tmp.write_bytes(chunk)
        written.append(path)
    status = out / "status.md"
    if status.is_file():
        with atomic_path(dest / "status.md") as tmp:
            shutil.copyfile(status, tmp)
        written.append(dest / "status.md")
    return written


def _pack_parts(files_at: Path) -> list[Path]:
    """The parts of one complete pack in ``files_at``, in order, or a one-line error."""
    found = {}
    for p in files_at.glob("run.tgz.*"):
        m = re.fullmatch(r"run\.tgz\.(\d+)of(\d+)", p.name)
        if not m:
            raise ValueError(f"{p} is not a part this version packs (run.tgz.NNofMM): pack the run again")
        found[(int(m[1]), int(m[2]))] = p
    if not found:
        raise FileNotFoundError(f"no run.tgz.* parts in {files_at}")
    totals = {n for _, n in found}
    if len(totals) != 1 or set(found) != {(i, n) for n in totals for i in range(n)}:
        raise ValueError(f"{files_at} holds parts {sorted(p.name for p in found.values())}, not one whole pack: "
                         "a part is missing or from another pack; fetch the call's files again")
    return [found[k] for k in sorted(found)]


def unpack(files_at: Path, out: Path, results: Path | None = None, bench: Path | None = None,
           log=print) -> dict:
    """Put a packed call back: ``out`` is replaced by the call's folder; its executed
    notebooks move to ``results`` (same relative paths), so they stop travelling;
    ``extra/bench/results.json`` entries merge into ``bench``."""
    files_at, out = Path(files_at), Path(out)
    parts = _pack_parts(files_at)
    data = b"".join(p.read_bytes() for p in parts)
    stage = out.parent / f".{out.name}.unpack"
    if stage.exists():
        shutil.rmtree(stage)
    stage.mkdir(parents=True)
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        tar.extractall(stage, filter="data")
    if not (stage / "run" / "state.json").is_file():
        shutil.rmtree(stage)
        raise ValueError(f"the parts in {files_at} hold no run/state.json: not a paper-run pack")
    old = out.parent / f".{out.name}.old"
    if out.exists():
        if old.exists():
            shutil.rmtree(old)
        out.rename(old)
    (stage / "run").rename(out)
    if old.exists():
        shutil.rmtree(old)
    moved = []
    if results is not None:
        for nb in sorted((out / "executed").rglob("*.ipynb")):
            target = Path(results) / nb.relative_to(out / "executed")
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.move(str(nb), target)
            moved.append(str(target))
    merged = []
    bench_src = next((stage / "extra").rglob("results.json"), None) if (stage / "extra").is_dir() else None
    if bench is not None and bench_src is not None:
        new = json.loads(bench_src.read_text())
        have = json.loads(Path(bench).read_text()) if Path(bench).is_file() else {}
        for k, v in new.items():
            if have.get(k) != v:
                have[k] = v
                merged.append(k)
        atomic_write_json(bench, have)
    failed_dir = stage / "extra"
    kept_extra = []
    if failed_dir.is_dir():
        dest = out / "extra"
        shutil.copytree(failed_dir, dest, dirs_exist_ok=True)
        kept_extra = [str(p.relative_to(out)) for p in dest.rglob("*") if p.is_file()]
    shutil.rmtree(stage)
    status = (out / "status.md").read_text() if (out / "status.md").is_file() else ""
    log(status)
    log(f"unpacked {len(parts)} part(s) into {out}; notebooks moved to {results}: {len(moved)}; "
        f"bench entries merged: {merged}")
    return {"notebooks": moved, "bench": merged, "extra": kept_extra, "status": status}



# ------------------------------------------------------------ staging here
def _tree_bytes(path: Path) -> int:
    path = Path(path)
    if path.is_file():
        return path.stat().st_size
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else 0


def travelling_repo_bytes(root: Path) -> int:
    """Bytes of what a device call sends besides the carried paths: tracked files and
    untracked files git does not ignore."""
    import subprocess
    res = subprocess.run(["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"], cwd=root,
                         capture_output=True, text=True)
    if res.returncode != 0:
        raise RuntimeError(f"git ls-files failed in {root}: {res.stderr.strip()}")
    return sum((root / f).stat().st_size for f in res.stdout.split("\0") if f and (root / f).is_file())


def stage_carry(root: Path | None = None, data_src: Path | None = None, carry: str = ".carry",
                whl: str = ".whl", log=print) -> dict:
    """Prepare what a device call carries: the data (``carry/data``), the run folder
    (``carry/run``, with the source commit), and check the 64 MiB limit.

    Returns the sizes in MiB and the zoo room left (also written to
    ``carry/run/carry-mb.txt``, which ``paper-run`` reads as its default ``--carry-mb``).
    """
    import subprocess
    from .data import mirror_path
    from .wheelhouse import missing_wheels
    root = Path(root or repo_root())
    data_src = Path(data_src) if data_src else mirror_path().parent
    data_dst, run_dir = root / carry / "data", root / carry / "run"
    data_dst.mkdir(parents=True, exist_ok=True)
    run_dir.mkdir(parents=True, exist_ok=True)
    for name in DATA_FILES:
        src, dst = data_src / name, data_dst / name
        if not src.exists():
            raise FileNotFoundError(f"{src} is missing: the GPU run needs {', '.join(DATA_FILES)} "
                                    f"(pass --data-src FOLDER holding them)")
        if src.is_dir():
            shutil.copytree(src, dst, dirs_exist_ok=True)
        elif not dst.is_file() or dst.stat().st_size != src.stat().st_size:
            shutil.copyfile(src, dst)
    head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                           capture_output=True, text=True).stdout.strip()
    atomic_write_text(run_dir / "source-commit.txt",
                      (head.stdout.strip() or "unknown") + ("+changes" if dirty else "") + "\n")
    missing = missing_wheels(root / whl) if (root / whl).is_dir() else ["(no wheelhouse)"]
    mb = lambda b: b / 2 ** 20
    sizes = {"repo (tracked + untracked, not ignored)": mb(travelling_repo_bytes(root)),
             f"{whl}": mb(_tree_bytes(root / whl)),
             f"{carry}/data": mb(_tree_bytes(data_dst)),
             f"{carry}/run without zoo": mb(_tree_bytes(run_dir) - _tree_bytes(run_dir / "zoo")),
             f"{carry}/run/zoo": mb(_tree_bytes(run_dir / "zoo"))}
    fixed = sum(v for k, v in sizes.items() if not k.endswith("zoo"))
    room = round(DEVICE_LIMIT_MB - fixed - 3.0, 1)          # 3 MiB for notebooks a call adds
    if room <= 0:
        largest = max((k for k in sizes if not k.endswith("zoo")), key=sizes.get)
        raise ValueError(f"a device call would carry {fixed:.1f} MiB before any checkpoint, over the "
                         f"{DEVICE_LIMIT_MB:g} MiB it takes (largest: {largest}, {sizes[largest]:.1f} MiB): "
                         "remove what need not travel, or git-ignore it")
    atomic_write_text(run_dir / "carry-mb.txt", f"{room}\n")
    for k, v in sizes.items():
        log(f"{k:45s} {v:7.1f} MiB")
    log(f"{'total now':45s} {sum(sizes.values()):7.1f} MiB of {DEVICE_LIMIT_MB:g}")
    log(f"room for carried zoo checkpoints: {room} MiB (written to {run_dir / 'carry-mb.txt'})")
    if missing:
        log(f"wheelhouse incomplete ({', '.join(missing)}): run `make wheelhouse` first")
    log('device call: run(command="bash tools/gpu_call.sh 530", timeout_s=600, '
        f'carry=["{whl}", "{carry}/data", "{carry}/run"])')
    return {"sizes_mb": sizes, "zoo_room_mb": room, "missing_wheels": missing}

