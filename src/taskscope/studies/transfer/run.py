"""`TransferRun`: a transfer run folder read back (``taskscope.open_run`` returns it for ``study: transfer``)."""

from __future__ import annotations

from taskscope.studies.common.view import TrainedModelsRun


class TransferRun(TrainedModelsRun):
    """A transfer-study run folder: ``tables`` (pandas; the evaluations and every enabled analysis), ``config``,
    ``manifest``, ``stages``, ``models`` (the instruction-tuned models), ``figures``."""
