r"""Compiled index work of one M_EXT + KRA kMC step (one trajectory, one vacancy, CPU; numba).

The tensor code of :mod:`dbkmc.kmc.rates.extensive_db` serves every device and any batch, but for one
trajectory on a CPU core its ~300 small tensor operations per jump cost more than the networks. These
functions do the same work in compiled loops, on numpy views of the model's caches (see
:mod:`dbkmc.kmc.rates.extensive_fast` for the step they make up); only the networks stay in torch. Every function is pure array code (inputs in, outputs
written into the given buffers); the tables are those of the tensor path
(:class:`~dbkmc.kmc.rates.hop_descriptors.HopDescriptors`, :class:`~dbkmc.detailed_balance.site_descriptors.SiteDescriptors`,
:class:`~dbkmc.detailed_balance.lattice_aev.LatticeAEV`), so both paths give the same numbers up to the order
of float summation (``tests/test_rates_ext_fast.py``).

Digits: 0 = vacancy, 1..S = species. Sites are found from integer half-coordinates ``hc`` and the
periodic ``grid`` (period ``2n``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def _site(hc, grid, period, v, dx, dy, dz):
    return grid[(hc[v, 0] + dx) % period, (hc[v, 1] + dy) % period, (hc[v, 2] + dz) % period]


@njit(cache=True)
def write_back(digits, mirror, g, hs, eps, stash, wins, r_b, eps_b, hc, grid, period, offsets, u_hop, rad_slot,
               rad_c0, rad_v, rad_on, tri_slot, tri_base, j_u, l_u, tri_on, colmap, c):
    """For every trajectory t with a recorded last call (``stash[t]``: its vacancy v, or -1): if ``digits[t]``
    is ``mirror[t]`` after one of the jumps of v evaluated then, take that path's state B into the cache: the
    digits of v and h, G(B) = G(A) + delta in place, the kept hashes ``r_b`` and energies ``eps_b`` of its
    window. Clears ``stash``."""
    n_u = offsets.shape[0]
    ch_a = np.empty(n_u, dtype=np.int64)
    ch_b = np.empty(n_u, dtype=np.int64)
    for t in range(stash.shape[0]):
        v = stash[t]
        stash[t] = -1
        if v < 0:
            continue
        d, mir = digits[t], mirror[t]
        for k in range(wins.shape[1]):
            h = wins[t, k, 1]
            was = mir[h]
            if not (mir[v] == 0 and was != 0 and d[h] == 0 and d[v] == was):
                continue
            moving = _channels(mir, v, hc, grid, period, offsets, u_hop, k, ch_a, ch_b)
            gt = g[t]
            for i in range(rad_slot.shape[1]):
                if rad_on[k, i]:
                    s = wins[t, k, rad_slot[k, i]]
                    gt[s, rad_c0[k, i] + rad_v[k, i] * moving] += 1.0
                    gt[s, rad_c0[k, i] + (1 - rad_v[k, i]) * moving] -= 1.0
            for i in range(tri_slot.shape[1]):
                if tri_on[k, i]:
                    s = wins[t, k, tri_slot[k, i]]
                    gt[s, colmap[tri_base[k, i] + ch_b[j_u[k, i]] * c + ch_b[l_u[k, i]]]] += 1.0
                    gt[s, colmap[tri_base[k, i] + ch_a[j_u[k, i]] * c + ch_a[l_u[k, i]]]] -= 1.0
            for j in range(wins.shape[2]):
                s = wins[t, k, j]
                hs[t, s, 0], hs[t, s, 1] = r_b[t, k, j, 0], r_b[t, k, j, 1]
                eps[t, s] = eps_b[t, k, j]
            mir[v] = d[v]
            mir[h] = 0
            break


@njit(cache=True, inline="always")
def _channels(digits, v, hc, grid, period, offsets, u_hop, k, ch_a, ch_b):
    """Digits at ``v + offsets`` in A (``ch_a``) and after the jump along path k (``ch_b``); returns the
    jumping atom's digit."""
    for u in range(offsets.shape[0]):
        ch_a[u] = digits[_site(hc, grid, period, v, offsets[u, 0], offsets[u, 1], offsets[u, 2])]
    moving = ch_a[u_hop[k]]
    ch_b[:] = ch_a
    ch_b[0] = moving
    ch_b[u_hop[k]] = 0
    return moving


