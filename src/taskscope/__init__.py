"""taskscope: where multi-task learning happens inside instruction-tuned language models.

Sub-packages follow the data flow: ``tasks`` -> ``models`` -> ``train`` -> ``represent`` ->
``similarity`` -> ``analysis`` -> ``evaluate`` -> ``report`` -> ``pipeline``.
"""

__version__ = "0.1.0"
