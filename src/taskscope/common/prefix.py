"""Shared-prefix planning: run a prefix that many prompts share once, then only each prompt's own tail.

Prompts of one task usually begin with the same task context (the definition and exemplars of the
Tk-Instruct format, a FLAN instruction).  In a causal model the states of those tokens do not depend on
what follows, so their keys and values can be computed once and reused: for a prefix of ``P`` tokens
shared by ``k`` prompts, the forward runs ``P + sum(suffix)`` tokens instead of ``k * P + sum(suffix)``.
The prefix is found on token ids (never on strings), so the reused cache holds exactly the tokens the
full prompts have.

`plan_shared_prefixes` works in this order:

1. sort the prompts' token-id lists lexicographically, so prompts that share a prefix are neighbours (the
   longest prefix common to a run of sorted lists is the one its first and last list share);
2. walk the sorted order, growing a group while the grown group still shares ``min_shared_tokens`` and adding
   the next prompt costs no more tokens than starting a new group (cost of a group = its prefix length + the
   sum of its members' suffix lengths), so a prompt that shares little never swallows the groups after it; a
   prefix always leaves at least one token of every member to run, since that last token is the one read out;
3. groups whose prefix is shorter than ``min_shared_tokens`` are not worth a cached prefix: their prompts
   go back to the ordinary length-sorted batches;
4. every other group's members are sorted by suffix length (longest first) and cut into batches.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class PrefixGroup:
    """Prompts (indices) sharing their first ``prefix_length`` tokens, in batches of suffixes."""

    prefix_length: int
    batches: list[list[int]]


@dataclass(frozen=True)
class PrefixPlan:
    groups: list[PrefixGroup]
    unshared: list[int]  # prompt indices that run in ordinary batches

    def tokens_run(self, lengths: Sequence[int]) -> int:
        """Tokens the forward passes run under this plan (prefixes once, suffixes, unshared prompts whole)."""
        shared = sum(g.prefix_length + sum(lengths[i] - g.prefix_length for b in g.batches for i in b)
                     for g in self.groups)
        return shared + sum(lengths[i] for i in self.unshared)


def common_prefix_length(a: Sequence[int], b: Sequence[int]) -> int:
    limit = min(len(a), len(b))
    for index in range(limit):
        if a[index] != b[index]:
            return index
    return limit


def _group_cost(prefix: int, lengths: Sequence[int]) -> int:
    return prefix + sum(length - prefix for length in lengths)


def plan_shared_prefixes(token_ids: Sequence[Sequence[int]], batch_size: int,
                         min_shared_tokens: int = 16) -> PrefixPlan:
    """Group prompts by a shared token prefix (see the module docstring for the order of operations)."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    order = sorted(range(len(token_ids)), key=lambda i: list(token_ids[i]))
    runs: list[tuple[int, list[int]]] = []  # (prefix length, members)
    for index in order:
        ids = token_ids[index]
        if runs:
            prefix, members = runs[-1]
            joined = min(prefix, common_prefix_length(token_ids[members[0]], ids), len(ids) - 1)
            lengths = [len(token_ids[m]) for m in members]
            if joined >= min_shared_tokens and (
                    _group_cost(joined, [*lengths, len(ids)]) <= _group_cost(prefix, lengths) + len(ids)):
                runs[-1] = (joined, [*members, index])
                continue
        runs.append((len(ids) - 1, [index]))
    groups, unshared = [], []
    for prefix, members in runs:
        if len(members) < 2 or prefix < min_shared_tokens:
            unshared.extend(members)
            continue
        members = sorted(members, key=lambda i: -len(token_ids[i]))
        groups.append(PrefixGroup(prefix, [members[s:s + batch_size] for s in range(0, len(members), batch_size)]))
    return PrefixPlan(groups, sorted(unshared))
