"""Device discipline without a GPU (tests/test_book.py::test_bootstrap_statistics_keep_to_their_device).

With this folder on PYTHONPATH and $FREQLIB_DEVICE_REPORT set, every Python process
(papermill kernels included) patches freqlib.verdicts.bootstrap when freqlib imports it:
after each real call, the statistic runs once more on meta tensors of the same shapes,
under a mode that refuses any operation mixing meta and CPU tensors. That is the mix
only a GPU run would hit (ctx.bootstrap moves samples to CUDA; a constant built on the
CPU inside the statistic then fails). One JSON line per check goes to the report:
"ok", "MIXED" (a bug), or "unchecked" (meta cannot compute it, e.g. it reads a value).
Processes that never import freqlib.verdicts pay nothing (no torch import here).

With $FREQLIB_BF16_SHADOW set instead (or as well), freqlib.evaluate.autocast becomes
bf16 autocast on the CPU too, so a CPU run meets the dtypes a CUDA run meets (bf16
activations and logits inside every forward pass, training and attack step):
  FREQLIB_BF16_SHADOW=1 PYTHONPATH=tools/device_shadow PAPER=1 bash tools/dry_run.sh WORK 1500 1
"""
import importlib.abc
import importlib.util
import os
import sys


def _patch(verdicts):
    import json
    import traceback

    import torch
    from device_guard import MixedDevices, NoMixedDevices

    def report(kind, statistic, exc=None):
        frames = [f for f in traceback.extract_tb(exc.__traceback__)] if exc is not None else []
        code = getattr(statistic, "__code__", None)
        entry = {"kind": kind, "error": str(exc)[:300] if exc is not None else "",
                 "where": [f"{f.filename}:{f.lineno}: {f.line}" for f in frames[-3:]],
                 "statistic": f"{code.co_filename}:{code.co_firstlineno}" if code else repr(statistic)}
        with open(os.environ["FREQLIB_DEVICE_REPORT"], "a") as f:
            f.write(json.dumps(entry) + "\n")

    real = verdicts.bootstrap

    def bootstrap(statistic, *samples, **kw):
        out = real(statistic, *samples, **kw)
        means = {k: torch.rand(3, *torch.as_tensor(v).shape[1:], device="meta")
                 for group in samples for k, v in group.items()}
        try:
            with NoMixedDevices():
                statistic(means)
            report("ok", statistic)
        except MixedDevices as exc:
            report("MIXED", statistic, exc)
        except Exception as exc:                      # noqa: BLE001 (meta cannot compute it)
            report("unchecked", statistic, exc)
        return out

    bootstrap.__doc__ = real.__doc__
    verdicts.bootstrap = bootstrap


def _bf16_everywhere(evaluate):
    import torch

    def autocast(device):
        return torch.autocast(torch.device(device).type, dtype=torch.bfloat16)
    autocast.__doc__ = evaluate.autocast.__doc__
    evaluate.autocast = autocast     # before train.py and attacks.py import it by name


class _PatchOnImport(importlib.abc.MetaPathFinder):
    def __init__(self, module: str, patch):
        self.module, self.patch = module, patch

    def find_spec(self, name, path, target=None):
        if name != self.module:
            return None
        sys.meta_path.remove(self)
        spec = importlib.util.find_spec(name)
        if spec is not None and spec.loader is not None:
            run = spec.loader.exec_module

            def exec_module(module):
                run(module)
                self.patch(module)
            spec.loader.exec_module = exec_module
        return spec


if os.environ.get("FREQLIB_DEVICE_REPORT"):
    sys.meta_path.insert(0, _PatchOnImport("freqlib.verdicts", _patch))
if os.environ.get("FREQLIB_BF16_SHADOW"):
    sys.meta_path.insert(0, _PatchOnImport("freqlib.evaluate", _bf16_everywhere))
