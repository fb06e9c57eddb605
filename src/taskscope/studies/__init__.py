"""Study kinds, one package each, registered in the study registry (`taskscope.pipeline.kinds.STUDIES`).

* ``mossa`` (:mod:`taskscope.studies.mossa`): where multi-task learning happens inside the model, layer by layer
  (Zhao et al., EMNLP 2024);
* ``transfer`` (:mod:`taskscope.studies.transfer`): how instruction tuning on seen tasks transfers to unseen ones
  (Mueller, Dredze and Andrews).

A kind's package holds its config model (``config.py``), its stages, its run view (``run.py``) and registers one
:class:`~taskscope.pipeline.kinds.StudyKind` when imported; the engine (:mod:`taskscope.pipeline`) imports it only
through the registry, on the first lookup of its id.  Pieces both kinds use live once in
:mod:`taskscope.studies.common`.
"""
