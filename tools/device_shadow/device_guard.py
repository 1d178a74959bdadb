"""A torch function mode that refuses any operation mixing tensors of two devices
(moves and indexing with a CPU index excepted, as CUDA allows them). Without a GPU,
inputs on the ``meta`` device stand in for CUDA ones: a CPU constant built beside
them is then caught, matrix products included (a plain meta computation lets those
through). Used by sitecustomize.py here and by tests/test_device_discipline.py."""
import torch
from torch.overrides import TorchFunctionMode
from torch.utils._pytree import tree_leaves

MOVES = {torch.Tensor.to, torch.Tensor.cpu, torch.Tensor.copy_, torch.Tensor.__getitem__, torch.Tensor.__setitem__}


class MixedDevices(AssertionError):
    pass


class NoMixedDevices(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if func not in MOVES:
            devices = {t.device.type for t in tree_leaves((args, kwargs)) if isinstance(t, torch.Tensor) and t.dim()}
            if len(devices) > 1:
                raise MixedDevices(f"{getattr(func, '__name__', func)} mixes devices {sorted(devices)}")
        return func(*args, **kwargs)
