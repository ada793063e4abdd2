"""`dbkmc energy`: E(S) of extxyz / LAMMPS-dump structures from an M_EXT ensemble, and its one-line errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from ase import Atoms
from ase.io import write

from dbkmc.cli import main
from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.aev import AEVParams
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS
from dbkmc.detailed_balance.extensive import load_energy_model
from dbkmc.detailed_balance.models import Ensemble, build_model
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.detailed_balance.training import save_ensemble

SPECIES = ["Cu", "Ni"]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    d = SiteDescriptors(Lattice("fcc", 4, 3.6), 2).n_features
    members = []
    for k in range(2):
        torch.manual_seed(k)
        m = build_model("M_EXT", 2 + d, hidden=(8, 8), dropout=0.0, n_species=2)
        with torch.no_grad():
            m.x_std.fill_(20.0)
        members.append(m)
    out = tmp_path_factory.mktemp("models") / "M_EXT"
    save_ensemble(out, Ensemble(members), AEVParams(), SPECIES,
                  extra={"lattice": "fcc", "ext_shells": dict(DEFAULT_SHELLS)})
    return out


def _structure(n_vac: int = 2, seed: int = 0):
    lattice = Lattice("fcc", 4, 3.6)
    rng = np.random.default_rng(seed)
    digits = rng.integers(1, 3, lattice.n_sites)
    digits[rng.choice(lattice.n_sites, n_vac, replace=False)] = 0
    occ = np.flatnonzero(digits)
    return lattice, digits, occ


def _dump(path, lattice, digits, occ, shift=0.3):
    lines = ["ITEM: TIMESTEP", "7", "ITEM: NUMBER OF ATOMS", str(len(occ)), "ITEM: BOX BOUNDS pp pp pp"]
    lines += [f"0.0 {lattice.n * lattice.a}"] * 3 + ["ITEM: ATOMS id type x y z"]
    for i, s in enumerate(occ):
        x, y, z = lattice.positions[s] + shift
        lines.append(f"{i + 1} {digits[s]} {x} {y} {z}")
    path.write_text("\n".join(lines) + "\n")


def test_energy_of_extxyz_and_dump_frames_matches_the_model(model_dir, tmp_path):
    lattice, digits, occ = _structure()
    frames = [Atoms([SPECIES[digits[s] - 1] for s in occ], positions=lattice.positions[occ] + 0.1,
                    cell=np.eye(3) * lattice.n * lattice.a, pbc=True)]
    lattice2, digits2, occ2 = _structure(5, seed=1)
    frames.append(Atoms([SPECIES[digits2[s] - 1] for s in occ2], positions=lattice2.positions[occ2],
                        cell=np.eye(3) * lattice2.n * lattice2.a, pbc=True))
    write(tmp_path / "s.extxyz", frames, format="extxyz")
    assert main(["energy", "--model", str(model_dir), "--structure", str(tmp_path / "s.extxyz"),
                 "--lattice", "fcc", "--out", str(tmp_path / "e.csv")]) == 0
    table = pd.read_csv(tmp_path / "e.csv")
    model = load_energy_model(model_dir)
    mean, std = model.lattice_energy(torch.as_tensor(np.stack([digits, digits2])), lattice)
    assert list(table["n_vacancies"]) == [2, 5] and list(table["supercell"]) == [4, 4]
    np.testing.assert_allclose(table["E_mean_eV"], mean.numpy(), rtol=0, atol=1e-8)
    np.testing.assert_allclose(table["E_std_eV"], std.numpy(), rtol=0, atol=1e-8)
    _dump(tmp_path / "s.dump", lattice, digits, occ)
    assert main(["energy", "--model", str(model_dir), "--structure", str(tmp_path / "s.dump"),
                 "--lattice", "fcc", "--out", str(tmp_path / "d.csv")]) == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "d.csv")["E_mean_eV"], mean.numpy()[:1], rtol=0, atol=1e-8)


def test_bad_input_is_one_line_naming_it(model_dir, tmp_path, capsys):
    lattice, digits, occ = _structure()
    cell = np.eye(3) * lattice.n * lattice.a

    def run(structure, lattice_kind="fcc", model=model_dir):
        code = main(["energy", "--model", str(model), "--structure", str(structure), "--lattice", lattice_kind,
                     "--out", str(tmp_path / "x.csv")])
        err = capsys.readouterr().err.strip()
        assert code == 2 and len(err.splitlines()) == 1
        return err

    write(tmp_path / "fe.xyz", Atoms(["Fe"] + ["Cu"] * (len(occ) - 1), positions=lattice.positions[occ], cell=cell,
                                     pbc=True), format="extxyz")
    assert "['Fe'] are not among the model's species" in run(tmp_path / "fe.xyz")
    pos = lattice.positions[occ].copy()
    pos[3] += 0.4
    write(tmp_path / "off.xyz", Atoms(["Cu"] * len(occ), positions=pos, cell=cell, pbc=True), format="extxyz")
    assert "atom 4 (Cu)" in run(tmp_path / "off.xyz") and "not on an ideal site" in run(tmp_path / "off.xyz")
    assert "trained on fcc, not bcc" in run(tmp_path / "off.xyz", "bcc")
    digits[occ[0]] = 3
    _dump(tmp_path / "t.dump", lattice, digits, occ)
    assert "has type 3" in run(tmp_path / "t.dump")
    other = tmp_path / "KOL"
    m = build_model("M_KOL", 4, (4,))
    save_ensemble(other, Ensemble([m]), AEVParams(), SPECIES)
    assert "M_KOL model, not M_EXT" in run(tmp_path / "fe.xyz", model=other)
