"""taskscope.evaluate: SNI metrics, batched greedy generation, target loss, in-context and few-shot evaluation.

See docs/evaluation.md for the exact metric definitions and the ICL / few-shot protocols.
"""

from .cache import EvalCache, hash_examples
from .examples import EvalSettings, evaluate_examples
from .fewshot import DEFAULT_SEEDS, DEFAULT_SHOTS, evaluate_fewshot, fewshot_instances
from .generate import generate
from .icl import (
    ExemplarOverlapError,
    check_disjoint,
    choose_exemplars,
    evaluate_icl,
    icl_format,
)
from .loss import REFERENCE_POLICIES, target_loss
from .rouge import (
    exact_match,
    normalize_answer,
    rouge_l,
    score_predictions,
    score_table,
)

__all__ = [
    "DEFAULT_SEEDS",
    "DEFAULT_SHOTS",
    "REFERENCE_POLICIES",
    "EvalCache",
    "EvalSettings",
    "ExemplarOverlapError",
    "check_disjoint",
    "choose_exemplars",
    "evaluate_examples",
    "evaluate_fewshot",
    "evaluate_icl",
    "exact_match",
    "fewshot_instances",
    "generate",
    "hash_examples",
    "icl_format",
    "normalize_answer",
    "rouge_l",
    "score_predictions",
    "score_table",
    "target_loss",
]
