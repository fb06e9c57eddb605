"""The run view of a study that trains models: :class:`~taskscope.pipeline.view.RunView` plus ``models``."""

from __future__ import annotations

from taskscope.pipeline.view import Artifacts, RunView
from taskscope.studies.common.training import CHECKPOINT_FILE, trained_spec


class TrainedModelsRun(RunView):
    """A run folder whose stages train models: ``models`` gives a ``load_model`` spec per trained item."""

    @property
    def models(self) -> Artifacts:
        """Trained models by name, each a ``load_model`` spec: ``load_model(run.models["instruction_tuned"])``."""
        return self.items_with(CHECKPOINT_FILE, trained_spec)
