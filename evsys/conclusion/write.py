"""The conclusion files of a sweep dir: conclusion.json/.md/.png, the seed-averaged curves
(evsys/conclusion/curves.py) and a TensorBoard run."""

from __future__ import annotations

import shutil
from pathlib import Path

from evsys.conclusion.build import build_conclusion
from evsys.conclusion.curves import remove_band_runs, write_curves
from evsys.conclusion.model import Conclusion
from evsys.conclusion.plots import matrix_plot, matrix_plot_name, metric_plot
from evsys.conclusion.render import render_markdown
from evsys.confine import inside_sweep
from evsys.records import CONCLUSION_FILES, write_atomic

# Beside the arms' runs (<sweep>/tensorboard/<arm>/seed<n>, evsys/run/tensorboard.py).
TENSORBOARD_DIR = "tensorboard/conclusion"


def write_conclusion(sweep_dir: str | Path) -> Conclusion:
    """Build the conclusion and write conclusion.json/.md/.png and its TensorBoard run."""
    sweep_dir = Path(sweep_dir)
    try:
        conclusion = build_conclusion(sweep_dir)
    except Exception:
        remove_conclusion(sweep_dir)  # an earlier run's conclusion is not this one's
        raise
    markdown = render_markdown(conclusion) + write_curves(sweep_dir, conclusion)
    text = conclusion.to_json()
    json_file, markdown_file, plot_file = (sweep_dir / name for name in CONCLUSION_FILES)
    write_atomic(json_file, lambda f: f.write(text.encode("utf-8")))
    write_atomic(markdown_file, lambda f: f.write(markdown.encode("utf-8")))
    plot = metric_plot(conclusion)
    write_atomic(plot_file, lambda f: plot.savefig(f, format="png"))
    for arm, entry in (conclusion.continual or {}).items():
        figure = matrix_plot(arm, entry)
        write_atomic(sweep_dir / matrix_plot_name(arm), lambda f, fig=figure: fig.savefig(f))
    _write_tensorboard(_tensorboard_dir(sweep_dir), conclusion, markdown, plot)
    return conclusion


def remove_conclusion(sweep_dir: Path) -> None:
    """Delete the conclusion files of the sweep dir: rebuilt from its records at any time."""
    for path in sweep_dir.glob("conclusion*"):  # CONCLUSION_FILES and the matrix plots
        if path.is_file() or path.is_symlink():
            path.unlink()
    shutil.rmtree(_tensorboard_dir(sweep_dir), ignore_errors=True)
    remove_band_runs(sweep_dir)


def _tensorboard_dir(sweep_dir: Path) -> Path:
    """Where the conclusion's TensorBoard run goes; never through a link to elsewhere, since
    it is deleted and written anew."""
    return inside_sweep(sweep_dir / TENSORBOARD_DIR, sweep_dir, "the conclusion's TensorBoard run")


def _write_tensorboard(log_dir: Path, conclusion: Conclusion, markdown: str, plot) -> None:
    """A fresh TensorBoard run holding the conclusion as text and its plot as an image
    (never appended to)."""
    from torch.utils.tensorboard import SummaryWriter  # heavy import; only when writing

    shutil.rmtree(log_dir, ignore_errors=True)
    with SummaryWriter(log_dir=str(log_dir)) as writer:
        writer.add_text("conclusion", markdown, global_step=0)
        writer.add_text("verdict", conclusion.reason, global_step=0)
        # Time Series sorts card groups by name and opens the first two: a tag after `train`
        # leaves those two to the arms' benchmark scores (eval/) and their train loss.
        writer.add_figure("verdict/plot", plot, global_step=0)
