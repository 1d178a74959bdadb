"""CIFAR-10 sources, their failure modes, and the device-resident loader."""
import pickle

import numpy as np
import pytest
import torch

from freqlib import data as fdata


@pytest.fixture
def no_download(monkeypatch):
    """No internet: nothing downloads, and nothing was tried (the failure path has its own tests)."""
    monkeypatch.setattr(fdata, "_load_download", lambda root, split: None)
    monkeypatch.setattr(fdata, "_download_host_answers", lambda *a: False)


@pytest.fixture(autouse=True)
def fresh_download_state(monkeypatch, tmp_path):
    """Each test starts as a new process on a new machine would: no download tried yet."""
    monkeypatch.setattr(fdata, "_DOWNLOAD_FAILED", [])
    marker = tmp_path / "markers" / "download-failed.json"
    monkeypatch.setattr(fdata, "_failure_marker", lambda: marker)


def _fake_copy(root, n=10_000, seed=0):
    """A torchvision-format test split of random pixels under ``root``; returns its flat pixels."""
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    flat = rng.integers(0, 256, (n, 3072), dtype=np.uint8)
    with open(folder / "test_batch", "wb") as fh:
        pickle.dump({"data": flat, "labels": list(rng.integers(0, 10, n))}, fh)
    return flat


@pytest.fixture
def bad_mirror(tmp_path, monkeypatch):
    """A mirror path that raises (sha256) as soon as a loader opens it: shows whether it was tried."""
    bad = tmp_path / "not-the-mirror.npz"
    np.savez(bad, train_jpeg=np.zeros(3, np.uint8))
    monkeypatch.setenv("FREQLIB_CIFAR10_MIRROR", str(bad))
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path / "data"))
    return bad


def test_download_comes_before_the_mirror_where_it_works(tmp_path, monkeypatch, bad_mirror):
    monkeypatch.delenv("FREQLIB_CIFAR10_SOURCE", raising=False)
    monkeypatch.setattr(fdata, "_download_host_answers", lambda *a: True)
    calls = []
    monkeypatch.setattr(fdata, "_download", lambda root, split: calls.append(split) or _fake_copy(root))
    assert fdata.available_variant() == "CIFAR-10"
    x, y, variant = fdata.load_cifar10("test")
    assert variant == "CIFAR-10" and calls == ["test"], "the original download, not the (lossy) mirror"


def test_offline_goes_to_the_mirror_without_waiting_for_a_download(monkeypatch, bad_mirror):
    monkeypatch.delenv("FREQLIB_CIFAR10_SOURCE", raising=False)
    monkeypatch.setattr(fdata, "_download_host_answers", lambda *a: False)
    calls = []
    monkeypatch.setattr(fdata, "_download", lambda root, split: calls.append(split))
    assert fdata.available_variant() == "CIFAR-10 (JPEG-q75 mirror)"
    with pytest.raises(fdata.DataUnavailableError, match="sha256"):
        fdata.load_cifar10("test")
    assert calls == [], "an unreachable host is not tried before the mirror"


def test_source_original_never_reads_the_mirror(monkeypatch, no_download, bad_mirror):
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "original")
    with pytest.raises(fdata.DataUnavailableError) as err:
        fdata.load_cifar10("test")
    msg = str(err.value)
    assert "FREQLIB_CIFAR10_SOURCE=original" in msg and "cifar-10-batches-py" in msg
    assert "FREQLIB_CIFAR10_MIRROR" not in msg and "sha256" not in msg


def test_source_mirror_ignores_a_lossless_copy(tmp_path, monkeypatch, no_download, bad_mirror):
    _fake_copy(tmp_path / "data")
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "mirror")
    assert fdata.available_variant() == "CIFAR-10 (JPEG-q75 mirror)"
    with pytest.raises(fdata.DataUnavailableError, match="sha256"):
        fdata.load_cifar10("test")


def test_unknown_source_is_named(monkeypatch):
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "jpeg")
    with pytest.raises(ValueError, match="FREQLIB_CIFAR10_SOURCE='jpeg'.*auto, original, mirror"):
        fdata.load_cifar10("test")


