"""Similarity measures behind one interface: ``similarity(X, Y, measure=...)``, registry ``MEASURES``."""

from taskscope.similarity.measures import cka, knn, procrustes, pwcca, rsa, svcca  # noqa: F401  (registration)
from taskscope.similarity.measures.base import (
    MEASURES,
    Measure,
    get_measure,
    register,
    similarity,
)

__all__ = ["MEASURES", "Measure", "get_measure", "register", "similarity"]
