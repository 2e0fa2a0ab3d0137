"""Issue 21's Fashion-MNIST rows, asserted: each row of ``python -m bench quality`` run over
seeds 0–2 by the plain command, its baseline measured in the same run, judged on the 10,000
test images with paired tests (``bench/quality.py`` says how each row is judged).

CI (slow) runs the rows that are cheap and clear of their bars (measured, docs/quality.md):
``autoencoder`` (45 CPU-s for three seeds; reconstruction error 0.652 / 0.646 / 0.650 of
PCA's with 16 components against the 0.8 bar, each seed's per-image errors below 0.8× PCA's
with p ≤ 1e-4 by a paired bootstrap), ``autoencoder.denoising`` (34 CPU-s; +7.8 dB over the
corrupted input against the +5 dB bar), ``hopfield`` (about 1 CPU-s; 1.000 against the
nearest stored image's 1.000 since its completion retrieves by the visible entries; it read
0.889 before), ``neural.mlp`` on the three 2-D densities (about 250 CPU-s alone for nine
trainings; each within 0.1 nats of the validation-tuned KDE, the closest by +0.008 nats at
the lower end of its paired interval), and ``autoencoder.variational`` on seed 0 (about 175 CPU-s; its IW-100 bound
4.38 bits/dim against PPCA's exact 7.47). The others are byhand (``EBMKIT_SLOW_TESTS=all``):
minutes to CPU-hours each (``gan``, ``neural.jem``, ``ssl``, ``attention.transformer``,
``worldmodels``), or, for ``kmeans``, a mean inside its bar whose interval over the seeds
is not (docs/quality.md).
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

import ebmkit as ek

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ at the repo root
from bench import quality

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module", autouse=True)
def fashion():
    try:
        ek.get_dataset("fashion-mnist", split="test")
    except ek.errors.EbmkitError as exc:
        pytest.skip(f"fashion-mnist not installed: {exc}")


def _meets(key: str, seeds: tuple[int, ...] = quality.SEEDS) -> None:
    row = quality.run_row(key, seeds, save=False)
    print(f"\n{key}: {row.figures}\n  " + "\n  ".join(row.comparisons)
          + f"\n  CPU {row.cpu_s:.0f} s")
    assert row.met, f"{key} misses its bar ({row.bar}): {row.figures}; {row.comparisons}"


@pytest.mark.slow
@pytest.mark.parametrize("key", ["autoencoder", "autoencoder.denoising", "hopfield",
                                 "neural.mlp"])
def test_fashion_row_ci(key):
    _meets(key)


@pytest.mark.byhand
@pytest.mark.parametrize("key", ["kmeans", "masked.image", "ssl.simclr", "ssl.vicreg",
                                 "ssl.byol",
                                 "autoencoder.variational", "gan.dcgan", "gan.ebgan",
                                 "neural.conv", "neural.jem",
                                 "attention.transformer", "worldmodels"])
def test_fashion_row_byhand(key):
    _meets(key)


@pytest.mark.slow
def test_fashion_row_vae_one_seed():
    """``autoencoder.variational``, seed 0 only in CI (about 175 CPU-s a seed, 120 of them
    training; the three seeds are byhand, above): its IW-100 bound, 4.38 bits/dim on the
    dequantised test images when measured, against probabilistic PCA's exact 7.47 with the
    same 8 latents; above it per image (paired bootstrap, p ≤ 1e-4). A margin of three
    bits/dim, so one seed tells as much as three here, at a third of CI's time."""
    _meets("autoencoder.variational", (0,))