@njit(cache=True)
def sync_region(digits, mirror, v, hc, grid, period, region, changed):
    """Copy into ``mirror`` every digit of the sites ``v + region`` that differs from ``digits``; their
    sites go to ``changed``. Returns how many."""
    n = 0
    for r in range(region.shape[0]):
        s = _site(hc, grid, period, v, region[r, 0], region[r, 1], region[r, 2])
        if digits[s] != mirror[s]:
            mirror[s] = digits[s]
            changed[n] = s
            n += 1
    return n


@njit(cache=True)
def sites_around(changed, n_changed, hc, grid, period, ball, mark, out):
    """The distinct sites within ``ball`` (offsets, the site itself first) of the first ``n_changed``
    ``changed`` sites, into ``out``; ``mark`` (n_sites,) bool scratch, all False on entry and exit."""
    n = 0
    for i in range(n_changed):
        c = changed[i]
        for b in range(ball.shape[0]):
            s = _site(hc, grid, period, c, ball[b, 0], ball[b, 1], ball[b, 2])
            if not mark[s]:
                mark[s] = True
                out[n] = s
                n += 1
    for i in range(n):
        mark[out[i]] = False
    return n


@njit(cache=True)
def describe(digits, sites, n, hc, grid, period, rad_off, rad_code, tri_off, pm, pl, tri_base, colmap, n_radial,
             c, out):
    """G of the first ``n`` ``sites`` in state ``digits``, afresh (``SiteDescriptors.describe``): radial shell
    counts by channel, then the triplet counts through ``colmap``; ``out`` (>= n, D), overwritten."""
    n_t = tri_off.shape[0]
    ch = np.empty(n_t, dtype=np.int64)
    for i in range(n):
        s = sites[i]
        out[i, :] = 0.0
        for r in range(rad_off.shape[0]):
            nb = _site(hc, grid, period, s, rad_off[r, 0], rad_off[r, 1], rad_off[r, 2])
            out[i, rad_code[r] + digits[nb]] += 1.0
        for t in range(n_t):
            ch[t] = digits[_site(hc, grid, period, s, tri_off[t, 0], tri_off[t, 1], tri_off[t, 2])]
        for p in range(pm.shape[0]):
            out[i, n_radial + colmap[tri_base[p] + ch[pm[p]] * c + ch[pl[p]]]] += 1.0
    return n


@njit(cache=True)
def window_keys(digits, rows, vacs, hs, eps, hc, grid, period, win_rel, offsets, u_hop, rad_slot, rad_c0, rad_v,
                rad_on, tri_slot, tri_base, j_u, l_u, tri_on, colmap, c, words, wins, spec_b, r_b, eps_a):
    """For every path of the vacancies ``vacs`` of trajectories ``rows`` (arrays carry the trajectory first):
    the window sites ``wins`` (z, M), the digits of B on them ``spec_b``, the sum of the current site energies
    over each window ``eps_a``, and the hash sums ``r_b`` (z, M, 2) of G(B) = G(A) + delta.

    The hash sum of a descriptor is linear, ``sum_f G_f w_f`` (mod 2^64), so that of G(B) is the cached
    ``hs`` of G(A) plus the words of the columns the jump adds and minus those it removes
    (``HopDescriptors.delta``, term by term); no G(B) is formed here."""
    n_u = offsets.shape[0]
    ch_a = np.empty(n_u, dtype=np.int64)
    ch_b = np.empty(n_u, dtype=np.int64)
    z, big_m = win_rel.shape[0], win_rel.shape[1]
    for i in range(rows.shape[0]):
        t, v = rows[i], vacs[i]
        d = digits[t]
        for k in range(z):
            moving = _channels(d, v, hc, grid, period, offsets, u_hop, k, ch_a, ch_b)
            total = 0.0
            for j in range(big_m):
                s = _site(hc, grid, period, v, win_rel[k, j, 0], win_rel[k, j, 1], win_rel[k, j, 2])
                wins[t, k, j] = s
                r_b[t, k, j, 0], r_b[t, k, j, 1] = hs[t, s, 0], hs[t, s, 1]
                total += eps[t, s]
                spec_b[t, k, j] = moving if j == 0 else (0 if j == 1 else d[s])
            eps_a[t, k] = total
            for e in range(rad_slot.shape[1]):
                if rad_on[k, e]:
                    j = rad_slot[k, e]
                    gain = rad_c0[k, e] + rad_v[k, e] * moving
                    loss = rad_c0[k, e] + (1 - rad_v[k, e]) * moving
                    r_b[t, k, j, 0] += words[0, gain] - words[0, loss]
                    r_b[t, k, j, 1] += words[1, gain] - words[1, loss]
            for e in range(tri_slot.shape[1]):
                if tri_on[k, e]:
                    j = tri_slot[k, e]
                    gain = colmap[tri_base[k, e] + ch_b[j_u[k, e]] * c + ch_b[l_u[k, e]]]
                    loss = colmap[tri_base[k, e] + ch_a[j_u[k, e]] * c + ch_a[l_u[k, e]]]
                    r_b[t, k, j, 0] += words[0, gain] - words[0, loss]
                    r_b[t, k, j, 1] += words[1, gain] - words[1, loss]


