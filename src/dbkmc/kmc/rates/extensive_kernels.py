r"""Compiled index work of an M_EXT + KRA kMC step on the CPU (numba): the site descriptors and dE.

The tensor code of :mod:`dbkmc.kmc.rates.extensive_db` serves every device and any batch, but for one
trajectory on a CPU core its ~300 small tensor operations per jump cost more than the networks. These
functions do the same work in compiled loops, on numpy views of the model's caches (the step they make up
is :mod:`dbkmc.kmc.rates.extensive_fast`; the transition-wise fingerprints are in
:mod:`dbkmc.kmc.rates.transition_kernels`); only the networks stay in torch. Every function is pure array
code (inputs in, outputs written into the given buffers); the tables are those of the tensor path
(:class:`~dbkmc.kmc.rates.hop_descriptors.HopDescriptors`,
:class:`~dbkmc.detailed_balance.site_descriptors.SiteDescriptors`), so both paths give the same numbers up
to the order of float summation (``tests/test_rates_ext_fast.py``).

Digits: 0 = vacancy, 1..S = species. Sites are found from integer half-coordinates ``hc`` and the
periodic ``grid`` (period ``2n``).
"""

from __future__ import annotations

import numpy as np
from numba import njit


@njit(cache=True, inline="always")
def site_at(hc, grid, period, v, dx, dy, dz):
    """The site at offset (dx, dy, dz) half units from site v, periodic."""
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
        ch_a[u] = digits[site_at(hc, grid, period, v, offsets[u, 0], offsets[u, 1], offsets[u, 2])]
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
        s = site_at(hc, grid, period, v, region[r, 0], region[r, 1], region[r, 2])
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
            s = site_at(hc, grid, period, c, ball[b, 0], ball[b, 1], ball[b, 2])
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
            nb = site_at(hc, grid, period, s, rad_off[r, 0], rad_off[r, 1], rad_off[r, 2])
            out[i, rad_code[r] + digits[nb]] += 1.0
        for t in range(n_t):
            ch[t] = digits[site_at(hc, grid, period, s, tri_off[t, 0], tri_off[t, 1], tri_off[t, 2])]
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
                s = site_at(hc, grid, period, v, win_rel[k, j, 0], win_rel[k, j, 1], win_rel[k, j, 2])
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
def mix64(h):
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
        h1 = mix64(r[i, 0] + np.uint64(spec[i])) | np.uint64(1)
        h2 = mix64(r[i, 1] + np.uint64(spec[i]) * _GOLD)
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
