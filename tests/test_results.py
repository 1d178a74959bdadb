"""freqlib.results: per-model results computed once, read back without the model,
and stopped cleanly between results when a call's time is up."""
import time

import pytest
import torch

from freqlib import corruption_sets as csets
from freqlib import proportion as pb
from freqlib import results, zoo
from freqlib.deadline import DEADLINE_ENV, OutOfTime
from freqlib.results import ModelRef


@pytest.fixture
def data_dir(tmp_path, monkeypatch):
    """An empty data folder (no zoo, no results) that still finds the CIFAR-10 files."""
    from freqlib.data import head_path, mirror_path
    monkeypatch.setenv("FREQLIB_CIFAR10_MIRROR", str(mirror_path()))
    monkeypatch.setenv("FREQLIB_CIFAR10_LOSSLESS_HEAD", str(head_path()))
    monkeypatch.setenv("FREQLIB_DATA", str(tmp_path / "data"))
    monkeypatch.delenv(DEADLINE_ENV, raising=False)
    return tmp_path / "data"


def test_cached_computes_once_and_packs_booleans(data_dir):
    calls = []
    hits = torch.rand(3, 1000) > 0.3

    def compute():
        calls.append(1)
        return {"hits": hits, "score": torch.tensor([0.5])}
    a = results.cached("thing", {"k": 1}, compute)
    b = results.cached("thing", {"k": 1}, compute)
    assert len(calls) == 1 and torch.equal(b["hits"], hits) and b["hits"].dtype == torch.bool
    saved = torch.load(next(results.results_dir().glob("thing-*.pt")), weights_only=False)
    assert saved["result"]["hits"]["__bits__"].numel() == 375                  # 3,000 booleans in 375 bytes
    results.cached("thing", {"k": 2}, compute)                                 # another key: computed again
    assert len(calls) == 2 and torch.equal(a["score"], b["score"])


def test_a_passed_deadline_stops_before_computing_and_writes_nothing(data_dir, monkeypatch):
    done = results.cached("early", {}, lambda: {"x": torch.ones(1)})
    monkeypatch.setenv(DEADLINE_ENV, str(time.time() - 1))
    with pytest.raises(OutOfTime, match=r"\d+ result\(s\) were stored in this run.*continues from what was stored"):
        results.cached("late", {}, lambda: pytest.fail("computed after the deadline"))
    assert not list(results.results_dir().glob("late-*.pt"))
    assert torch.equal(results.cached("early", {}, lambda: pytest.fail("recomputed"))["x"], done["x"])
    monkeypatch.setenv(DEADLINE_ENV, str(time.time() + 3600))                 # a deadline ahead: computes
    assert results.cached("late", {}, lambda: {"x": torch.zeros(1)})["x"].item() == 0
    monkeypatch.setenv(DEADLINE_ENV, "soon")
    with pytest.raises(ValueError, match="not a Unix time"):
        results.cached("other", {}, lambda: {})


def test_zoo_training_also_stops_at_the_deadline(data_dir, monkeypatch):
    monkeypatch.setenv(DEADLINE_ENV, str(time.time() - 1))
    with pytest.raises(OutOfTime, match="training standard"):
        zoo.get_model("standard", "smoke", "cpu", n_train=256, epochs=1, widths=(4, 8, 8))


def _models(profile="smoke"):
    tiny = dict(n_train=256, epochs=1, widths=(4, 8, 8), whiten=False)
    return {"a": ModelRef("standard", profile, "cpu", dict(tiny)),
            "b": ModelRef("prop_p050", profile, "cpu", dict(tiny, stem={"kind": "banded", "high_share": 0.5},
                                                          perturbation="none"))}


def test_scores_and_first_layers_are_read_back_without_the_model(data_dir, monkeypatch):
    x, y, pixels = csets.default_clean(40)
    make = lambda: csets.cifar10c(("gaussian_noise", "contrast"), (1, 5), 40, clean=(x, y), pixels=pixels,
                               lazy=True, progress=False)
    cset = make()
    first = pb.score(_models(), cset, x, y, progress=False)
    layers = {k: pb.first_layer(r) for k, r in _models().items()}
    assert len(cset.seconds) == 4                                            # every cell made on demand
    assert layers["b"]["band"].float().mean().item() == 0.5 and layers["a"]["band"].numel() == 0

    def loaded(*a, **k):
        raise RuntimeError("a model was loaded")
    monkeypatch.setattr(zoo, "get_model", loaded)
    again = make()
    refs = _models()
    second = pb.score(refs, again, x, y, progress=False)
    assert again.seconds == {}                                               # no image was made
    assert all(r._model is None for r in refs.values())
    for name in refs:
        assert torch.equal(first.robustness.correct[name], second.robustness.correct[name])
        assert torch.equal(first.clean[name], second.clean[name])
        assert torch.equal(pb.first_layer(refs[name])["ratio"], layers[name]["ratio"])
    other = csets.cifar10c(("gaussian_noise", "contrast"), (1, 5), 40, clean=(x, y), pixels=pixels, lazy=True,
                        progress=False, seed=1)
    assert other.fingerprint != again.fingerprint
    with pytest.raises(RuntimeError, match="a model was loaded"):          # other images: scored anew
        pb.score(refs, other, x, y, progress=False)


def test_a_lazy_set_equals_the_eager_one(data_dir):
    x, y, pixels = csets.default_clean(12)
    kw = dict(clean=(x, y), pixels=pixels, cache=False, progress=False)
    eager = csets.cifar10c(("shot_noise", "frost"), (2,), 12, **kw)
    lazy = csets.cifar10c(("shot_noise", "frost"), (2,), 12, lazy=True, **kw)
    assert eager.fingerprint == lazy.fingerprint and lazy.seconds == {}
    assert torch.equal(eager.images("frost", 2), lazy.images("frost", 2)) and list(lazy.seconds) == [("frost", 2)]
    with pytest.raises(KeyError, match="not a cell"):
        lazy.images("frost", 3)