@njit(cache=True)
def window_rows(digits, rows, vacs, g, hc, grid, period, offsets, u_hop, rad_ptr, rad_c0, rad_v, tri_ptr, tri_base,
                j_u, l_u, colmap, c, n_species, wins, spec_b, hashes, counts, x, order):
    """G(B) = G(A) + delta of the window slots :func:`lookup_keys` did not find (``hashes[.., 0] != 0``; flat
    over (trajectory, path, slot)), written into ``x`` grouped by species (``counts`` per species; ``order``
    each row's flat slot). The delta terms of path k and slot j are ``rad_ptr[k, j]:rad_ptr[k, j + 1]`` of
    the radial and ``tri_ptr[k, j]:...`` of the triplet tables (sorted by slot)."""
    n_u = offsets.shape[0]
    ch_a = np.empty(n_u, dtype=np.int64)
    ch_b = np.empty(n_u, dtype=np.int64)
    z, big_m = wins.shape[1], wins.shape[2]
    start = np.zeros(n_species, dtype=np.int64)
    for s in range(1, n_species):
        start[s] = start[s - 1] + counts[s - 1]
    for i in range(rows.shape[0]):
        t, v = rows[i], vacs[i]
        for k in range(z):
            base = (t * z + k) * big_m
            moving = -1
            for j in range(big_m):
                if hashes[base + j, 0] == 0:
                    continue
                if moving < 0:
                    moving = _channels(digits[t], v, hc, grid, period, offsets, u_hop, k, ch_a, ch_b)
                sp = spec_b[t, k, j] - 1
                r = start[sp]
                start[sp] += 1
                order[r] = base + j
                x[r, :] = g[t, wins[t, k, j]]
                for e in range(rad_ptr[k, j], rad_ptr[k, j + 1]):
                    x[r, rad_c0[k, e] + rad_v[k, e] * moving] += 1.0
                    x[r, rad_c0[k, e] + (1 - rad_v[k, e]) * moving] -= 1.0
                for e in range(tri_ptr[k, j], tri_ptr[k, j + 1]):
                    x[r, colmap[tri_base[k, e] + ch_b[j_u[k, e]] * c + ch_b[l_u[k, e]]]] += 1.0
                    x[r, colmap[tri_base[k, e] + ch_a[j_u[k, e]] * c + ch_a[l_u[k, e]]]] -= 1.0


@njit(cache=True)
def row_hashes(rows, n, words, out):
    """The hash sums ``sum_f G_f w_f`` (mod 2^64) of the first ``n`` G ``rows`` into ``out`` (n, 2)."""
    for i in range(n):
        h1 = np.uint64(0)
        h2 = np.uint64(0)
        for f in range(rows.shape[1]):
            u = np.uint64(np.int64(rows[i, f]))
            h1 += u * words[0, f]
            h2 += u * words[1, f]
        out[i, 0], out[i, 1] = h1, h2


