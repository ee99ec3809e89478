"""conclusion.png is legible at any number of arms: nothing clipped, a 0..1 axis for rates."""

from __future__ import annotations

import pytest

from evsys.conclusion.build import build_conclusion
from evsys.conclusion.plots import metric_plot
from tests.test_conclusion import write_sweep


@pytest.mark.parametrize(
    "arms",
    [
        {"a": [0.9, 0.91], "b": [0.5, 0.52]},
        {f"lr={i}e-4,batch_size={8 * i},warmup=10": [i / 60, i / 61] for i in range(1, 41)},
    ],
)
def test_every_label_is_inside_the_figure(tmp_path, arms):
    sweep = write_sweep(tmp_path, arms, baseline=next(iter(arms)))
    figure = metric_plot(build_conclusion(sweep))
    from matplotlib.backends.backend_agg import FigureCanvasAgg

    canvas = FigureCanvasAgg(figure)  # what savefig to a .png draws with
    canvas.draw()
    renderer = canvas.get_renderer()
    ax = figure.axes[0]
    texts = [*ax.get_xticklabels(), ax.xaxis.label, ax.yaxis.label, ax.title]
    box = figure.bbox
    for text in texts:
        extent = text.get_window_extent(renderer)
        assert box.x0 - 1 <= extent.x0 and extent.x1 <= box.x1 + 1, text.get_text()
        assert box.y0 - 1 <= extent.y0 and extent.y1 <= box.y1 + 1, text.get_text()
    labels = [t.get_window_extent(renderer) for t in ax.get_xticklabels()]
    overlaps = sum(a.overlaps(b) for a, b in zip(labels, labels[1:], strict=False))
    assert overlaps == 0
    assert ax.get_ylim() == pytest.approx((-0.05, 1.05))  # exact match: the whole 0..1 range
    figure.savefig(tmp_path / "conclusion.png")
    assert figure.get_size_inches()[0] <= 40
