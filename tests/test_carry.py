"""What travels to and from a lent GPU: tar parts through $OUT, and the staged carry."""
import json
import os
import subprocess

import pytest

from freqlib.carry import pack, stage_carry, unpack


def test_pack_and_unpack_round_trip(tmp_path):
    out = tmp_path / "run"
    (out / "zoo").mkdir(parents=True)
    (out / "executed" / "chapters").mkdir(parents=True)
    (out / "zoo" / "m.pt").write_bytes(os.urandom(3 * 2 ** 20))
    (out / "zoo" / ".m.pt.x.part").write_bytes(b"half-written")
    (out / "state.json").write_text('{"profile": "paper"}')
    (out / "status.md").write_text("# status\n")
    (out / "executed" / "chapters" / "01_x.ipynb").write_text("{}")
    bench = tmp_path / "bench" / "results.json"
    bench.parent.mkdir()
    bench.write_text(json.dumps({"paper_airbench_cuda": {"runs": [1]}}))
    dest = tmp_path / "OUT"
    files = pack(out, dest, extra=(bench,), part_mb=1)
    assert len(files) == 5 and all(p.stat().st_size <= 2 ** 20 for p in files)   # 4 parts + status.md
    with pytest.raises(ValueError, match="parts"):
        pack(out, tmp_path / "OUT2", part_mb=1, max_files=4)
    here = tmp_path / "here" / "run"
    local_bench = tmp_path / "local.json"
    local_bench.write_text(json.dumps({"other": 1}))
    got = unpack(dest, here, results=tmp_path / "results", bench=local_bench, log=lambda *a: None)
    assert (here / "zoo" / "m.pt").read_bytes() == (out / "zoo" / "m.pt").read_bytes()
    assert not (here / "zoo" / ".m.pt.x.part").exists()
    assert (tmp_path / "results" / "chapters" / "01_x.ipynb").is_file() and not (here / "executed" / "chapters" / "01_x.ipynb").exists()
    assert json.loads(local_bench.read_text()) == {"other": 1, "paper_airbench_cuda": {"runs": [1]}}
    assert got["bench"] == ["paper_airbench_cuda"]
    with pytest.raises(FileNotFoundError):
        unpack(tmp_path / "nothing", here)


def test_a_pack_missing_a_part_or_mixed_with_another_is_refused(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "big.bin").write_bytes(os.urandom(3 * 2 ** 20))
    (out / "state.json").write_text('{"profile": "paper"}')
    dest = tmp_path / "OUT"
    dest.mkdir()
    (dest / "run.tgz.00of05").write_bytes(b"from an earlier pack")
    parts = pack(out, dest, part_mb=1)
    assert sorted(p.name for p in dest.glob("run.tgz.*")) == [p.name for p in parts]   # the stale part is gone
    parts[-1].unlink()                                   # a call killed before its last part
    with pytest.raises(ValueError, match="not one whole pack"):
        unpack(dest, tmp_path / "here" / "run")
    (dest / "run.tgz.03").write_bytes(b"old name")
    with pytest.raises(ValueError, match="not a part this version packs"):
        unpack(dest, tmp_path / "here" / "run")


def _repo(root):
    root.mkdir(parents=True)
    (root / "freqlib.txt").write_bytes(os.urandom(2 ** 20))                 # 1 MiB of tracked source
    (root / ".gitignore").write_text(".carry/\n.whl/\n")
    git = lambda *a: subprocess.run(["git", *a], cwd=root, check=True, capture_output=True)
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x")
    return root


def _data(folder, mb: int):
    folder.mkdir(parents=True)
    (folder / "cifar10-jpeg.npz").write_bytes(os.urandom(mb * 2 ** 20))
    (folder / "cifar10-test-head-lossless.npz").write_bytes(b"head")
    (folder / "frost").mkdir()
    (folder / "frost" / "frost1.png").write_bytes(b"png")
    return folder


def test_staging_sizes_the_carry_and_leaves_the_zoo_the_room_that_is_left(tmp_path):
    root = _repo(tmp_path / "repo")
    got = stage_carry(root, _data(tmp_path / "shared", 20), log=lambda *a: None)
    assert (root / ".carry" / "data" / "frost" / "frost1.png").is_file()
    assert (root / ".carry" / "run" / "source-commit.txt").read_text().strip() != "unknown"
    # 64 MiB - 1 (repo) - 20 (data) - 3 (notebooks a call adds) = 40, give or take the small files
    assert 39.5 < got["zoo_room_mb"] < 40.1
    assert float((root / ".carry" / "run" / "carry-mb.txt").read_text()) == got["zoo_room_mb"]
    assert got["missing_wheels"] == ["(no wheelhouse)"]
    # more than a device call takes: a clear error naming the largest part, and no room file for it
    with pytest.raises(ValueError, match=r"over the 64 MiB it takes \(largest: .carry/data, 70.0 MiB"):
        stage_carry(root, _data(tmp_path / "big", 70), log=lambda *a: None)
    assert float((root / ".carry" / "run" / "carry-mb.txt").read_text()) == got["zoo_room_mb"]


def test_staging_names_the_data_file_that_is_missing(tmp_path):
    root = _repo(tmp_path / "repo")
    data = _data(tmp_path / "shared", 1)
    (data / "cifar10-test-head-lossless.npz").unlink()
    with pytest.raises(FileNotFoundError, match="cifar10-test-head-lossless.npz is missing.*--data-src"):
        stage_carry(root, data, log=lambda *a: None)
