"""The CPU search (BLAS blocks + numba kernels) and the torch path (the GPU's code, run here
on the CPU with the same GEMMs) against sorting the product each computed, ties included."""
from __future__ import annotations

import numpy as np
import pytest

from alignkit.metrics import blocked, blocks, buffers, torch_tops
from alignkit.metrics.cpu_rank import ranked_rows
from alignkit.metrics.cpu_tops import column_tops, merged_column_tops
from reference import product_search_by_sorting, recorded_products

FIELDS = ("src_radii", "tgt_radii", "src_nn", "src_csls", "tgt_nn", "tgt_csls")


def _unit(a: np.ndarray) -> np.ndarray:
    return (a / np.linalg.norm(a, axis=1, keepdims=True)).astype(np.float32)


def _searched(search, x, y, q_src, q_tgt, kmax, k):
    """``search()``'s result, and everything a ProductSearch returns by sorting the product
    S = x yᵀ as that search's own GEMM blocks computed it (reference.RecordedProducts)."""
    with recorded_products() as rec:
        found = search()
    return found, product_search_by_sorting(rec.product(x, y), q_src, q_tgt, kmax, k)


def _case(rng, ties: bool):
    n_src, n_tgt, dim = (int(v) for v in (rng.integers(2, 500), rng.integers(2, 500), rng.integers(2, 24)))
    x, y = rng.standard_normal((n_src, dim)), rng.standard_normal((n_tgt, dim))
    if ties:  # few distinct directions, repeated rows: exact ties in values and in rankings
        x, y = np.round(x) + 0.5, np.round(y) + 0.5
        x[n_src // 2:] = x[:n_src - n_src // 2]
    return _unit(x), _unit(y)


@pytest.mark.parametrize("seed", range(12))
def test_cpu_and_torch_searches_equal_sorting_their_product(seed):
    rng = np.random.default_rng(seed)
    x, y = _case(rng, ties=seed % 2 == 0)
    n = min(len(x), len(y))
    k, kmax = int(rng.integers(1, min(n, 12) + 1)), int(rng.integers(1, min(n, 12) + 1))
    q_src, q_tgt = int(rng.integers(0, len(x) + 1)), int(rng.integers(0, len(y) + 1))
    rows = [None, 2, 3, 16, 17][seed % 5]           # small blocks: lone-row blocks, many merges
    for path, search in (("cpu", blocked.product_search), ("torch", torch_tops.torch_product_search)):
        found, refs = _searched(lambda: search(x, y, q_src, q_tgt, kmax=kmax, csls_k=k, block_rows=rows),
                                x, y, q_src, q_tgt, kmax, k)
        for field, ref in zip(FIELDS, refs):
            np.testing.assert_array_equal(getattr(found, field), ref, err_msg=f"{path} {field}")


def test_a_lone_row_block_is_a_row_of_a_two_row_gemm():
    """A lone row goes through the GEMM with a neighbour (never GEMV): its bits are those of
    that row in a two-row block, and within float32 rounding of the whole product."""
    rng = np.random.default_rng(3)
    x, y = _unit(rng.standard_normal((9, 384))), _unit(rng.standard_normal((700, 384)))
    whole = x @ y.T
    for i in range(9):
        out = np.empty((1, 700), np.float32)
        blocks.gemm_rows(x, y.T, i, i + 1, out)
        lo = max(0, min(i - 1, 7))
        pair = np.empty((2, 700), np.float32)
        blocks.gemm_rows(x, y.T, lo, lo + 2, pair)
        np.testing.assert_array_equal(out[0], pair[i - lo])
        np.testing.assert_allclose(out[0], whole[i], rtol=0, atol=1e-6)


@pytest.mark.parametrize("radii", [False, True])
def test_ranked_rows_break_huge_tie_groups_by_lower_index(radii):
    rng = np.random.default_rng(4)
    s = rng.integers(-3, 4, size=(50, 2600)).astype(np.float32) / 4      # 7 values: huge tie groups
    r = (rng.integers(0, 3, size=2600) / 8).astype(np.float32) if radii else None
    for kmax in (1, 5, 10):
        out = np.empty((50, kmax), np.int64)
        ranked_rows(s, r, kmax, out)
        scores = 2 * s - r if radii else s
        np.testing.assert_array_equal(out, np.argsort(-scores, axis=1, kind="stable")[:, :kmax])


@pytest.mark.parametrize("n_cols", [900, 1024, 2100, 3077])
def test_workers_sharing_a_floor_still_hold_every_columns_k_largest(n_cols):
    """Two workers interleave their blocks; each skips what the other's k-th value already
    rules out, and the merged lists are still exactly the k largest of every column. Widths
    below, at and across the 1024-column super-chunks of the rows' lane maxima (chunks of 64
    columns strided by 16, then a ragged tail)."""
    rng = np.random.default_rng(5)
    s = rng.standard_normal((3000, n_cols)).astype(np.float32)
    s[::7] = s[1::7][:len(s[::7])]                         # repeated rows: tied values
    s[:, 1::16] += 1.0                                     # one lane of every super-chunk holds the top values
    cols = column_tops(n_cols, 10, 2)
    row_top = np.empty((3000, 10), np.float32)
    query = np.empty((0, 3000), np.float32)
    for b, start in enumerate(range(0, 3000, 64)):
        stop = min(start + 64, 3000)
        cols[b % 2].scan(np.ascontiguousarray(s[start:stop]), row_top[start:stop], query, start)
    np.testing.assert_array_equal(np.sort(merged_column_tops(cols), 1), np.sort(s, 0)[-10:].T)
    np.testing.assert_array_equal(np.sort(row_top, 1), np.sort(s, 1)[:, -10:])
    assert (cols[0].floor <= np.sort(s, 0)[-10]).all()     # the floor is a valid bound


def test_ranked_rows_both_rankings_from_one_read_equal_each_alone():
    rng = np.random.default_rng(6)
    s = rng.integers(-3, 4, size=(40, 1300)).astype(np.float32) / 4
    r = (rng.integers(0, 3, size=1300) / 8).astype(np.float32)
    nn, cs, nn1, cs1 = (np.empty((40, 7), np.int64) for _ in range(4))
    ranked_rows(s, r, 7, nn, cs)
    ranked_rows(s, None, 7, nn1)
    ranked_rows(s, r, 7, cs1)
    np.testing.assert_array_equal(nn, nn1)
    np.testing.assert_array_equal(cs, cs1)
    np.testing.assert_array_equal(cs, np.argsort(-(2 * s - r), axis=1, kind="stable")[:, :7])


def test_small_first_blocks_cover_every_row_once_and_change_no_output(monkeypatch):
    """Each worker's first block is cut short (its sorted insertion costs more per row) and the
    last blocks are re-cut into pieces (the workers finish together); the plan still covers
    every row once, and the search still equals sorting its product."""
    from alignkit.metrics import cpu_tops

    plan = [(0, 300), (300, 1000), (1000, 1700), (1700, 1800)]
    cut = cpu_tops._small_first(plan, 2, 256)
    assert cut[:2] == [(0, 256), (300, 556)]
    assert sorted(r for a, b in cut for r in range(a, b)) == list(range(1800))
    plan = [(0, 300)] + [(a, min(a + 640, 3500)) for a in range(300, 3500, 640)]
    recut = cpu_tops._small_last(cpu_tops._small_first(plan, 2, 256), 2, 4)
    assert sorted(r for a, b in recut for r in range(a, b)) == list(range(3500))
    tail = recut[recut.index((1580, 2220)) + 1:]                # the last two blocks' rows, in pieces
    assert tail[0][0] == 2220 and tail[-1][1] == 3500 and len(tail) == 8
    assert all(b - a <= 160 and (a - 2220) % 16 == 0 for a, b in tail)
    assert cpu_tops._small_last(plan[:4], 2) == plan[:4]          # too short a plan: as it is
    kept = cpu_tops._small_last(plan, 2, 4, keep=2500)           # no piece crosses the kept query rows' end
    assert (2500 in {a for a, _ in kept}) and not any(a < 2500 < b for a, b in kept)
    monkeypatch.setattr(cpu_tops, "_LAST_PIECES", 8)
    rng = np.random.default_rng(8)
    x, y = _unit(rng.standard_normal((700, 16))), _unit(rng.standard_normal((1100, 16)))
    x[350:] = x[:350]
    monkeypatch.setattr(cpu_tops, "_FIRST_ROWS", 16)
    found, refs = _searched(lambda: blocked.product_search(x, y, 40, 50, kmax=10, csls_k=10, block_rows=64),
                            x, y, 40, 50, 10, 10)
    for field, ref in zip(FIELDS, refs):
        np.testing.assert_array_equal(getattr(found, field), ref, err_msg=field)


def test_reused_buffers_carry_nothing_between_searches_or_threads():
    """Inside kept_buffers the search keeps its large buffers for the calling thread's next
    search: a larger, a smaller and again a larger search in a row, and searches in two
    threads at once, each still equal sorting its own product; the buffers go when the
    block ends."""
    from concurrent.futures import ThreadPoolExecutor

    rng = np.random.default_rng(21)
    cases = [(_unit(rng.standard_normal((n, 16))), _unit(rng.standard_normal((m, 16))), q, r)
             for n, m, q, r in ((600, 900, 70, 90), (200, 150, 30, 40), (640, 1000, 90, 80))]

    def check(case):
        x, y, q_src, q_tgt = case
        found = blocked.product_search(x, y, q_src, q_tgt, kmax=10, csls_k=10, block_rows=64)
        for field, ref in zip(FIELDS, product_search_by_sorting(rec.product(x, y), q_src, q_tgt, 10, 10)):
            np.testing.assert_array_equal(getattr(found, field), ref, err_msg=field)

    def kept(case):
        with buffers.kept_buffers():
            check(case)
            check(case)

    with recorded_products() as rec:
        with buffers.kept_buffers():
            for case in cases:
                check(case)
            assert buffers._KEPT.pool                            # kept while the block lasts
        assert "pool" not in buffers._KEPT.__dict__              # freed after it
        with ThreadPoolExecutor(2) as pool:
            list(pool.map(kept, [cases[0], cases[2]]))
        check(cases[1])                                          # outside any block: fresh buffers


@pytest.mark.parametrize("n_cols", [600, 640, 705, 4100])
@pytest.mark.parametrize("radii", [False, True])
def test_ranked_rows_read_only_chunks_that_reach_the_kth_chunk_maximum(n_cols, radii):
    """The rankings skip every 64-column chunk whose maximum is below the kmax-th largest chunk
    maximum. Rows built so that the skipping decides: one large value per chunk in a few
    chunks, values equal to that bound in later chunks (they tie the kmax-th score and must
    rank by index), several large values in one chunk, and the ragged tail; widths below
    (600: 9 chunks, no bound), at and above kmax chunks."""
    rng = np.random.default_rng(7)
    s = rng.uniform(-1, 0, size=(60, n_cols)).astype(np.float32)
    nc = n_cols // 64
    for i in range(60):
        chunks = rng.permutation(max(nc, 1))[: rng.integers(1, max(nc, 2))]
        s[i, np.minimum(chunks * 64 + rng.integers(0, 64, size=len(chunks)), n_cols - 1)] = rng.integers(1, 4, size=len(chunks)) / 2
        s[i, rng.integers(0, n_cols, size=3)] = 1.0                   # ties at the top across chunks
        s[i, (i % max(nc, 1)) * 64: (i % max(nc, 1)) * 64 + 5] = 1.5  # several maxima in one chunk
        s[i, -3:] = rng.integers(0, 4, size=3) / 2                     # the tail
    r = (rng.integers(0, 3, size=n_cols) / 4).astype(np.float32) if radii else None
    for kmax in (1, 3, 10):
        out = np.empty((60, kmax), np.int64)
        ranked_rows(s, r, kmax, out)
        scores = 2 * s - r if radii else s
        np.testing.assert_array_equal(out, np.argsort(-scores, axis=1, kind="stable")[:, :kmax])
