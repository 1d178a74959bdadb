"""The page "Use freqlib on your own model" runs as printed."""
import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PAGE = ROOT / "use_freqlib.md"

# Appended to the page's code: what the page says the three calls return.
CHECKS = """
assert curves["radius"].tolist() == list(range(0, 17, 2))
assert curves["low"].shape == curves["high"].shape == (9,)
assert 0 <= float(curves["low"].min()) and float(curves["high"].max()) <= 1
assert bands.occlusion.shape == (100, 32) and bands.pred.shape == (100,)
assert abs(float(profile.sum()) - 1) < 1e-6 and 0 <= float(band_centroid(profile)) <= 31
assert heat["error"].shape == (32, 32) and heat["n_images"] == 20
from freqlib.heatmap import plot_heatmaps          # the call the page's prose gives for the map
plot_heatmaps({"my model": heat}, "error rate")
print("PAGE OK")
"""


def code_blocks(text: str, language: str = "python") -> list[str]:
    return re.findall(rf"^```{language}\n(.*?)^```", text, re.S | re.M)


def test_page_states_the_preprocessing_contract():
    text = PAGE.read_text()
    assert "[0, 1]" in text and "normalis" in text and "pip install -e ." in text
    assert 'plot_heatmaps({"my model": heat}, "error rate")' in text      # the call CHECKS runs
    assert len(code_blocks(text)) >= 4


def test_page_code_runs_on_a_tiny_model(tmp_path):
    source = "\n".join(code_blocks(PAGE.read_text())) + CHECKS
    env = {**os.environ, "PYTHONPATH": str(ROOT), "MPLBACKEND": "Agg"}
    res = subprocess.run([sys.executable, "-c", source], cwd=tmp_path, env=env, capture_output=True, text=True,
                         timeout=600)
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-3000:]
    assert "PAGE OK" in res.stdout
    assert "attribution centroid (DCT band):" in res.stdout
