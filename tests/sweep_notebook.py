"""A tiny claim notebook for sweep tests: the real verdict machinery (bootstrap,
Claim, publish, deviations) on seeded synthetic numbers, in about a second."""
from __future__ import annotations

from pathlib import Path

import nbformat

PARAMETERS = '''profile = "smoke"
device = "cpu"
seed = 0
seeds = 0
shift = 0.3          # mean of the synthetic per-image values
fail_while = ""      # a file: while it exists, the job of seed 1 raises (a planted failure)
'''

BODY = '''import os, types
import torch
from freqlib.deviations import Deviation, deviations_table
from freqlib.notebooks import glue
from freqlib.verdicts import Claim, Criterion, mean_estimate, publish

if fail_while and os.path.exists(fail_while) and seed == 1:
    raise RuntimeError(f"planted failure for seed {seed}")
x = shift + torch.randn(400, generator=torch.Generator().manual_seed(seed))
ctx = types.SimpleNamespace(profile=profile, variant="synthetic", device=device)
glue("profile", profile)
glue("device", device)
glue("variant", "synthetic")
claim = Claim("T1", "test", "the mean is positive", "> 0", [Criterion("mean above 0", "mean", above=0.0)])
est = mean_estimate(x, n_boot=300, seed=0)
claim.evaluate({"mean": est}, ours=est.fmt())
claim.compare_variant("JPEG q75", {"mean": mean_estimate(x - 1.0, n_boot=300, seed=0)})
publish([claim], ctx)
deviations_table([Deviation("evaluation", "no paper", "synthetic numbers", "a test")], chapter="T")
'''


def write(path: Path) -> Path:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell("# A sweep test notebook"),
                nbformat.v4.new_code_cell(PARAMETERS, metadata={"tags": ["parameters"]}),
                nbformat.v4.new_code_cell(BODY)]
    nbformat.write(nb, path)
    return path
