import numpy as np
import pytest

from dbkmc.core.lattice import COORDINATION, NN_VECTORS, Lattice


@pytest.mark.parametrize("kind,n,z,n_sites", [("fcc", 3, 12, 108), ("bcc", 4, 8, 128), ("fcc", 4, 12, 256)])
def test_first_neighbours_are_at_the_nn_distance(kind, n, z, n_sites):
    lat = Lattice(kind, n, 3.5)
    assert lat.n_sites == n_sites
    assert lat.neighbors.shape == (n_sites, z) == (n_sites, COORDINATION[kind])
    d = lat.minimum_image(lat.positions[lat.neighbors] - lat.positions[:, None, :])
    nn = 3.5 / np.sqrt(2) if kind == "fcc" else 3.5 * np.sqrt(3) / 2
    np.testing.assert_allclose(np.linalg.norm(d, axis=-1), nn)
    # path k of site s is the vector NN_VECTORS[k]
    np.testing.assert_allclose(d, np.broadcast_to(NN_VECTORS[kind] * 1.75, d.shape), atol=1e-12)


@pytest.mark.parametrize("kind", ["fcc", "bcc"])
def test_neighbour_relation_is_symmetric_and_complete(kind):
    lat = Lattice(kind, 3, 3.0)
    for s in range(lat.n_sites):
        nbrs = lat.neighbors[s]
        assert len(set(nbrs)) == len(nbrs)
        assert all(s in lat.neighbors[t] for t in nbrs)
    # reversing path k gives the path with the opposite vector
    vecs = NN_VECTORS[kind]
    for k, v in enumerate(vecs):
        back = int(np.flatnonzero((vecs == -v).all(axis=1))[0])
        assert np.array_equal(lat.neighbors[lat.neighbors[:, k], back], np.arange(lat.n_sites))


def test_bad_lattice_inputs_name_the_field():
    with pytest.raises(ValueError, match="lattice"):
        Lattice("hcp", 3, 3.0)
    with pytest.raises(ValueError, match="supercell"):
        Lattice("fcc", 1, 3.0)
    with pytest.raises(ValueError, match="lattice parameter"):
        Lattice("fcc", 3, float("nan"))
