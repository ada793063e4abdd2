r"""Closed loops of vacancy hops on a periodic lattice (Fig 9 of the detailed-balance paper).

A model obeys the Kolmogorov criterion when the predicted ``dE`` summed over
every closed cycle of jumps is zero. This module builds such cycles:

Graph and cycle basis
---------------------
:func:`lattice_graph` is the first-neighbour graph of the periodic supercell
(networkx; sites are nodes). :func:`cycle_basis` returns a basis of its cycle
space (dimension ``m - n + 1``) made of short cycles: the shortest cycles
(triangles in fcc, 4-cycles in bcc) first, then networkx's fundamental cycles
(:func:`networkx.cycle_basis`) sorted by length, each kept when it is
independent of those kept so far over GF(2). In practice the basis is all
girth cycles the cell needs plus three cycles that wind around the periodic box.
networkx's own minimum cycle basis gives the same lengths but takes minutes on
a 4x4x4 fcc cell; this takes about a second.

Random loops (:func:`grow_loops`)
---------------------------------
A loop starts as a random basis cycle. Each step XORs (on edges) a random basis
cycle that shares exactly one edge with the loop and whose other vertices are
off the loop, so the result is again one simple cycle: the shared edge is
replaced by the rest of the basis cycle. With fcc triangles a loop grows by one
site per step, with bcc squares by two. One growth trajectory contributes at
most one loop to each length L it passes; trajectories run until every
requested L holds ``n_loops`` distinct loops (distinct edge sets) or the
trajectory budget is spent. A length that cannot exist is reported with its
reason (shorter than the shortest cycle, odd in a bipartite graph such as bcc,
longer than the number of sites); one that was not reached in the budget is
reported as such. Nothing is padded.

Chemistry (:func:`loop_states`)
-------------------------------
Every site of a loop holds the same species; the vacancy starts on the loop's
first site and hops once around it (``L`` hops). The other sites are drawn at
random with exact counts of the configured composition, anew for each loop.
Since the loop's atoms are all alike, the state after k hops is the starting
occupation with the vacancy on site k of the loop, and after L hops the cell is
back in its first state.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import networkx as nx
import numpy as np

from dbkmc.core.composition import exact_counts
from dbkmc.core.lattice import Lattice
from dbkmc.core.sampling import VACANCY

Edge = tuple[int, int]


def edge_key(u: int, v: int) -> Edge:
    """The undirected edge {u, v} as a sorted pair."""
    return (u, v) if u < v else (v, u)


def lattice_graph(lattice: Lattice) -> nx.Graph:
    """First-neighbour graph of the periodic supercell: one node per site, one edge per neighbour pair."""
    graph = nx.Graph()
    graph.add_nodes_from(range(lattice.n_sites))
    nb = lattice.neighbors
    graph.add_edges_from(edge_key(s, int(t)) for s in range(lattice.n_sites) for t in nb[s] if s != t)
    return graph


def _triangles(graph: nx.Graph) -> list[tuple[int, ...]]:
    out = []
    for u in sorted(graph):
        higher = {w for w in graph[u] if w > u}
        for v in sorted(higher):
            out += [(u, v, w) for w in sorted(higher & set(graph[v])) if w > v]
    return out


def _squares(graph: nx.Graph) -> list[tuple[int, ...]]:
    """4-cycles (u, a, x, b) with u the smallest vertex and a < b, each once."""
    out = []
    for u in sorted(graph):
        nbrs = sorted(w for w in graph[u] if w > u)
        for i, a in enumerate(nbrs):
            for b in nbrs[i + 1:]:
                out += [(u, a, x, b) for x in sorted(set(graph[a]) & set(graph[b])) if x > u]
    return out


def _ordered_cycle(graph: nx.Graph, nodes: Sequence[int]) -> tuple[int, ...]:
    """The vertices of a simple cycle in walking order (networkx may return them unordered)."""
    members = set(nodes)
    sub = graph.subgraph(members)
    start = min(members)
    order, prev = [start], None
    while len(order) < len(members):
        here = order[-1]
        nxt = [w for w in sub[here] if w != prev and w not in order[1:]]
        if not nxt:
            raise ValueError("loops: a basis cycle is not a simple cycle")
        prev = here
        order.append(min(nxt) if len(order) == 1 else nxt[0])
    return tuple(order)


def cycle_edges(cycle: Sequence[int]) -> list[Edge]:
    """Edges of a cycle given in walking order."""
    return [edge_key(cycle[i], cycle[(i + 1) % len(cycle)]) for i in range(len(cycle))]


@dataclass(frozen=True)
class CycleBasis:
    """A cycle basis: ``cycles`` in walking order, and for every edge the basis cycles through it."""

    cycles: tuple[tuple[int, ...], ...]
    edge_cycles: Mapping[Edge, tuple[int, ...]]
    girth: int
    bipartite: bool
    n_sites: int

    def __len__(self) -> int:
        return len(self.cycles)


def cycle_basis(graph: nx.Graph) -> CycleBasis:
    """A basis of the cycle space of ``graph`` from short cycles (see the module docstring)."""
    if not nx.is_connected(graph):
        raise ValueError("loops: the lattice graph is not connected")
    edge_index = {e: i for i, e in enumerate(sorted(edge_key(u, v) for u, v in graph.edges))}
    rank = graph.number_of_edges() - graph.number_of_nodes() + 1
    candidates = _triangles(graph) or _squares(graph)
    fundamental = sorted((_ordered_cycle(graph, c) for c in nx.cycle_basis(graph, root=0)), key=lambda c: (len(c), c))
    pivots: dict[int, int] = {}
    kept: list[tuple[int, ...]] = []
    for cycle in [*candidates, *fundamental]:
        if len(kept) == rank:
            break
        vec = 0
        for e in cycle_edges(cycle):
            vec ^= 1 << edge_index[e]
        while vec:
            top = vec.bit_length() - 1
            if top not in pivots:
                pivots[top] = vec
                kept.append(tuple(cycle))
                break
            vec ^= pivots[top]
    if len(kept) != rank:
        raise RuntimeError(f"loops: found {len(kept)} independent cycles, the cycle space has {rank}")
    by_edge: dict[Edge, list[int]] = {}
    for ci, cycle in enumerate(kept):
        for e in cycle_edges(cycle):
            by_edge.setdefault(e, []).append(ci)
    return CycleBasis(tuple(kept), {e: tuple(c) for e, c in by_edge.items()}, min(map(len, kept)),
                      nx.is_bipartite(graph), graph.number_of_nodes())


def impossible_reason(basis: CycleBasis, length: int) -> str:
    """Why no simple cycle of ``length`` sites exists in the graph, or "" if one may exist."""
    if length < basis.girth:
        return f"shorter than the shortest cycle ({basis.girth})"
    if basis.bipartite and length % 2:
        return "odd length in a bipartite lattice graph"
    if length > basis.n_sites:
        return f"longer than the number of sites ({basis.n_sites})"
    return ""


@dataclass
class _Loop:
    order: list[int]
    edges: set[Edge] = field(default_factory=set)
    nodes: set[int] = field(default_factory=set)

    @classmethod
    def start(cls, cycle: Sequence[int]) -> _Loop:
        return cls(list(cycle), set(cycle_edges(cycle)), set(cycle))

    def candidates(self, basis: CycleBasis) -> list[tuple[int, Edge]]:
        """Basis cycles sharing exactly one edge with the loop and no other vertex."""
        out = []
        for e in sorted(self.edges):
            for ci in basis.edge_cycles[e]:
                cycle = basis.cycles[ci]
                if sum(ce in self.edges for ce in cycle_edges(cycle)) != 1:
                    continue
                if any(v in self.nodes for v in cycle if v not in e):
                    continue
                out.append((ci, e))
        return out

    def xor(self, cycle: Sequence[int], shared: Edge) -> None:
        """Replace the shared edge (u, v) by the rest of ``cycle``, the path from u to v (one simple cycle again)."""
        u, v = shared
        k = cycle.index(u)
        turned = list(cycle[k:]) + list(cycle[:k])          # the cycle walked from u
        if turned[-1] == v:                                  # u -> turned[1] -> ... -> v
            interior = turned[1:-1]
        elif turned[1] == v:                                 # u -> turned[-1] -> ... -> turned[2] -> v
            interior = turned[2:][::-1]
        else:
            raise RuntimeError("loops: shared edge is not an edge of the basis cycle")
        i, j = self.order.index(u), self.order.index(v)
        if (i + 1) % len(self.order) == j:                   # the loop walks u -> v
            self.order[i + 1:i + 1] = interior
        elif (j + 1) % len(self.order) == i:                 # the loop walks v -> u
            self.order[j + 1:j + 1] = interior[::-1]
        else:
            raise RuntimeError("loops: shared edge is not an edge of the loop")
        self.edges ^= set(cycle_edges(cycle))
        self.nodes |= set(interior)


@dataclass(frozen=True)
class LoopSet:
    """Loops found per length: ``loops[L]`` lists site sequences in walking order (closed: last -> first)."""

    loops: dict[int, list[tuple[int, ...]]]
    status: dict[int, str]
    trajectories: int


def grow_loops(basis: CycleBasis, lengths: Sequence[int], n_loops: int, rng: np.random.Generator,
               max_trajectories: int) -> LoopSet:
    """``n_loops`` distinct random loops for every length in ``lengths`` (see the module docstring).

    ``status[L]`` is ``"ok"``, ``"partial: found k of n in T trajectories"``,
    ``"not reached in T trajectories"`` or ``"impossible: <reason>"``.
    """
    lengths = sorted(set(int(L) for L in lengths))
    found: dict[int, list[tuple[int, ...]]] = {L: [] for L in lengths}
    seen: dict[int, set[frozenset[Edge]]] = {L: set() for L in lengths}
    reasons = {L: impossible_reason(basis, L) for L in lengths}
    open_lengths = {L for L in lengths if not reasons[L]}
    n_traj = 0
    while open_lengths and n_traj < max_trajectories:
        n_traj += 1
        loop = _Loop.start(basis.cycles[int(rng.integers(len(basis)))])
        longest = max(open_lengths)
        while True:
            size = len(loop.order)
            if size in open_lengths:
                key = frozenset(loop.edges)
                if key not in seen[size]:
                    seen[size].add(key)
                    found[size].append(tuple(loop.order))
                    if len(found[size]) == n_loops:
                        open_lengths.discard(size)
            if size >= longest or not any(L > size for L in open_lengths):
                break
            options = loop.candidates(basis)
            if not options:
                break
            ci, shared = options[int(rng.integers(len(options)))]
            loop.xor(basis.cycles[ci], shared)
    status = {}
    for L in lengths:
        if reasons[L]:
            status[L] = f"impossible: {reasons[L]}"
        elif len(found[L]) == n_loops:
            status[L] = "ok"
        elif found[L]:
            status[L] = f"partial: found {len(found[L])} of {n_loops} in {n_traj} trajectories"
        else:
            status[L] = f"not reached in {n_traj} trajectories"
    return LoopSet(found, status, n_traj)


# --------------------------------------------------------------------------- chemistry


def loop_states(lattice: Lattice, loops: Sequence[Sequence[int]], species: Sequence[str],
                composition: Mapping[str, float], loop_species: str | None,
                rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """The atoms of each loop's cell (before the vacancy is placed) and the species index on its loop.

    Returns ``(occupation (n_loops, n_sites) int8, loop_species (n_loops,))``.
    Every loop site holds the loop species: ``loop_species`` or, if ``None``,
    one drawn per loop with the composition's weights. The other sites get
    exact counts of ``composition``, shuffled, anew for each loop.
    """
    weights = np.array([float(composition.get(s, 0.0)) for s in species])
    if loop_species is not None and loop_species not in species:
        raise ValueError(f"loops.loop_species: {loop_species!r} is not one of the model's species {list(species)}")
    occ = np.empty((len(loops), lattice.n_sites), dtype=np.int8)
    on_loop = np.empty(len(loops), dtype=np.int64)
    for i, loop in enumerate(loops):
        sites = np.asarray(loop, dtype=np.int64)
        x = species.index(loop_species) if loop_species is not None else int(rng.choice(len(species), p=weights))
        rest = np.setdiff1d(np.arange(lattice.n_sites), sites)
        counts = exact_counts(composition, species, len(rest))
        occ[i, rest] = rng.permutation(np.repeat(np.arange(len(species)), counts))
        occ[i, sites] = x
        on_loop[i] = x
    return occ, on_loop


def occupation_strings(occupation: np.ndarray) -> list[str]:
    """Rows of an (N, n_sites) species-index array (-1 = vacancy) as occupation strings ('0'..'9', 'V')."""
    occ = np.asarray(occupation)
    if occ.size and (occ.max() > 9 or occ.min() < VACANCY):
        raise ValueError("loops: species indices must lie in 0..9 (or -1 for the vacancy)")
    chars = np.where(occ == VACANCY, ord("V"), ord("0") + occ).astype(np.uint8)
    text = chars.tobytes().decode("ascii")
    width = occ.shape[1]
    return [text[i * width:(i + 1) * width] for i in range(occ.shape[0])]


def loop_hop_events(lattice: Lattice, loops: Sequence[Sequence[int]], occupation: np.ndarray,
                    species: Sequence[str]) -> list[dict]:
    """The ``L`` hops of the vacancy once around each loop, as event rows (loop-major, hop order).

    ``occupation``: the loops' cells from :func:`loop_states`. Hop k of a loop
    starts from the state with the vacancy on loop site k (every other loop
    site holds the loop species) and moves it to site k + 1; the last hop
    closes the loop. Rows carry the fields
    :func:`dbkmc.detailed_balance.fingerprints.featurize_events` reads.
    """
    if len(loops) != len(occupation):
        raise ValueError("loops: one occupation per loop needed")
    sizes = {len(loop) for loop in loops}
    if len(sizes) > 1:
        raise ValueError("loops: loop_hop_events takes loops of one length")
    if not loops:
        return []
    length = sizes.pop()
    sites = np.asarray(loops, dtype=np.int64)                         # (n, L)
    states = np.repeat(np.asarray(occupation), length, axis=0)        # (n L, n_sites)
    rows = np.arange(len(states))
    vac = sites.reshape(-1)
    hop = np.roll(sites, -1, axis=1).reshape(-1)
    states[rows, vac] = VACANCY
    species_text = ",".join(species)
    return [{"occupation": text, "vacancy_site": int(v), "hop_site": int(h), "lattice": lattice.kind,
             "supercell": lattice.n, "a": lattice.a, "species": species_text}
            for text, v, h in zip(occupation_strings(states), vac, hop, strict=True)]


def requested_lengths(l_min: int, l_max: int, l_step: int) -> list[int]:
    """L_min, L_min + L_step, ..., up to L_max (always included)."""
    if l_min < 3 or l_max < l_min or l_step < 1:
        raise ValueError(f"loops: need 3 <= L_min <= L_max and L_step >= 1, got {l_min}, {l_max}, {l_step}")
    return sorted(set(range(l_min, l_max + 1, l_step)) | {l_max})
