"""Steps as evsys logs them, for every Lightning logger of a run (TensorBoard's RunLogger and
the tracker beside it): no `epoch` scalar (training is counted in steps), no second write of
a step already logged before its checkpoint (StepCheckpoint), and step s written at
`step_offset` + s, so a continual chain's stages follow each other on one axis."""

from __future__ import annotations


class ShiftedSteps:
    """Mixed in before a Lightning logger class."""

    step_offset = 0
    _last_logged: tuple | None = None

    def log_metrics(self, metrics: dict, step: int | None = None) -> None:
        metrics = {key: value for key, value in metrics.items() if key != "epoch"}
        if (step, metrics) == self._last_logged:
            return  # already written before the step's checkpoint (StepCheckpoint)
        self._last_logged = (step, metrics)
        self.write_metrics(metrics, None if step is None else step + self.step_offset)

    def write_metrics(self, metrics: dict, step: int | None) -> None:
        """Write at the shifted `step` (the logger's own log_metrics)."""
        super().log_metrics(metrics, step)
