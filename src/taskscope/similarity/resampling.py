"""CKA on the full sample, on every leave-one-out sample and on bootstrap resamples, from Gram matrices computed once.

A sample of the ``n`` inputs is a vector of row counts ``w`` (a resample's multiplicities, ``1 - e_i``
for leave-one-out, ``1`` for the full sample).  The centred inner product of the sample's Gram
matrices ``K[idx][:, idx]`` and ``L[idx][:, idx]`` (duplicates kept as separate rows) is a function
of a few count-weighted sums of the full-sample matrices (:class:`WeightedSums`), so no resample's
matrix is ever built.  With ``m = sum w``, ``r_K = K w``, ``k = diag K`` and ``x_K = r_K`` (biased)
or ``r_K - k`` (debiased):

* ``q = w'(K o L) w``, ``s_K = sum_i w_i x_Ki``, ``c = sum_i w_i x_Ki x_Li``, ``e = sum_i w_i k_Ki k_Li``;
* biased (double centring): ``<HK'H, HL'H> = q - 2 c / m + s_K s_L / m^2``;
* debiased (U-centring of the resampled matrix, zero diagonal, duplicate pairs kept):
  ``<U(K'), U(L')> = q - e + s_K s_L / ((m-1)(m-2)) - 2 c / (m-2)``;
* CKA = ``<K', L'> / sqrt(<K', K'> <L', L'>)``; a side whose centred norm is below ``1e-10`` of its
  uncentred ``w'(K o K)w`` is constant on that sample: NaN.

Order of operations in :func:`sample_cka` (per chunk of leading positions):

1. each side's full-sample Gram (peak-scaled float64, :mod:`.uncertainty`) loses the row and column
   effects U-centring removes, diagonal included (:func:`~.hsic.additive_centre`: every centring of
   every sample is unchanged by it; its off-diagonal rows sum to 0, which keeps the sums below free
   of cancellation), in float64; a side shared by several pairs (MOSSA's control model) once;
2. the row sums ``(G_a o G_b) 1`` each pair and each side's norm needs, in float64;
3. full sample and leave-one-out: closed forms from (2) and the diagonals (a Gram's row sums are its
   diagonal after step 1), plus, for the biased estimator's leave-one-out samples, one matrix-vector
   product per side (``O(n^2)`` for all ``n`` leave-one-out samples); with ``debiased=True`` also the
   biased estimator's full-sample value (``SampleCKA.biased``);
4. bootstrap: every side's Gram and every needed product ``G_a o G_b``, diagonals set to 0, stacked
   and multiplied by the counts of a chunk of resamples in one batched matrix product (float32 in
   ``precision="fast"``: the counts are exact, the matrices rounded once; float64 in ``"float64"``),
   then the diagonals added back in float64 (``r = W G~ + w o k``, ``q = w'A~w + sum w^2 a``): the
   diagonal carries much of a Gram matrix's mass and U-centring removes it, so keeping it out of the
   float32 product keeps the rounding relative to what remains.  In ``"fast"`` a first-order estimate
   of the float32 rounding of every value (:func:`_rounding`) decides, per position, whether the
   float32 result stands; where it exceeds :data:`FAST_TOLERANCE` (small ``n`` with a dominant
   diagonal, e.g. a cubic kernel) that position's resamples are recomputed in float64;
5. the sums of (3) and (4) -> inner products (the formulas above) -> cosines, in float64.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from taskscope.similarity.hsic import additive_centre
from taskscope.similarity.inputs import Precision
from taskscope.similarity.kernels import compute_dtype

Pair = tuple[int, int]
CHUNK_BYTES = 1 << 28  # working memory per chunk
FAST_TOLERANCE = 1e-6  # largest estimated float32 rounding error of a resampled CKA value in precision="fast"


@dataclass(frozen=True)
class SampleCKA:
    """CKA of every pair ``(a, b)`` with the chosen estimator: ``estimate (pairs, ...)`` on all inputs,
    ``leave_one_out (n, pairs, ...)``, ``resampled (n_resamples, pairs, ...)``; ``biased (pairs, ...)``: the
    biased estimator on all inputs, whichever was chosen (the intervals of :mod:`.uncertainty` are built
    from the debiased estimator and report the biased estimate beside them)."""

    estimate: torch.Tensor
    leave_one_out: torch.Tensor
    resampled: torch.Tensor
    biased: torch.Tensor


@dataclass(frozen=True)
class WeightedSums:
    """The count-weighted sums of the module docstring for ``c`` samples: ``q[(a, b)]``, ``e[(a, b)]``,
    ``c[(a, b)]`` over pairs (the norms' pairs ``(a, a)`` included) and ``s[a]`` over sides, each
    ``(p, c)``; ``m (c,)`` the sample sizes."""

    q: dict[Pair, torch.Tensor]
    e: dict[Pair, torch.Tensor]
    c: dict[Pair, torch.Tensor]
    s: dict[int, torch.Tensor]
    m: torch.Tensor


def _products(pairs: Sequence[Pair]) -> list[Pair]:
    """Every pair and every side's norm pair ``(a, a)``, each once, in first-seen order."""
    return list(dict.fromkeys([p for a, b in pairs for p in ((a, b), (a, a), (b, b))]))


def _sides(pairs: Sequence[Pair]) -> list[int]:
    return list(dict.fromkeys(s for pair in pairs for s in pair))


def _inner(sums: WeightedSums, a: int, b: int, debiased: bool) -> torch.Tensor:
    m = sums.m
    q, c = sums.q[(a, b)], sums.c[(a, b)]
    if not debiased:
        return q - 2.0 * c / m + sums.s[a] * sums.s[b] / m ** 2
    return q - sums.e[(a, b)] + sums.s[a] * sums.s[b] / ((m - 1) * (m - 2)) - 2.0 * c / (m - 2)


def _cosines(sums: WeightedSums, pairs: Sequence[Pair], debiased: bool) -> torch.Tensor:
    """Step 5 -> ``(c, pairs, p)``."""
    norms = {}
    for a in _sides(pairs):
        squared = _inner(sums, a, a, debiased)
        norms[a] = torch.where(squared > 1e-10 * sums.q[(a, a)], squared, torch.nan).sqrt()
    values = [_inner(sums, a, b, debiased) / (norms[a] * norms[b]) for a, b in pairs]
    return torch.stack(values).permute(2, 0, 1)


@dataclass(frozen=True)
class CentredChunk:
    """Step 1-2 for a chunk of ``p`` positions: ``grams[a] (p, n, n)`` (float64, additively centred),
    ``diag[a] (p, n)`` their diagonals, ``rows[(a, b)] (p, n)`` the row sums of ``G_a o G_b``.  An
    additively centred Gram's off-diagonal rows sum to 0, so its row sums ``u = G 1`` are its diagonal
    ``k``: the sums below use ``u = k`` (no pass over the matrix, and no rounding residue of a zero)."""

    grams: dict[int, torch.Tensor]
    diag: dict[int, torch.Tensor]
    rows: dict[Pair, torch.Tensor]


def _centred_chunk(grams: dict[int, torch.Tensor], products: Sequence[Pair]) -> CentredChunk:
    centred = {a: additive_centre(g) for a, g in grams.items()}
    return CentredChunk(grams=centred, diag={a: torch.diagonal(g, dim1=-2, dim2=-1) for a, g in centred.items()},
                        rows={(a, b): torch.linalg.vecdot(centred[a], centred[b]) for a, b in products})


def _full_sums(chunk: CentredChunk, debiased: bool) -> tuple[WeightedSums, dict]:
    """Step 3, full sample (``c = 1``) -> its sums and, per side, ``x = u - debiased * k`` (``u = k``:
    :class:`CentredChunk`, so ``x = 0`` debiased and ``k`` biased)."""
    grams, diag = chunk.grams, chunk.diag
    first = next(iter(grams.values()))
    x = {a: torch.zeros_like(diag[a]) if debiased else diag[a] for a in grams}
    full = WeightedSums({}, {}, {}, {a: x[a].sum(dim=-1, keepdim=True) for a in grams},
                        torch.full((1,), float(first.shape[-1]), dtype=torch.float64, device=first.device))
    for (a, b), product_rows in chunk.rows.items():
        full.q[(a, b)] = product_rows.sum(dim=-1, keepdim=True)
        full.c[(a, b)] = (x[a] * x[b]).sum(dim=-1, keepdim=True)
        full.e[(a, b)] = (diag[a] * diag[b]).sum(dim=-1, keepdim=True)
    return full, x


def _closed_form_sums(chunk: CentredChunk, debiased: bool) -> tuple[WeightedSums, WeightedSums]:
    """Step 3: the sums of the full sample (:func:`_full_sums`) and of the ``n`` leave-one-out samples.

    With ``u = G 1 = k`` (:class:`CentredChunk`), ``x = u - debiased * k`` and ``w = 1 - e_i``:
    ``s(i) = 1'x - x_i``, ``q(i) = 1'A1 - 2 (A1)_i + A_ii`` and
    ``c(i) = x_a'x_b - (G_a x_b)_i - (G_b x_a)_i + (A 1)_i - (x_ai - G_a,ii)(x_bi - G_b,ii)``
    (debiased, ``x = 0``: ``c(i) = (A 1)_i - G_a,ii G_b,ii``, no matrix-vector product).
    """
    grams, diag = chunk.grams, chunk.diag
    full, x = _full_sums(chunk, debiased)
    n, device = diag[next(iter(grams))].shape[-1], full.m.device
    gx = {} if debiased else _applied(chunk, x)
    loo = WeightedSums({}, {}, {}, {a: full.s[a] - x[a] for a in grams},
                       torch.full((n,), n - 1.0, dtype=torch.float64, device=device))
    for (a, b), product_rows in chunk.rows.items():
        product_diag = diag[a] * diag[b]
        loo.q[(a, b)] = full.q[(a, b)] - 2.0 * product_rows + product_diag
        loo.c[(a, b)] = product_rows - product_diag if debiased else (
            full.c[(a, b)] - gx[(a, b)] - gx[(b, a)] + product_rows - (x[a] - diag[a]) * (x[b] - diag[b]))
        loo.e[(a, b)] = full.e[(a, b)] - product_diag
    return full, loo


def _applied(chunk: CentredChunk, x: dict[int, torch.Tensor]) -> dict[Pair, torch.Tensor]:
    """``G_a x_b`` for every side ``a`` and every partner ``b`` of ``a`` in a product, one matrix product per side."""
    partners = {a: list(dict.fromkeys(b for pair in chunk.rows for b in pair if a in pair and
                                      (b != a or pair == (a, a)))) for a in chunk.grams}
    applied = {a: torch.matmul(g, torch.stack([x[b] for b in partners[a]], dim=-1)) for a, g in chunk.grams.items()}
    return {(a, b): applied[a][..., partners[a].index(b)] for a in chunk.grams for b in partners[a]}


def _stack(chunk: CentredChunk, dtype: torch.dtype) -> torch.Tensor:
    """Every side's Gram, then every product ``G_a o G_b`` (in float64), with the diagonal set to 0, in ``dtype`` ->
    ``(S, p, n, n)``."""
    sides = list(chunk.grams)
    first = chunk.grams[sides[0]]
    stack = torch.empty((len(sides) + len(chunk.rows), *first.shape), dtype=dtype, device=first.device)
    for i, g in enumerate(chunk.grams.values()):
        stack[i].copy_(g)
    for j, (a, b) in enumerate(chunk.rows):
        stack[len(sides) + j].copy_(chunk.grams[a] * chunk.grams[b])
    torch.diagonal(stack, dim1=-2, dim2=-1).zero_()
    return stack


def _bootstrap_sums(stack: torch.Tensor, chunk: CentredChunk, counts: torch.Tensor, debiased: bool) -> WeightedSums:
    """Step 4 for the samples ``counts (c, n)`` from :func:`_stack`'s ``stack`` -> :class:`WeightedSums` with
    ``(p, c)`` entries.  With ``y = sqrt(w) o x`` per side, ``s = sqrt(w)'y`` and ``c = y_a'y_b``."""
    sides, diag = list(chunk.grams), chunk.diag
    w = counts.to(torch.float64)                                                            # (c, n)
    w_compute = w.to(stack.dtype)
    summed = torch.matmul(w_compute, stack)                                                 # (S, p, c, n): (M w)'
    root = w.sqrt()
    shift = root * (w - 1.0 if debiased else w)
    y = {a: summed[i].to(torch.float64).mul_(root).addcmul_(shift, diag[a].unsqueeze(-2))
         for i, a in enumerate(sides)}
    sums = WeightedSums({}, {}, {}, {a: torch.einsum('pcn,cn->pc', y[a], root) for a in sides}, w.sum(dim=-1))
    w_squared = w.square().mT
    for j, (a, b) in enumerate(chunk.rows):
        product_diag = diag[a] * diag[b]                                                    # (p, n)
        quadratic = torch.linalg.vecdot(summed[len(sides) + j], w_compute).to(torch.float64)   # pairwise sum
        sums.q[(a, b)] = quadratic + torch.matmul(product_diag, w_squared)
        sums.e[(a, b)] = torch.matmul(product_diag, w.mT)
        sums.c[(a, b)] = torch.einsum('pcn,pcn->pc', y[a], y[b])
    return sums


def _rounding(chunk: CentredChunk, sums: WeightedSums, counts: torch.Tensor, u: float) -> WeightedSums:
    """First-order rounding errors of the sums of a product with unit roundoff ``u``.

    An entry ``(M w)_i`` is off by about ``u (|M~| 1)_i`` (the counts average 1), bounded with
    Cauchy-Schwarz from the row sums of (2): ``|G~_i|_1 <= sqrt(n-1) |G~_i|_2`` and ``|(G_a o G_b)~_i|_1
    <= |G~_a,i|_2 |G~_b,i|_2``; ``q`` is off by twice that summed (the matrix product and its float32
    dot with ``w``), ``s`` by once, and ``c = sum w x_a x_b`` by at most ``sqrt(sum w dx_a^2) sqrt(c_bb) +
    sqrt(sum w dx_b^2) sqrt(c_aa)``."""
    sides, diag = list(chunk.grams), chunk.diag
    n = diag[sides[0]].shape[-1]
    w = counts.to(torch.float64).mT                                                         # (n, c)
    scale = u * w.mean(dim=0)                                                               # (c,)
    off = {a: (chunk.rows[(a, a)] - diag[a].square()).clamp_min(0.0).sqrt() for a in sides}   # |G~_a,i|_2
    side_rows = torch.stack([off[a] for a in sides]) * (n - 1) ** 0.5                      # (S, p, n)
    row_error = torch.matmul(side_rows, w) * scale                                         # (S, p, c)
    root_error = torch.matmul(side_rows.square(), w).sqrt() * scale
    err = WeightedSums({}, {}, {}, {a: row_error[i] for i, a in enumerate(sides)}, sums.m)
    for a, b in chunk.rows:
        err.q[(a, b)] = 2.0 * torch.matmul(off[a] * off[b], w) * scale
        err.e[(a, b)] = torch.zeros_like(err.q[(a, b)])
        err.c[(a, b)] = (root_error[sides.index(a)] * sums.c[(b, b)].abs().sqrt()
                         + root_error[sides.index(b)] * sums.c[(a, a)].abs().sqrt())
    return err


def _resampled(chunk: CentredChunk, counts: torch.Tensor, pairs: Sequence[Pair], debiased: bool,
               precision: Precision, step: int) -> torch.Tensor:
    """Step 4-5 for all resamples ``counts (R, n)``, ``step`` per product -> ``(R, pairs, p)``."""
    dtype = compute_dtype(precision)
    stack = _stack(chunk, dtype)
    parts = []
    for s in range(0, counts.shape[0], step):
        part = counts[s:s + step]
        sums = _bootstrap_sums(stack, chunk, part, debiased)
        values = _cosines(sums, pairs, debiased)
        if dtype != torch.float64:
            error = _cka_error(sums, _rounding(chunk, sums, part, torch.finfo(dtype).eps), pairs, debiased)
            redo = (~(error <= FAST_TOLERANCE) & torch.isfinite(values)).flatten(0, 1).any(dim=0)   # (p,)
            if bool(redo.any()):
                exact = CentredChunk({a: g[redo] for a, g in chunk.grams.items()},
                                     {a: d[redo] for a, d in chunk.diag.items()},
                                     {ab: r[redo] for ab, r in chunk.rows.items()})
                values[:, :, redo] = _cosines(_bootstrap_sums(_stack(exact, torch.float64), exact, part, debiased),
                                              pairs, debiased)
        parts.append(values)
    return torch.cat(parts)


def _inner_error(sums: WeightedSums, err: WeightedSums, a: int, b: int, debiased: bool) -> torch.Tensor:
    """Error of :func:`_inner` from the sums' errors ``err`` (first order, absolute values)."""
    m = sums.m
    cross = sums.s[a].abs() * err.s[b] + err.s[a] * sums.s[b].abs()
    if not debiased:
        return err.q[(a, b)] + 2.0 * err.c[(a, b)] / m + cross / m ** 2
    return err.q[(a, b)] + cross / ((m - 1) * (m - 2)) + 2.0 * err.c[(a, b)] / (m - 2)


def _cka_error(sums: WeightedSums, err: WeightedSums, pairs: Sequence[Pair], debiased: bool) -> torch.Tensor:
    """Estimated error of every CKA value of :func:`_cosines` -> ``(c, pairs, p)``: ``<K, L> / (|K| |L|)`` is off
    by ``d<K, L> / (|K| |L|) + |CKA| (d|K|^2 / |K|^2 + d|L|^2 / |L|^2) / 2``."""
    squared = {a: _inner(sums, a, a, debiased).abs() for a in _sides(pairs)}
    relative = {a: _inner_error(sums, err, a, a, debiased) / squared[a] for a in squared}
    values = []
    for a, b in pairs:
        scale = (squared[a] * squared[b]).sqrt()
        cosine = _inner(sums, a, b, debiased).abs() / scale
        values.append(_inner_error(sums, err, a, b, debiased) / scale + 0.5 * cosine * (relative[a] + relative[b]))
    return torch.stack(values).permute(2, 0, 1)


def _chunk_sizes(n: int, sides: int, products: int, n_resamples: int) -> tuple[int, int]:
    """Positions per chunk and resamples per matrix product within the working-memory budget."""
    per_position = 8 * n * n * (2 * products + sides + 1)
    positions = max(1, CHUNK_BYTES // (2 * per_position))
    per_resample = 12 * n * positions * (sides + products) + 1
    return positions, max(1, min(max(n_resamples, 1), CHUNK_BYTES // (2 * per_resample)))


def sample_cka(grams: Sequence[torch.Tensor], pairs: Sequence[Pair], indices: torch.Tensor, debiased: bool,
               precision: Precision) -> SampleCKA:
    """CKA of ``grams[a]`` with ``grams[b]`` for every pair on the full sample, the leave-one-out samples and
    the resamples ``indices (n_resamples, n)`` (row indices, duplicates kept); grams ``(..., n, n)``
    peak-scaled float64 of one leading shape.  Order of operations: module docstring."""
    lead, n = grams[0].shape[:-2], grams[0].shape[-1]
    flat = [g.reshape(-1, n, n) for g in grams]
    used = _sides(pairs)
    needed = _products(pairs)
    counts = torch.zeros(indices.shape, dtype=torch.float64, device=grams[0].device)
    counts.scatter_add_(1, indices, torch.ones_like(counts))
    step, resample_step = _chunk_sizes(n, len(used), len(needed), indices.shape[0])
    estimates, loos, boots, biased = [], [], [], []
    for start in range(0, flat[0].shape[0], step):
        chunk = _centred_chunk({a: flat[a][start:start + step] for a in used}, needed)
        full, loo = _closed_form_sums(chunk, debiased)
        estimates.append(_cosines(full, pairs, debiased)[0])
        biased.append(_cosines(_full_sums(chunk, False)[0], pairs, False)[0] if debiased else estimates[-1])
        loos.append(_cosines(loo, pairs, debiased))
        boots.append(_resampled(chunk, counts, pairs, debiased, precision, resample_step) if counts.shape[0] else
                     torch.empty((0, len(pairs), chunk.diag[used[0]].shape[0]), dtype=torch.float64,
                                 device=counts.device))
    shape = (len(pairs), *lead)
    return SampleCKA(estimate=torch.cat(estimates, dim=-1).reshape(shape),
                     leave_one_out=torch.cat(loos, dim=-1).reshape(n, *shape),
                     resampled=torch.cat(boots, dim=-1).reshape(indices.shape[0], *shape),
                     biased=torch.cat(biased, dim=-1).reshape(shape))

