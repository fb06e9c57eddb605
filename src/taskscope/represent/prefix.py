"""Shared-prefix planning lives in `taskscope.common.prefix` (training uses it too); re-exported here."""

from taskscope.common.prefix import PrefixGroup, PrefixPlan, common_prefix_length, plan_shared_prefixes

__all__ = ["PrefixGroup", "PrefixPlan", "common_prefix_length", "plan_shared_prefixes"]
