"""taskscope.similarity: representation similarity maths (numpy / torch / scipy only, nothing else of ours).

Public entry points: :func:`cka`, :func:`cka_grid`, :func:`hsic`, :class:`MinibatchCKA`,
:func:`bootstrap_ci`, :func:`permutation_test`, :func:`cka_sensitivity`, :func:`similarity` with the
measure registry :data:`MEASURES`, and the kernel registry :data:`KERNELS`.
"""

from taskscope.similarity.cka import cka, cka_grid
from taskscope.similarity.hsic import hsic
from taskscope.similarity.inputs import SimilarityWarning
from taskscope.similarity.kernels import KERNELS, Kernel, get_kernel, register_kernel

__all__ = [
    "KERNELS",
    "Kernel",
    "SimilarityWarning",
    "cka",
    "cka_grid",
    "get_kernel",
    "hsic",
    "register_kernel",
]
