"""Compiled transition-wise fingerprints for the KRA part of one M_EXT + KRA kMC step (numba).

:func:`tw_occupations` reads the digits on the transition-wise window of every path (the turned slot order of
:class:`~dbkmc.detailed_balance.lattice_aev.LatticeAEV`), looks the path up in the E_KRA table and, for the
paths it lacks, prepares the slot elements and radial parts; :func:`tw_features` forms their KRA inputs
``[(TW_A + TW_B)/2, |TW_A - TW_B|/2]``. The step they belong to is :mod:`dbkmc.kmc.rates.extensive_fast`;
the site and table kernels are in :mod:`dbkmc.kmc.rates.extensive_kernels`.
"""

from __future__ import annotations

import numpy as np
from numba import njit

from dbkmc.kmc.rates.extensive_kernels import mix64, site_at


@njit(cache=True)
def tw_occupations(digits, rows, vacs, hc, grid, period, tw_off, jumps, radial, ang_index, n_species, words, keys,
                   vals, out, idx, hashes, xa, xb, f_a, f_b):
    """The occupations of the transition-wise windows of every path of the vacancies ``vacs`` of trajectories
    ``rows`` (``LatticeAEV``, turned slot order), and what needs no matrix product.

    E_KRA is a function of the digits on the window's slots in A and B, so a path whose two slot sequences were
    seen before takes its E_KRA from the table (two 64-bit hashes with the random ``words`` (2, 2, M_T) key a
    direct-mapped table ``keys``/``vals``) into ``out`` (R z,). For the m other paths, listed in ``idx`` (their
    rows of ``out``; ``hashes`` keeps their keys for :func:`store_rows`), rows 0..m-1 get: the element (0-based;
    -1 for a hole) of every angular slot in A and B, ``xa``/``xb`` (m, M_A), and the radial parts
    ``sum_j e_X[j] R[j, m]`` of A and B, ``f_a``/``f_b`` (m, D). Returns m."""
    z, m_t = tw_off.shape[0], tw_off.shape[1]
    n_r, m_a = radial.shape[1], ang_index.shape[0]
    mask = np.uint64(keys.shape[0] - 1)
    spec_a = np.empty(m_t, dtype=np.int64)
    spec_b = np.empty(m_t, dtype=np.int64)
    m = 0
    for i in range(rows.shape[0]):
        dig, v = digits[rows[i]], vacs[i]
        for k in range(z):
            h = site_at(hc, grid, period, v, jumps[k, 0], jumps[k, 1], jumps[k, 2])
            moving = dig[h]
            h1 = np.uint64(0)
            h2 = np.uint64(0)
            for j in range(m_t):
                s = site_at(hc, grid, period, v, tw_off[k, j, 0], tw_off[k, j, 1], tw_off[k, j, 2])
                spec_a[j] = dig[s]
                spec_b[j] = moving if s == v else (0 if s == h else dig[s])
                h1 += np.uint64(spec_a[j]) * words[0, 0, j] + np.uint64(spec_b[j]) * words[0, 1, j]
                h2 += np.uint64(spec_a[j]) * words[1, 0, j] + np.uint64(spec_b[j]) * words[1, 1, j]
            h1, h2 = mix64(h1) | np.uint64(1), mix64(h2)
            slot = h1 & mask
            if keys[slot, 0] == h1 and keys[slot, 1] == h2:
                out[i * z + k] = vals[slot]
                continue
            idx[m] = i * z + k
            hashes[i * z + k, 0], hashes[i * z + k, 1] = h1, h2
            f_a[m] = 0.0
            f_b[m] = 0.0
            for j in range(m_t):
                if spec_a[j] > 0:
                    base = (spec_a[j] - 1) * n_r
                    for f in range(n_r):
                        f_a[m, base + f] += radial[j, f]
                if spec_b[j] > 0:
                    base = (spec_b[j] - 1) * n_r
                    for f in range(n_r):
                        f_b[m, base + f] += radial[j, f]
            for a in range(m_a):
                xa[m, a] = spec_a[ang_index[a]] - 1
                xb[m, a] = spec_b[ang_index[a]] - 1
            m += 1
    return m


