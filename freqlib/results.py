"""Results computed once per model: what a chapter measures of a zoo model is
stored beside the zoo and read back the next time, without loading (or
training) the model again.

Why: a paper-profile chapter measures dozens of networks (chapter 2 scores
each ResNet-18 on 750,000 CIFAR-10-C images), more than one time-boxed GPU
call can do, and its checkpoints are too large to carry between calls. With
every per-model result cached, a chapter is *resumable*: when a call's time is
up (``FREQLIB_DEADLINE``, set by ``python -m freqlib paper-run``), the next
uncached result raises :class:`~freqlib.deadline.OutOfTime` instead of starting; the results
finished so far are kept (and carried: they are small), and the next call's
execution of the chapter reads them back and goes on.

* :class:`ModelRef` names a zoo model without loading it;
* :func:`measured` is one result of one model, cached;
* :func:`cached` is the store underneath (any dict, keyed by JSON parts).

A result's key covers the model's zoo key (training config, data variant,
training code) or, for a model outside the zoo, a digest of its weights; what
was measured and with which settings; and a digest of the code that measures.
Files are written atomically; an unreadable or stale file is recomputed.
"""
from __future__ import annotations

import hashlib
import json
import time
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

import torch

from .deadline import check_deadline

__all__ = ["results_dir", "cached", "cached_many", "measured", "ModelRef",
           "digest", "parts_digest", "net_digest", "code_digest"]

_session: list[str] = []              # results computed (not read back) in this process, for the message


def results_dir() -> Path:
    from .zoo import zoo_dir
    return zoo_dir() / "results"


def digest(*tensors: torch.Tensor) -> str:
    """sha256 (16 hex) of tensors' bytes, in order."""
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:16]


def net_digest(model) -> str:
    """A network's identity: its zoo key when it has one, else a digest of its weights."""
    rec = getattr(model, "record", {}) or {}
    return rec.get("key") or digest(*model.state_dict().values())


def code_digest(*modules: str) -> str:
    """sha256 (16 hex) of freqlib source files (names such as ``"corruptions.py"``)."""
    from .io import repo_root
    h = hashlib.sha256()
    for name in modules:
        h.update(name.encode() + (repo_root() / "freqlib" / name).read_bytes())
    return h.hexdigest()[:16]


def parts_digest(parts) -> str:
    """sha256 (16 hex) of JSON-able key parts (keys sorted; anything else by its ``str``)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def _entry(stem: str, key_parts: dict) -> tuple[Path, str]:
    key = parts_digest(key_parts)
    return results_dir() / f"{stem}-{key}.pt", key


_MISSING = object()


def _load(path: Path, key: str):
    """The stored result, or ``_MISSING`` when the file is absent, unreadable or holds another key."""
    if path.is_file():
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
            if saved.get("key") == key:
                return _unpacked(saved["result"])
        except Exception:
            pass  # unreadable: compute again and overwrite atomically
    return _MISSING


def _store(path: Path, key: str, result, seconds: float) -> None:
    from .io import atomic_torch_save
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_torch_save({"key": key, "result": _packed(result), "seconds": seconds}, path)
    _session.append(path.name)


def cached(stem: str, key_parts: dict, compute):
    """``compute()`` (a dict, or anything ``torch.save`` keeps) stored under
    ``data/models/results/<stem>-<hash>.pt``; read back when the file exists and
    holds the same key, else computed (unless the deadline has passed) and written
    atomically."""
    return cached_many([(stem, key_parts)], lambda todo: [compute()])[0]


def cached_many(entries: list[tuple[str, dict]], compute) -> list:
    """Several results that are cheaper computed together (masks trained in one loop):
    ``entries`` are ``(stem, key_parts)`` pairs as for :func:`cached`;
    ``compute(todo)`` gets the indices of the entries not stored yet and returns
    their results in that order. Each is stored under its own key, so a later
    call with other company reads it back."""
    places = [_entry(stem, parts) for stem, parts in entries]
    out = [_load(path, key) for path, key in places]
    todo = [i for i, r in enumerate(out) if r is _MISSING]
    if todo:
        check_deadline(entries[todo[0]][0], len(_session))
        start = time.perf_counter()
        results = list(compute(todo))
        if len(results) != len(todo):
            raise RuntimeError(f"cached_many: compute returned {len(results)} results for {len(todo)} entries")
        seconds = (time.perf_counter() - start) / len(todo)
        for i, result in zip(todo, results):
            _store(*places[i], result, seconds)
            out[i] = result
    return out


_BITS = "__bits__"


def _packed(result):
    """Boolean tensors of a dict result stored as bits (per-image 0/1 results of a
    model on 750,000 images: 94 kB instead of 750 kB, so they can be carried)."""
    if not isinstance(result, dict):
        return result
    import numpy as np
    return {k: ({_BITS: torch.from_numpy(np.packbits(v.cpu().numpy().ravel())), "shape": list(v.shape)}
                if isinstance(v, torch.Tensor) and v.dtype == torch.bool else v) for k, v in result.items()}


def _unpacked(result):
    if not isinstance(result, dict):
        return result
    import numpy as np

    def back(v):
        n = int(np.prod(v["shape"], dtype=np.int64))
        return torch.from_numpy(np.unpackbits(v[_BITS].numpy(), count=n).astype(bool)).reshape(v["shape"])
    return {k: back(v) if isinstance(v, dict) and _BITS in v else v for k, v in result.items()}


@dataclass
class ModelRef:
    """A zoo model by name and overrides, loaded (trained if missing) only when a
    result that is not cached needs it: ``ref.model``."""
    name: str
    profile: str
    device: str = "cpu"
    overrides: dict = field(default_factory=dict)
    _model: object = field(default=None, repr=False, compare=False)

    @cached_property
    def key(self) -> str:
        from .profiles import recipe_config
        from .zoo import dataset_variant, model_key
        variant = dataset_variant(recipe_config(self.name, self.profile, **self.overrides).dataset)
        return model_key(self.name, self.profile, variant, **self.overrides)[0]

    @property
    def stem(self) -> str:
        return f"{self.name}-{self.profile}-{self.key}"

    @property
    def model(self):
        if self._model is None:
            from .zoo import get_model
            self._model = get_model(self.name, self.profile, self.device, **self.overrides)
        return self._model


def measured(model, what: str, config: dict, compute, code: tuple = ()) -> dict:
    """``compute(network)`` for ``model`` (a :class:`ModelRef` or a network), cached.

    ``what`` names the result, ``config`` holds everything else it depends on
    (data digests, settings), ``code`` the freqlib files that compute it.
    A :class:`ModelRef` whose result is cached is never loaded.
    """
    if isinstance(model, ModelRef):
        ident, stem, net = model.key, model.stem, lambda: model.model
    else:
        ident, stem, net = net_digest(model), "net", lambda: model
    key = {"net": ident, "what": what, "config": config, "code": code_digest(*code) if code else ""}
    return cached(f"{what}-{stem}", key, lambda: compute(net()))