_GOLD = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _mix(h):
    """splitmix64 finaliser."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit(cache=True)
def lookup_keys(r, spec, idx, keys, vals, n_species, counts, hashes, out):
    """Site energies of the entries ``idx`` (flat) with digits ``spec`` and hash sums ``r`` (N, 2) from the
    site-energy table: the keys ``mix(r_1 + digit)``, ``mix(r_2 + digit * gold)`` index a direct-mapped table
    (``keys`` (cap, 2) uint64, ``vals`` (cap,)). A found entry's energy goes to ``out``, a vacant one's is 0;
    every other entry keeps its keys in ``hashes`` (else 0) and counts for its species. Returns how many, and
    how many entries are occupied."""
    mask = np.uint64(keys.shape[0] - 1)
    counts[:] = 0
    occupied = 0
    for i in idx:
        out[i] = 0.0
        hashes[i, 0] = 0
        if spec[i] <= 0:
            continue
        occupied += 1
        h1 = _mix(r[i, 0] + np.uint64(spec[i])) | np.uint64(1)
        h2 = _mix(r[i, 1] + np.uint64(spec[i]) * _GOLD)
        slot = h1 & mask
        if keys[slot, 0] == h1 and keys[slot, 1] == h2:
            out[i] = vals[slot]
            continue
        hashes[i, 0], hashes[i, 1] = h1, h2
        counts[spec[i] - 1] += 1
    return counts.sum(), occupied


@njit(cache=True)
def gather_rows(rows, spec, idx, hashes, counts, n_species, x, order):
    """Copy the G ``rows`` of the entries ``idx`` that :func:`lookup_keys` did not find into ``x``, grouped by
    species (``order``: each row's entry)."""
    start = np.zeros(n_species, dtype=np.int64)
    for s in range(1, n_species):
        start[s] = start[s - 1] + counts[s - 1]
    for i in idx:
        if hashes[i, 0] == 0:
            continue
        r = start[spec[i] - 1]
        start[spec[i] - 1] += 1
        order[r] = i
        x[r, :] = rows[i]


@njit(cache=True)
def store_rows(y, order, n_rows, hashes, keys, vals, out):
    """The networks' energies ``y`` of the rows listed in ``order`` into ``out`` and into the table."""
    mask = np.uint64(keys.shape[0] - 1)
    for r in range(n_rows):
        i = order[r]
        out[i] = y[r]
        slot = hashes[i, 0] & mask
        keys[slot, 0], keys[slot, 1] = hashes[i, 0], hashes[i, 1]
        vals[slot] = y[r]


@njit(cache=True)
def energy_changes(rows, eps_a, eps_b, d_e):
    """``dE[t, k] = sum_j eps_b[t, k, j] - eps_a[t, k]`` for the trajectories ``rows``."""
    z, big_m = eps_b.shape[1], eps_b.shape[2]
    for t in rows:
        for k in range(z):
            total = 0.0
            for j in range(big_m):
                total += eps_b[t, k, j]
            d_e[t, k] = total - eps_a[t, k]


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
            h = _site(hc, grid, period, v, jumps[k, 0], jumps[k, 1], jumps[k, 2])
            moving = dig[h]
            h1 = np.uint64(0)
            h2 = np.uint64(0)
            for j in range(m_t):
                s = _site(hc, grid, period, v, tw_off[k, j, 0], tw_off[k, j, 1], tw_off[k, j, 2])
                spec_a[j] = dig[s]
                spec_b[j] = moving if s == v else (0 if s == h else dig[s])
                h1 += np.uint64(spec_a[j]) * words[0, 0, j] + np.uint64(spec_b[j]) * words[0, 1, j]
                h2 += np.uint64(spec_a[j]) * words[1, 0, j] + np.uint64(spec_b[j]) * words[1, 1, j]
            h1, h2 = _mix(h1) | np.uint64(1), _mix(h2)
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