@njit(cache=True)
def tw_features(xa, xb, m, w3, w_col, w_all, n_species, f_a, f_b, x):
    """The KRA input ``[(TW_A + TW_B)/2, |TW_A - TW_B|/2]`` (m, 2 D) of the first m paths from their slot elements
    ``xa``/``xb`` (-1: hole) and the radial parts already in ``f_a``/``f_b``.

    The angular part is ``G_q(X, Y) = sum_{i != j} e_Y[i] e_X[j] W[i, j, q]`` for element pairs X <= Y, halved
    for X = Y (``LatticeAEV``), with the symmetric pair table ``w3`` (M_A, M_A, n_A). Only the pairs of slots
    holding elements other than the last are summed (each once, ``h[p, q]`` for slot i < j with elements q, p);
    the sums with the last element follow from the column sums ``w_col`` (M_A, n_A) and the total ``w_all``
    minus the holes' rows (:func:`_complete`). B's pair sums are A's plus the pairs that touch a slot whose
    element the jump changes."""
    m_a, n_a = w3.shape[0], w3.shape[2]
    dim = f_a.shape[1]
    last = n_species - 1
    h_a = np.zeros((n_species, n_species, n_a), dtype=w3.dtype)
    h_b = np.zeros((n_species, n_species, n_a), dtype=w3.dtype)
    acc = np.zeros((n_species, n_species, n_a), dtype=w3.dtype)
    slots = np.empty(m_a, dtype=np.int64)
    for k in range(m):
        h_a[:] = 0.0
        n_l = 0                                      # the slots of elements other than the last, in order
        for i in range(m_a):                         # (a list: no unpredictable branch in the pair loop)
            if 0 <= xa[k, i] < last:
                slots[n_l] = i
                n_l += 1
        for a in range(n_l):
            i = slots[a]
            q = xa[k, i]
            for b in range(a + 1, n_l):
                j = slots[b]
                p = xa[k, j]
                for f in range(n_a):
                    h_a[p, q, f] += w3[i, j, f]
        h_b[:] = h_a
        for c in range(m_a):
            if xa[k, c] == xb[k, c]:
                continue
            for j in range(m_a):
                if j == c or (j < c and xa[k, j] != xb[k, j]):     # a pair of two changed slots: once
                    continue
                i0, j0 = (c, j) if c < j else (j, c)
                q, p = xa[k, i0], xa[k, j0]
                if 0 <= q < last and 0 <= p < last:
                    _sub_row(h_b[p, q], w3[i0, j0])
                q, p = xb[k, i0], xb[k, j0]
                if 0 <= q < last and 0 <= p < last:
                    _add_row(h_b[p, q], w3[i0, j0])
        _complete(h_a, xa[k], w3, w_col, w_all, n_species, acc)
        _write_angular(acc, n_species, f_a[k])
        _complete(h_b, xb[k], w3, w_col, w_all, n_species, acc)
        _write_angular(acc, n_species, f_b[k])
        for f in range(dim):
            x[k, f] = 0.5 * (f_a[k, f] + f_b[k, f])
            x[k, dim + f] = 0.5 * abs(f_a[k, f] - f_b[k, f])


@njit(cache=True)
def _complete(h, xk, w3, w_col, w_all, n_species, acc):
    """``acc[p, q] = sum_{i != j} [x_i = q] [x_j = p] W[i, j]`` of one window from the once-per-pair sums ``h`` of
    the elements other than the last: those pairs are ``h + h^T``; an element p's sum over every occupied
    partner is its slots' column sums minus the holes' rows, which leaves the pairs with the last element;
    the last with itself is every occupied pair minus the rest."""
    m_a, n_a = w3.shape[0], w3.shape[2]
    last = n_species - 1
    acc[:] = 0.0
    for p in range(last):
        for q in range(last):
            for f in range(n_a):
                acc[p, q, f] = h[p, q, f] + h[q, p, f]
    for j in range(m_a):
        p = xk[j]
        if p < 0 or p == last:
            continue
        for f in range(n_a):
            acc[p, last, f] += w_col[j, f]
        for hole in range(m_a):
            if xk[hole] < 0:
                for f in range(n_a):
                    acc[p, last, f] -= w3[hole, j, f]
    for p in range(last):
        for q in range(last):
            for f in range(n_a):
                acc[p, last, f] -= acc[p, q, f]
        for f in range(n_a):
            acc[last, p, f] = acc[p, last, f]
    for f in range(n_a):
        acc[last, last, f] = w_all[f]
    for hole in range(m_a):
        if xk[hole] < 0:
            for f in range(n_a):
                acc[last, last, f] -= 2.0 * w_col[hole, f]
            for other in range(m_a):
                if xk[other] < 0:
                    for f in range(n_a):
                        acc[last, last, f] += w3[hole, other, f]
    for p in range(n_species):
        for q in range(n_species):
            if p != last or q != last:
                for f in range(n_a):
                    acc[last, last, f] -= acc[p, q, f]


@njit(cache=True)
def _write_angular(acc, n_species, out):
    """The angular columns of a fingerprint (the end of ``out``): element pairs p <= q, halved for p = q."""
    n_a = acc.shape[2]
    col = out.shape[0] - (n_species * (n_species + 1) // 2) * n_a
    for p in range(n_species):
        for q in range(p, n_species):
            half = 0.5 if p == q else 1.0
            for f in range(n_a):
                out[col + f] = half * acc[p, q, f]
            col += n_a


@njit(cache=True, inline="always")
def _add_row(dst, src):
    for f in range(dst.shape[0]):
        dst[f] += src[f]


@njit(cache=True, inline="always")
def _sub_row(dst, src):
    for f in range(dst.shape[0]):
        dst[f] -= src[f]
