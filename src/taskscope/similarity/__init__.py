"""taskscope.similarity: representation similarity maths (numpy / torch / scipy only, nothing else of ours).

Entry points: :func:`cka` (batched), :func:`cka_grid` (every stack of one list against every stack of
another, each Gram once), :func:`hsic`, :class:`MinibatchCKA` (streaming), :func:`bootstrap_ci` and
:func:`bootstrap_grid` (several stacks against one on the same resamples), :func:`paired_difference`,
:func:`permutation_test`, :func:`cka_sensitivity` (robustness), :func:`similarity` with the measure
registry :data:`MEASURES` (``cka``, ``procrustes``, ``svcca``, ``pwcca``, ``rsa``, ``mutual_knn``) and
the kernel registry :data:`KERNELS` (``linear``, ``rbf``, ``poly``).  See docs/similarity.md.
"""

from taskscope.similarity.cka import cka, cka_grid
from taskscope.similarity.hsic import hsic
from taskscope.similarity.inputs import SimilarityWarning
from taskscope.similarity.kernels import KERNELS, Kernel, get_kernel, register_kernel
from taskscope.similarity.measures import (
    MEASURES,
    Measure,
    get_measure,
    register,
    similarity,
)
from taskscope.similarity.minibatch import MinibatchCKA
from taskscope.similarity.robustness import (
    SensitivityReport,
    cka_sensitivity,
    cka_without_top_directions,
    remove_top_directions,
)
from taskscope.similarity.uncertainty import (
    BootstrapResult,
    DifferenceResult,
    PermutationResult,
    bootstrap_ci,
    bootstrap_grid,
    paired_difference,
    permutation_test,
    resample_indices,
)

__all__ = [
    "KERNELS",
    "MEASURES",
    "BootstrapResult",
    "DifferenceResult",
    "Kernel",
    "Measure",
    "MinibatchCKA",
    "PermutationResult",
    "SensitivityReport",
    "SimilarityWarning",
    "bootstrap_ci",
    "bootstrap_grid",
    "cka",
    "cka_grid",
    "cka_sensitivity",
    "cka_without_top_directions",
    "get_kernel",
    "get_measure",
    "hsic",
    "paired_difference",
    "permutation_test",
    "resample_indices",
    "register",
    "register_kernel",
    "remove_top_directions",
    "similarity",
]
