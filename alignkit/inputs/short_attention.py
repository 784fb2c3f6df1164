"""Self-attention of short unpadded sequences on the CPU, in numba (:mod:`alignkit.inputs.fused`).

Word extraction runs sequences of 3-7 tokens (a word's sub-words and the two specials),
grouped by exact length. There torch's attention kernel spends most of its time on
per-(sequence, head) overhead, which this kernel does not have (measurements:
docs/benchmarks.md, "short attention"). Lengths 4 and 8 stay with torch's kernel, in
16-token blocks. This kernel reads the fused
QKV projection in place (no transposes) and writes the context rows directly: per query,
the scaled dot products with every key of its sequence, a max-shifted softmax, and the
weighted sum of the values, all in float32. Equal to ``scaled_dot_product_attention`` up
to float32 rounding (~1e-6; tests/test_extract.py).

:func:`alignkit.inputs.fused._short_kernel_applies` decides when it is used. A module of its
own so that numba is loaded only when a CPU extraction uses it; the first call
in a fresh install compiles the kernel (a second or two), later processes load it from
numba's cache.
"""
from __future__ import annotations

import math

import numpy as np
from numba import njit


@njit(nogil=True, cache=True, boundscheck=False, fastmath=True)
def _attend(qkv, n, heads, d, scale, out):
    dim = heads * d
    b = qkv.shape[0] // n
    s = np.empty(n, dtype=np.float32)
    acc = np.empty(d, dtype=np.float32)
    for seq in range(b):
        base = seq * n
        for h in range(heads):
            qo = h * d
            ko = dim + qo
            vo = 2 * dim + qo
            for i in range(n):
                q = qkv[base + i]
                mx = np.float32(-3.0e38)
                for j in range(n):
                    kr = qkv[base + j]
                    a = np.float32(0.0)
                    for t in range(d):
                        a += q[qo + t] * kr[ko + t]
                    a *= scale
                    s[j] = a
                    mx = max(mx, a)
                tot = np.float32(0.0)
                for j in range(n):
                    e = np.exp(s[j] - mx)
                    s[j] = e
                    tot += e
                inv = np.float32(1.0) / tot
                for t in range(d):
                    acc[t] = 0.0
                for j in range(n):
                    p = s[j] * inv
                    vr = qkv[base + j]
                    for t in range(d):
                        acc[t] += p * vr[vo + t]
                o = out[base + i]
                for t in range(d):
                    o[qo + t] = acc[t]


def short_attention(qkv, b: int, n: int, heads: int):
    """Attention of ``b`` sequences of ``n`` tokens: ``qkv [b*n, 3*dim]`` (the fused Q, K, V
    projections, float32, CPU) -> context ``[b*n, dim]`` (heads concatenated), as
    ``scaled_dot_product_attention`` without a mask."""
    import torch

    dim = qkv.shape[1] // 3
    d = dim // heads
    out = torch.empty((b * n, dim), dtype=qkv.dtype)
    _attend(qkv.numpy(), n, heads, d, np.float32(1.0 / math.sqrt(d)), out.numpy())
    return out
