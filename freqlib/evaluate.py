"""The one evaluation primitive of the book: a batched forward pass.

Every lens (filtered accuracy, band attribution, heat maps, masks, attacks,
corruptions, the zoo's records) gets its logits from :func:`logits`, so
batching, autocast, memory layout and device placement are decided once.

* On CUDA the forward pass runs under bf16 autocast (enough for an argmax)
  in channels_last layout; ``precise=True`` keeps fp32, which logit
  *differences* such as the occluded-frequency attribution need, and turns
  off TF32 for it (:func:`full_fp32`).
* On the CPU everything is fp32 (faster there than bf16 emulation).
* Results stay on the model's device: no host synchronisation per batch.
  Callers move the (small) result to the CPU once.
"""
from __future__ import annotations

import contextlib
import warnings

import torch
from tqdm import tqdm

__all__ = ["autocast", "full_fp32", "AutocastLogits", "prepare_model", "eval_batch_size", "model_device", "logits",
           "predict", "correct", "accuracy", "for_attack"]


def autocast(device) -> contextlib.AbstractContextManager:
    """bf16 autocast on CUDA (tensor cores), nothing on CPU (fp32 is faster there)."""
    if torch.device(device).type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


# cuDNN runs float32 convolutions as TF32 by default on Ampere and later (a 10-bit mantissa):
# the highest DCT bands move a pixel by a few TF32 steps, so a logit difference would be
# rounding noise, and the positive part of noise looks like reliance on those bands.
_TF32_FLAGS = ((torch.backends.cudnn, "allow_tf32"), (torch.backends.cuda.matmul, "allow_tf32"))


def _set_tf32(values) -> list[bool]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")      # newer torch may announce these flags' successor; they still work
        old = [getattr(owner, name) for owner, name in _TF32_FLAGS]
        for (owner, name), value in zip(_TF32_FLAGS, values):
            setattr(owner, name, value)
    return old


@contextlib.contextmanager
def full_fp32(device):
    """IEEE float32 convolutions and matrix products on CUDA while the block runs (TF32 off,
    restored after); nothing on the CPU, which has no TF32."""
    if torch.device(device).type != "cuda":
        yield
        return
    old = _set_tf32([False] * len(_TF32_FLAGS))
    try:
        yield
    finally:
        _set_tf32(old)


class AutocastLogits(torch.nn.Module):
    """``model`` under :func:`autocast` with float32 logits: what torchattacks should call
    where bf16 is enough (query attacks, adversarial training's inner attack)."""

    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        with autocast(x.device):
            return self.model(x).float()


def prepare_model(model: torch.nn.Module, device) -> torch.nn.Module:
    """Move to ``device`` in channels_last layout (faster convolutions on CUDA
    and, measured in bench/, about 1.5x on CPU for the fast net)."""
    return model.to(device).to(memory_format=torch.channels_last)


def eval_batch_size(device) -> int:
    """Images per forward pass: small on CPU (cache-friendly), large on a GPU."""
    return 4096 if torch.device(device).type == "cuda" else 256


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


@torch.no_grad()
def logits(model, images: torch.Tensor, batch_size: int | None = None, precise: bool = False,
           transform=None, progress: str | None = None, tf32: bool = False) -> torch.Tensor:
    """Float32 logits of ``model`` for float images in [0, 1], batched, on the model's device.

    ``transform`` (optional, batched) is applied to each batch on the device
    before the model, e.g. a Fourier mask or a corruption. ``precise=True``:
    fp32 without autocast, in IEEE arithmetic (:func:`full_fp32`) unless ``tf32``,
    which keeps CUDA's default TF32 convolutions: for a reference that must match
    a training pass run in them (the masks' unmasked loss).
    """
    if images.dim() != 4 or not images.is_floating_point():
        raise ValueError(f"logits needs float images (N, C, H, W) in [0, 1], got {images.dtype} of shape "
                         f"{tuple(images.shape)}: convert uint8 (N, H, W, C) arrays with freqlib.data.to_tensor")
    if tf32 and not precise:
        raise ValueError("tf32=True only applies to precise=True passes (the others run under bf16 autocast)")
    device = model_device(model)
    batch_size = batch_size or eval_batch_size(device)
    model.eval()
    out = []
    starts = range(0, images.shape[0], batch_size)
    ieee = full_fp32(device) if precise and not tf32 else contextlib.nullcontext()
    with ieee:          # set once per call, not per batch; the transform runs in it too
        for s in tqdm(starts, desc=progress, leave=False, disable=progress is None):
            x = images[s:s + batch_size].to(device, non_blocking=True)
            if transform is not None:
                x = transform(x)
            if x.is_cuda:
                x = x.contiguous(memory_format=torch.channels_last)
            with contextlib.nullcontext() if precise else autocast(device):
                out.append(model(x).float())
    if not out:
        return torch.empty(0, 0, device=device)
    return torch.cat(out)


def predict(model, images: torch.Tensor, **kw) -> torch.Tensor:
    """Predicted classes (on the model's device)."""
    return logits(model, images, **kw).argmax(1)


def correct(model, images: torch.Tensor, labels: torch.Tensor, **kw) -> torch.Tensor:
    """Per-image correctness as a float tensor of 0/1 on the CPU: the sample a
    bootstrap over test images resamples (see :mod:`freqlib.verdicts`)."""
    if labels.shape[0] != images.shape[0]:
        raise ValueError(f"{images.shape[0]} images but {labels.shape[0]} labels")
    pred = predict(model, images, **kw)
    return (pred == labels.to(pred.device)).float().cpu()


def accuracy(model, images: torch.Tensor, labels: torch.Tensor, **kw) -> float:
    """Share of ``images`` classified as ``labels``."""
    return float(correct(model, images, labels, **kw).mean())


class _ContiguousGrad(torch.autograd.Function):
    """Identity whose backward returns a contiguous gradient."""

    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return grad.contiguous()


class _AttackView(torch.nn.Module):
    def __init__(self, model: torch.nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(_ContiguousGrad.apply(x))


def for_attack(model: torch.nn.Module) -> torch.nn.Module:
    """``model`` as gradient attacks (torchattacks) should see it.

    A channels_last network can hand back an input gradient in channels_last
    layout; torchattacks' L2 attacks flatten it with ``.view``, which fails on
    that layout. The wrapper returns the same logits and a contiguous gradient.
    Its ``train()`` / ``eval()`` reach the wrapped model.
    """
    return _AttackView(model)