def test_mirror_loads_in_canonical_order(monkeypatch):
    if not fdata.mirror_path().is_file():
        pytest.skip("the JPEG mirror is not beside the repository")
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "mirror")
    x, y, variant = fdata.load_cifar10("test")
    assert x.shape == (10_000, 32, 32, 3) and x.dtype == np.uint8 and y.dtype == np.int64
    assert variant == "CIFAR-10 (JPEG-q75 mirror)"
    assert y[:5].tolist() == [3, 8, 8, 0, 6]
    assert np.bincount(y).tolist() == [1000] * 10
    assert abs(x[..., 0].mean() - 125.99) < 0.05  # channel mean given in shared/data/README.md


def test_missing_data_names_all_three_ways(tmp_path, monkeypatch, no_download):
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path))
    monkeypatch.setenv("FREQLIB_CIFAR10_MIRROR", str(tmp_path / "nowhere.npz"))
    with pytest.raises(fdata.DataUnavailableError) as err:
        fdata.load_cifar10("train")
    msg = str(err.value)
    assert "cifar-10-batches-py" in msg and "FREQLIB_CIFAR10_MIRROR" in msg and "internet" in msg


@pytest.mark.parametrize("damage", ["truncated", "other file"])
def test_damaged_mirror_is_refused(tmp_path, monkeypatch, no_download, damage):
    bad = tmp_path / "cifar10-jpeg.npz"
    if damage == "truncated" and fdata.mirror_path().is_file():
        bad.write_bytes(fdata.mirror_path().read_bytes()[:100_000])
    else:
        np.savez(bad, train_jpeg=np.zeros(3, np.uint8))
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path / "data"))
    monkeypatch.setenv("FREQLIB_CIFAR10_MIRROR", str(bad))
    with pytest.raises(fdata.DataUnavailableError, match="sha256"):
        fdata.load_cifar10("test")
    assert not list((tmp_path / "data").rglob("*.npz")), "nothing may be cached from a bad mirror"


def test_lossless_copy_is_preferred(tmp_path, monkeypatch, no_download):
    flat = _fake_copy(tmp_path)
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path))
    x, y, variant = fdata.load_cifar10("test")
    assert variant == "CIFAR-10"
    assert np.array_equal(x[0], flat[0].reshape(3, 32, 32).transpose(1, 2, 0))
    assert fdata.available_variant() == "CIFAR-10"


def test_bad_split_is_named():
    with pytest.raises(ValueError, match="'train' or 'test'"):
        fdata.load_cifar10("validation")


def test_device_loader_batches_and_augments():
    x = torch.arange(10 * 3 * 8 * 8, dtype=torch.float32).reshape(10, 3, 8, 8)
    y = torch.arange(10)
    plain = list(fdata.DeviceLoader(x, y, 4))
    assert [len(b[1]) for b in plain] == [4, 4, 2]
    assert torch.equal(torch.cat([b[0] for b in plain]), x)
    loader = fdata.DeviceLoader(x, y, 4, shuffle=True, flip=True, translate=2, drop_last=True, seed=3)
    batches = list(loader)
    assert len(batches) == len(loader) == 2
    for xb, yb in batches:
        assert xb.shape == (4, 3, 8, 8)
        for img, label in zip(xb, yb):  # every augmented image is a shifted/flipped copy of its own source
            src = x[label]
            assert set(img.unique().tolist()) <= set(src.unique().tolist())
    again = list(fdata.DeviceLoader(x, y, 4, shuffle=True, flip=True, translate=2, drop_last=True, seed=3))
    assert all(torch.equal(a[0], b[0]) for a, b in zip(batches, again))


def test_translate_moves_content():
    x = torch.zeros(64, 1, 8, 8)
    x[:, :, 4, 4] = 1.0
    out = fdata.DeviceLoader(x, torch.zeros(64), 64, translate=2, seed=0)._augment(x)
    where = out[:, 0].flatten(1).argmax(1)
    rows, cols = where // 8, where % 8
    assert rows.unique().numel() > 2 and cols.unique().numel() > 2
    assert ((rows - 4).abs() <= 2).all() and ((cols - 4).abs() <= 2).all()


