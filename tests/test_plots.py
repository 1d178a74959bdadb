"""The plotting helpers: what a spectrum figure's colour scale is drawn from."""
import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from freqlib import spectral  # noqa: E402
from freqlib.plots import show_spectrum  # noqa: E402


def _mean_removed_power():
    """A centred power map whose frequency 0 is near 0 (the mean removed), as in the primer."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(8, 32, 32, generator=g)
    return spectral.power_spectrum(x - x.mean((-2, -1), keepdim=True)).mean(0)


def test_show_spectrum_masks_frequency_zero_only_when_asked():
    power = _mean_removed_power()
    logs = np.log10(power.numpy() + 1e-12)
    others = np.delete(logs.ravel(), 16 * 32 + 16)            # every value but frequency 0
    assert logs[16, 16] < others.min() - 3                     # the removed mean sits decades below the rest
    fig, (a, b) = plt.subplots(1, 2)
    plain = show_spectrum(a, power)
    masked = show_spectrum(b, power, mask_zero=True)
    # by default the colour scale reaches down to frequency 0 ...
    assert np.isclose(plain.norm.vmin, logs.min(), atol=1e-4)
    # ... with mask_zero it spans the other frequencies only, and frequency 0 is masked
    assert np.isclose(masked.norm.vmin, others.min(), atol=1e-4)
    assert np.isclose(masked.norm.vmax, others.max(), atol=1e-4)
    data = masked.get_array()
    assert data.mask[16, 16] and data.mask.sum() == 1
    plt.close(fig)
