r"""Compiled index work of one M_EXT + KRA kMC step (one trajectory, one vacancy, CPU; numba).

The tensor code of :mod:`dbkmc.kmc.rates.extensive_db` serves every device and any batch, but for one
trajectory on a CPU core its ~300 small tensor operations per jump cost more than the networks. These
functions do the same integer work in compiled loops, on numpy views of the model's caches; only the
matrix products of the networks stay in torch. Every function is pure array code (inputs in, outputs
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
def write_back(digits, mirror, g, eps, wins, g_b, eps_b, stash):
    """:func:`write_back_one` for every trajectory t with a recorded last call (``stash[t]``: its vacancy, or
    -1); all arrays carry the trajectory first. Clears ``stash``."""
    for t in range(stash.shape[0]):
        if stash[t] >= 0:
            write_back_one(digits[t], mirror[t], g[t], eps[t], wins[t], g_b[t], eps_b[t], stash[t])
            stash[t] = -1


@njit(cache=True)
def write_back_one(digits, mirror, g, eps, wins, g_b, eps_b, v):
    """If ``digits`` is the state ``mirror`` after one of the jumps of vacancy ``v`` evaluated last (windows
    ``wins`` (z, M), their ``G(B)`` and ``eps(B)``), take that path's G(B), eps(B) into the cache; returns the
    path, or -1."""
    for k in range(wins.shape[0]):
        h = wins[k, 1]
        was = mirror[h]
        if mirror[v] == 0 and was != 0 and digits[h] == 0 and digits[v] == was:
            mirror[v] = digits[v]
            mirror[h] = 0
            for j in range(wins.shape[1]):
                s = wins[k, j]
                for f in range(g.shape[1]):
                    g[s, f] = g_b[k, j, f]
                eps[s] = eps_b[k, j]
            return k
    return -1


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
def window_inputs(digits, rows, vacs, g, eps, hc, grid, period, win_rel, offsets, u_hop, rad_col, rad_v, rad_on,
                  tri_row, tri_base, j_u, l_u, tri_on, colmap, c, wins, g_b, spec_b, eps_a):
    """:func:`window_inputs_one` for trajectories ``rows`` with vacancies ``vacs`` (arrays: trajectory first)."""
    for i in range(rows.shape[0]):
        t = rows[i]
        window_inputs_one(digits[t], vacs[i], g[t], eps[t], hc, grid, period, win_rel, offsets, u_hop, rad_col,
                          rad_v, rad_on, tri_row, tri_base, j_u, l_u, tri_on, colmap, c, wins[t], g_b[t],
                          g_b[t].reshape(-1), spec_b[t], eps_a[t])


@njit(cache=True)
def window_inputs_one(digits, v, g, eps, hc, grid, period, win_rel, offsets, u_hop, rad_col, rad_v, rad_on, tri_row,
                  tri_base, j_u, l_u, tri_on, colmap, c, wins, g_b, g_b_flat, spec_b, eps_a):
    """The inputs of dE for every path of vacancy ``v`` (``HopDescriptors.delta`` plus the gathers).

    Writes the window sites ``wins`` (z, M), ``G(B) = G(A) + delta`` ``g_b`` (z, M, D), the digits of B on
    the windows ``spec_b`` (z, M) and the sum of the current site energies over each window ``eps_a`` (z,);
    ``g_b_flat`` is ``g_b`` as one flat view (the tables hold flat slot * D + column indices)."""
    z, big_m = wins.shape
    dim = g.shape[1]
    n_u = offsets.shape[0]
    ch_a = np.empty(n_u, dtype=np.int64)
    ch_b = np.empty(n_u, dtype=np.int64)
    for u in range(n_u):
        ch_a[u] = digits[_site(hc, grid, period, v, offsets[u, 0], offsets[u, 1], offsets[u, 2])]
    for k in range(z):
        moving = ch_a[u_hop[k]]
        ch_b[:] = ch_a
        ch_b[0] = moving
        ch_b[u_hop[k]] = 0
        total = 0.0
        for j in range(big_m):
            s = _site(hc, grid, period, v, win_rel[k, j, 0], win_rel[k, j, 1], win_rel[k, j, 2])
            wins[k, j] = s
            for f in range(dim):
                g_b[k, j, f] = g[s, f]
            total += eps[s]
            spec_b[k, j] = moving if j == 0 else (0 if j == 1 else digits[s])
        eps_a[k] = total
        base = k * big_m * dim
        for i in range(rad_col.shape[1]):
            if rad_on[k, i]:
                g_b_flat[base + rad_col[k, i] + rad_v[k, i] * moving] += 1.0
                g_b_flat[base + rad_col[k, i] + (1 - rad_v[k, i]) * moving] -= 1.0
        for i in range(tri_row.shape[1]):
            if tri_on[k, i]:
                row = base + tri_row[k, i]
                g_b_flat[row + colmap[tri_base[k, i] + ch_b[j_u[k, i]] * c + ch_b[l_u[k, i]]]] += 1.0
                g_b_flat[row + colmap[tri_base[k, i] + ch_a[j_u[k, i]] * c + ch_a[l_u[k, i]]]] -= 1.0


_GOLD = np.uint64(0x9E3779B97F4A7C15)


@njit(cache=True, inline="always")
def _mix(h):
    """splitmix64 finaliser."""
    h = (h ^ (h >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    h = (h ^ (h >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return h ^ (h >> np.uint64(31))


@njit(cache=True)
def lookup_rows(rows, spec, idx, words, keys, vals, n_species, x, order, counts, hashes, out):
    """Site energies of the ``rows`` (G, (N, D)) listed in ``idx``, with digits ``spec``, from the site-energy table.

    Two 64-bit hashes of (digit, G), ``mix(sum_f G_f w_f + digit)`` with random odd 64-bit words ``words``
    (2, D), key a direct-mapped table (``keys`` (cap, 2) uint64, ``vals`` (cap,)); a
    found row's energy goes to ``out``, a vacant one's is 0, every other row is copied into ``x`` grouped by
    species (``counts`` per species; ``order`` its row index) for the networks. ``hashes`` (N, 2) keeps the
    keys for :func:`store_rows`. Returns the number of rows to evaluate."""
    dim = rows.shape[1]
    mask = np.uint64(keys.shape[0] - 1)
    counts[:] = 0
    for i in idx:
        out[i] = 0.0
        hashes[i, 0] = 0
        if spec[i] <= 0:
            continue
        h1 = np.uint64(spec[i])
        h2 = np.uint64(spec[i]) * _GOLD
        for f in range(dim):
            u = np.uint64(np.int64(rows[i, f]))
            h1 += u * words[0, f]
            h2 += u * words[1, f]
        h1, h2 = _mix(h1) | np.uint64(1), _mix(h2)
        slot = h1 & mask
        if keys[slot, 0] == h1 and keys[slot, 1] == h2:
            out[i] = vals[slot]
            continue
        hashes[i, 0], hashes[i, 1] = h1, h2
        counts[spec[i] - 1] += 1
    start = np.zeros(n_species, dtype=np.int64)
    for s in range(1, n_species):
        start[s] = start[s - 1] + counts[s - 1]
    for i in idx:
        if hashes[i, 0] == 0:
            continue
        r = start[spec[i] - 1]
        start[spec[i] - 1] += 1
        order[r] = i
        for f in range(dim):
            x[r, f] = rows[i, f]
    return counts.sum()


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
def tw_occupations(digits, rows, vacs, hc, grid, period, tw_off, jumps, radial, ang_index, changed, n_species, xa, xb,
                   e_a, d_c, f_a, f_b):
    """:func:`tw_occupations_one` for trajectories ``rows`` (vacancies ``vacs``); the outputs of the i-th go to
    the i-th block of z paths."""
    z = tw_off.shape[0]
    zs = z * n_species
    for i in range(rows.shape[0]):
        tw_occupations_one(digits[rows[i]], vacs[i], hc, grid, period, tw_off, jumps, radial, ang_index, changed,
                           n_species, xa[i * z:(i + 1) * z], xb[i * z:(i + 1) * z], e_a[i * zs:(i + 1) * zs],
                           d_c[i * zs:(i + 1) * zs], f_a[i * z:(i + 1) * z], f_b[i * z:(i + 1) * z])


@njit(cache=True)
def tw_occupations_one(digits, v, hc, grid, period, tw_off, jumps, radial, ang_index, changed, n_species, xa, xb, e_a,
                   d_c, f_a, f_b):
    """The occupations of the transition-wise windows of every path of vacancy ``v`` (``LatticeAEV``, turned
    slot order), and what needs no matrix product.

    Writes the element (0-based; -1 for a hole) of every angular slot in A and B, ``xa``/``xb`` (z, M_A); the
    one-hot rows of A ``e_a`` (z S, M_A); B - A on the ``changed`` slots (where the jump sites fall)
    ``d_c`` (z S, C); and the radial parts ``sum_j e_X[j] R[j, m]`` of A and B into ``f_a``/``f_b`` (z, D)."""
    z, m_t = tw_off.shape[0], tw_off.shape[1]
    n_r, m_a = radial.shape[1], ang_index.shape[0]
    spec_a = np.empty(m_t, dtype=np.int64)
    spec_b = np.empty(m_t, dtype=np.int64)
    e_a[:] = 0.0
    f_a[:] = 0.0
    f_b[:] = 0.0
    for k in range(z):
        h = _site(hc, grid, period, v, jumps[k, 0], jumps[k, 1], jumps[k, 2])
        moving = digits[h]
        for j in range(m_t):
            s = _site(hc, grid, period, v, tw_off[k, j, 0], tw_off[k, j, 1], tw_off[k, j, 2])
            spec_a[j] = digits[s]
            spec_b[j] = moving if s == v else (0 if s == h else digits[s])
            if spec_a[j] > 0:
                base = (spec_a[j] - 1) * n_r
                for f in range(n_r):
                    f_a[k, base + f] += radial[j, f]
            if spec_b[j] > 0:
                base = (spec_b[j] - 1) * n_r
                for f in range(n_r):
                    f_b[k, base + f] += radial[j, f]
        for a in range(m_a):
            xa[k, a] = spec_a[ang_index[a]] - 1
            xb[k, a] = spec_b[ang_index[a]] - 1
            if xa[k, a] >= 0:
                e_a[k * n_species + xa[k, a], a] = 1.0
        for i in range(changed.shape[0]):
            a = changed[i]
            for x in range(n_species):
                d_c[k * n_species + x, i] = (1.0 if xb[k, a] == x else 0.0) - (1.0 if xa[k, a] == x else 0.0)


@njit(cache=True)
def tw_assemble(xa, xb, inner_a, inner_b, n_species, f_a, f_b, x):
    """The KRA input ``[(TW_A + TW_B)/2, |TW_A - TW_B|/2]`` (z, 2 D) from the radial parts ``f_a``/``f_b`` and
    the angular maps ``inner`` (z S, M_A, n_A) = one-hot @ W: ``G_q(X, Y) = sum_j e_X[j] inner[Y, j, q]``,
    halved for X = Y, element pairs X <= Y (the layout of ``LatticeAEV``)."""
    z, m_a = xa.shape
    n_a = inner_a.shape[2]
    dim = f_a.shape[1]
    acc_a = np.zeros((n_species, n_species, n_a), dtype=inner_a.dtype)
    acc_b = np.zeros((n_species, n_species, n_a), dtype=inner_a.dtype)
    for k in range(z):
        acc_a[:] = 0.0
        acc_b[:] = 0.0
        for j in range(m_a):
            p = xa[k, j]
            if p >= 0:
                for q in range(n_species):
                    for f in range(n_a):
                        acc_a[p, q, f] += inner_a[k * n_species + q, j, f]
            p = xb[k, j]
            if p >= 0:
                for q in range(n_species):
                    for f in range(n_a):
                        acc_b[p, q, f] += inner_b[k * n_species + q, j, f]
        col = dim - (n_species * (n_species + 1) // 2) * n_a
        for p in range(n_species):
            for q in range(p, n_species):
                half = 0.5 if p == q else 1.0
                for f in range(n_a):
                    f_a[k, col + f] = half * acc_a[p, q, f]
                    f_b[k, col + f] = half * acc_b[p, q, f]
                col += n_a
        for f in range(dim):
            x[k, f] = 0.5 * (f_a[k, f] + f_b[k, f])
            x[k, dim + f] = 0.5 * abs(f_a[k, f] - f_b[k, f])