def test_cli_missing_data_is_one_clear_line(tmp_path, monkeypatch, no_download, capsys):
    from freqlib.__main__ import main
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path))
    monkeypatch.setenv("FREQLIB_CIFAR10_MIRROR", str(tmp_path / "nowhere.npz"))
    from freqlib.zoo import cifar10_tensors
    cifar10_tensors.cache_clear()
    assert main(["zoo", "standard", "--profile", "smoke", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: CIFAR-10 is not available") and "FREQLIB_CIFAR10_MIRROR" in err
    cifar10_tensors.cache_clear()


def test_download_without_torchvision_checks_and_unpacks(tmp_path, monkeypatch):
    """The urllib path (torchvision absent or broken): md5-checked, unpacked whole, else refused."""
    import builtins
    import hashlib
    import tarfile
    src = tmp_path / "src" / "cifar-10-batches-py"
    src.mkdir(parents=True)
    (src / "test_batch").write_bytes(b"x")
    archive = tmp_path / "a.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        tar.add(src, arcname="cifar-10-batches-py")
    real_import = builtins.__import__
    monkeypatch.setattr(builtins, "__import__", lambda name, *a, **k: (_ for _ in ()).throw(ImportError(name))
                        if name == "torchvision" else real_import(name, *a, **k))
    monkeypatch.setattr(fdata, "CIFAR10_URL", archive.as_uri())
    monkeypatch.setattr(fdata, "CIFAR10_MD5", "0" * 32)
    with pytest.raises(fdata.DataUnavailableError, match="checksum"):
        fdata._download(tmp_path / "root", "test")
    assert not (tmp_path / "root" / "cifar-10-batches-py").exists()
    monkeypatch.setattr(fdata, "CIFAR10_MD5", hashlib.md5(archive.read_bytes()).hexdigest())
    fdata._download(tmp_path / "root", "test")
    assert (tmp_path / "root" / "cifar-10-batches-py" / "test_batch").read_bytes() == b"x"


def test_host_probe_tells_open_from_closed_ports(monkeypatch):
    import socket
    monkeypatch.setattr(fdata.urllib.request, "getproxies", lambda: {})
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(1)
        port = server.getsockname()[1]
        assert fdata._download_host_answers.__wrapped__(f"https://127.0.0.1:{port}/cifar.tar.gz")
    assert not fdata._download_host_answers.__wrapped__(f"https://127.0.0.1:{port}/cifar.tar.gz")


def test_a_failed_download_says_why_and_the_mirror_is_what_loads(monkeypatch, bad_mirror):
    monkeypatch.delenv("FREQLIB_CIFAR10_SOURCE", raising=False)
    monkeypatch.setattr(fdata, "_download_host_answers", lambda *a: True)

    def refused(root, split):
        raise OSError("proxy said 403")
    monkeypatch.setattr(fdata, "_download", refused)
    with pytest.warns(RuntimeWarning, match="download failed.*proxy said 403"), \
            pytest.raises(fdata.DataUnavailableError, match="sha256"):       # the (bad) mirror was read next
        fdata.load_cifar10("test")
    assert fdata.available_variant() == "CIFAR-10 (JPEG-q75 mirror)"     # what now loads, as the zoo keys it


def test_a_failed_download_is_not_retried_by_the_next_process_for_an_hour(monkeypatch, bad_mirror):
    """Each chapter runs in its own kernel: without the marker on disk, every one would try the
    170-MB download again, and one that got it would key its models on another variant."""
    import json
    import time
    monkeypatch.delenv("FREQLIB_CIFAR10_SOURCE", raising=False)
    monkeypatch.setattr(fdata, "_download_host_answers", lambda *a: True)
    calls = []

    def refused(root, split):
        calls.append(split)
        raise OSError("proxy said 403")
    monkeypatch.setattr(fdata, "_download", refused)
    with pytest.warns(RuntimeWarning), pytest.raises(fdata.DataUnavailableError, match="sha256"):
        fdata.load_cifar10("test")
    assert calls == ["test"] and fdata._failure_marker().is_file()
    monkeypatch.setattr(fdata, "_DOWNLOAD_FAILED", [])                  # a new process
    assert fdata.available_variant() == "CIFAR-10 (JPEG-q75 mirror)"
    with pytest.raises(fdata.DataUnavailableError, match="sha256"):
        fdata.load_cifar10("test")
    assert calls == ["test"], "the download was tried again within the hour"
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "original")
    with pytest.raises(fdata.DataUnavailableError, match="proxy said 403.*to try again now"):
        fdata.load_cifar10("test")                                       # says how to retry at once
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "auto")
    marker = fdata._failure_marker()
    record = json.loads(marker.read_text())
    marker.write_text(json.dumps({**record, "time": time.time() - fdata.DOWNLOAD_RETRY_S - 1}))
    monkeypatch.setattr(fdata, "_DOWNLOAD_FAILED", [])                  # an hour later
    monkeypatch.setattr(fdata, "_download", lambda root, split: calls.append(split) or _fake_copy(root))
    assert fdata.load_cifar10("test")[2] == "CIFAR-10" and calls == ["test", "test"]
    assert not marker.exists(), "a download that worked forgets the failure"


