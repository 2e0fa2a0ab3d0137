"""bench/quality.py: its per-item evaluations agree with the SSL family's definitions, and
its report lists every row of issue 21's table (measured or not)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import ebmkit as ek

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # bench/ at the repo root
from bench import quality

pytestmark = pytest.mark.usefixtures("one_thread")


def test_per_item_evaluations_match_the_ssl_definitions():
    """Averaged, the per-item k-NN and probe correctness are exactly ``ebmkit_ssl.evaluate``'s
    accuracies (raw pixels on digits: 0.986 and 0.983), so paired tests use the same figures."""
    from ebmkit_ssl.evaluate import knn_accuracy, linear_probe

    train, test = ek.get_dataset("digits"), ek.get_dataset("digits", split="test")
    a, b = train.labels.long(), test.labels.long()
    items = quality.classification_items(train.y, a, test.y, b)
    assert items["knn5"].dtype == torch.bool and items["knn5"].shape == b.shape
    assert float(items["knn5"].double().mean()) == pytest.approx(
        knn_accuracy(train.y, a, test.y, b), abs=1e-6)
    assert float(items["linear_probe"].double().mean()) == pytest.approx(
        linear_probe(train.y, a, test.y, b), abs=1e-6)


def test_psnr_per_item_and_the_kde_by_hand():
    y = torch.zeros(2, 4)
    pred = torch.tensor([[0.1, 0.1, 0.1, 0.1], [0.0, 0.0, 0.0, 0.2]])
    torch.testing.assert_close(quality.psnr_per_item(pred, y), torch.tensor([20.0, 20.0]))
    mask = torch.tensor([[1, 1, 0, 0], [0, 0, 0, 1]], dtype=torch.bool)
    torch.testing.assert_close(quality.psnr_per_item(pred, y, mask),
                               torch.tensor([20.0, 10 * torch.log10(torch.tensor(25.0))]))
    # one centre: the KDE is the Gaussian N(c, h²I) itself
    c, h, p = torch.tensor([[1.0, -1.0]]), 0.5, torch.tensor([[1.5, -1.0], [1.0, -1.0]])
    ref = torch.distributions.Normal(c, h).log_prob(p).sum(1).double()
    torch.testing.assert_close(quality._kde_logpdf(p, c, h), ref)


def test_report_lists_every_row_measured_or_not():
    row = quality.Row("kmeans", "kmeans", "NMI", {"kmeans": [0.5, 0.52, 0.51]},
                      ["difference: +0.001"], "within 0.01", True, [0, 1, 2], 12.0,
                      "python -m bench quality kmeans")
    text = quality.markdown({"kmeans": row})
    assert ("| `kmeans` | NMI | kmeans: 0.51 ± 0.025 (0.5, 0.52, 0.51) | within 0.01 | **yes** "
            "| 12 |") in text
    assert "## Not yet measured" in text
    for key in quality.ROWS:
        assert f"`{key}`" in text
    with pytest.raises(SystemExit):
        quality.main(["no-such-row"])


def test_docs_quality_is_the_report_of_the_saved_results():
    """docs/quality.md is what ``python -m bench quality --report`` writes from the results
    kept in git (bench/quality_results/): nothing in the table is typed by hand, and every
    saved row is a row of the table's, with its command, seeds and figures."""
    rows = quality.load_rows()
    assert rows, "no saved results under bench/quality_results/"
    for key, row in rows.items():
        assert key in quality.ROWS and row.key == key, key
        assert "python -m bench quality" in row.command, (key, row.command)
        assert row.seeds and all(row.figures.values()), (key, row.figures)
    text = (Path(quality.ROOT) / "docs" / "quality.md").read_text(encoding="utf-8")
    assert text == quality.markdown(rows), "stale: run python -m bench quality --report"
