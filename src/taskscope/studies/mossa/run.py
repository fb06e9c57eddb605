"""`MossaRun`: a MOSSA run folder read back (``taskscope.open_run`` returns it for ``study: mossa``)."""

from __future__ import annotations

import json
from functools import cached_property

from taskscope.analysis.layer_map import LayerMap
from taskscope.pipeline.view import Artifacts
from taskscope.studies.common.view import TrainedModelsRun
from taskscope.studies.mossa.extract import STATES_FILE


class MossaRun(TrainedModelsRun):
    """A MOSSA run folder: ``tables`` (pandas DataFrames by name), ``layer_map``, ``config``, ``manifest``,
    ``stages``, ``report_path``, and artifacts by name: ``models`` (a ``load_model`` spec per trained model:
    controls and instruction-tuned models), ``states`` (hidden states per extracted model, as tensors),
    ``figures`` (figure files by name)."""

    @property
    def states(self) -> Artifacts:
        """Stored hidden states by extraction item (``exp-pretrained``, ``control-TASK``): a dict task -> tensor
        of shape (layers + 1, n, d)."""
        from safetensors.torch import load_file

        return self.items_with(STATES_FILE, lambda folder: load_file(str(folder / STATES_FILE)))

    @cached_property
    def layer_map(self) -> LayerMap:
        return LayerMap.from_dict(json.loads((self.run_dir / "layer_map.json").read_text()))