def test_source_original_names_why_the_download_failed(monkeypatch, bad_mirror):
    monkeypatch.setenv("FREQLIB_CIFAR10_SOURCE", "original")

    def refused(root, split):
        raise OSError("proxy said 403")
    monkeypatch.setattr(fdata, "_download", refused)
    with pytest.warns(RuntimeWarning), pytest.raises(fdata.DataUnavailableError, match="download failed: OSError"):
        fdata.load_cifar10("test")


def test_a_present_copy_never_waits_for_the_probe(tmp_path, monkeypatch):
    def no_probe(*a):
        raise AssertionError("probed although the copy is there")
    monkeypatch.setattr(fdata, "_download_host_answers", no_probe)
    monkeypatch.delenv("FREQLIB_CIFAR10_SOURCE", raising=False)
    _fake_copy(tmp_path)
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path))
    assert fdata.load_cifar10("test")[2] == "CIFAR-10" and fdata.available_variant() == "CIFAR-10"


def test_probe_gives_up_on_a_hanging_name_lookup(monkeypatch):
    import threading
    import time
    release = threading.Event()

    def hanging_lookup(*a, **k):
        release.wait(30)
        raise OSError("the resolver gave up")
    monkeypatch.setattr(fdata, "PROBE_TIMEOUT_S", 0.2)
    monkeypatch.setattr(fdata.socket, "create_connection", hanging_lookup)
    monkeypatch.setattr(fdata.urllib.request, "getproxies", lambda: {})
    start = time.monotonic()
    try:
        assert not fdata._download_host_answers.__wrapped__("https://cifar.example/x.tar.gz")
        assert time.monotonic() - start < 5, "the probe must not wait for the resolver"
    finally:
        release.set()                   # let the abandoned probe thread end as a real lookup would


def test_probe_asks_the_https_proxy_when_one_is_set(monkeypatch):
    import socket
    with socket.socket() as proxy:
        proxy.bind(("127.0.0.1", 0))
        proxy.listen(1)
        port = proxy.getsockname()[1]
        monkeypatch.setattr(fdata.urllib.request, "getproxies", lambda: {"https": f"http://127.0.0.1:{port}"})
        assert fdata._download_host_answers.__wrapped__("https://unreachable.invalid/cifar.tar.gz")


def test_alternating_flip_shows_every_image_both_ways_in_two_epochs():
    """airbench's flips: a fixed half flipped on even epochs, the other half on odd ones
    (random flips would show some images the same way twice)."""
    n = 64
    x = torch.rand(n, 1, 4, 6)
    y = torch.arange(n)
    loader = fdata.DeviceLoader(x, y, 16, shuffle=True, flip=True, alternating_flip=True, seed=1)

    def flipped_per_image():
        out = torch.zeros(n, dtype=torch.bool)
        for xb, yb in loader:
            same, mirrored = (xb == x[yb]).flatten(1).all(1), (xb == x[yb].flip(-1)).flatten(1).all(1)
            assert (same ^ mirrored).all()           # each image exactly as stored or mirrored
            out[yb] = mirrored
        return out
    first, second, third = flipped_per_image(), flipped_per_image(), flipped_per_image()
    assert (first ^ second).all() and torch.equal(first, third)
    assert 0.25 < first.float().mean() < 0.75
    loader = fdata.DeviceLoader(x, y, 16, shuffle=True, flip=True, seed=1)     # random flips: by chance
    assert not (flipped_per_image() ^ flipped_per_image()).all()
