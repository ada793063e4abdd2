"""The ``dbkmc`` command line: small tools around the pipeline's library.

Bad input (a missing or unreadable file, an invalid config, a value the tool
cannot use) ends with one line on stderr naming the problem and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import math
import pickle
import sys

from dbkmc.core.config import ConfigError, load_config


class UsageError(Exception):
    """Bad input to a subcommand: reported as one line, exit code 2."""


def _check_config(args: argparse.Namespace) -> int:
    cfg = load_config(args.config)
    print(json.dumps(cfg, indent=2, sort_keys=True) if args.show else f"{args.config}: valid")
    return 0


def _lattice_constants(args: argparse.Namespace) -> int:
    from dbkmc.stages.dataset import species_of
    from dbkmc.neb.lattice_constants import measure_end_members
    from dbkmc.neb.potentials import Potential

    cfg = load_config(args.config)
    if args.dataset not in cfg["datasets"]:
        raise UsageError(f"--dataset: unknown dataset {args.dataset!r} (defined: {', '.join(cfg['datasets'])})")
    ds = cfg["datasets"][args.dataset]
    pot_cfg = cfg["potentials"][ds["potential"]]
    pot = Potential.from_config(ds["potential"], pot_cfg)
    print(json.dumps(measure_end_members(pot, species_of(ds, pot_cfg), ds["lattice"]), indent=2))
    return 0


def _nnk_barriers(args: argparse.Namespace) -> int:
    import torch

    from dbkmc.neb.dump import read_dump, to_lattice
    from dbkmc.nnk.networks import PublishedNNK, barrier_table

    try:
        ids = [int(t) for t in args.vacancy_ids.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"--vacancy-ids: expected comma-separated integers, got {args.vacancy_ids!r}") from None
    if not ids:
        raise UsageError("--vacancy-ids: no id given")
    if not (args.tol > 0 and math.isfinite(args.tol)):
        raise UsageError(f"--tol: need a finite number > 0, got {args.tol}")
    if args.cutoff is not None and not (args.cutoff > 0 and math.isfinite(args.cutoff)):
        raise UsageError(f"--cutoff: need a finite number > 0, got {args.cutoff}")
    try:
        model = PublishedNNK.from_file(args.weights).to(torch.float64)
    except (ValueError, pickle.UnpicklingError, EOFError) as err:
        raise UsageError(f"--weights: {err}") from None
    try:
        structure = to_lattice(read_dump(args.structure), kind=args.lattice, tol=args.tol)
    except ValueError as err:
        raise UsageError(f"--structure: {err}") from None
    try:
        table = barrier_table(model, structure, ids, cutoff=args.cutoff)
    except ValueError as err:
        msg = str(err)
        if msg.startswith("cutoff: "):
            raise UsageError(f"--{msg}") from None
        option = "--vacancy-ids" if msg.startswith("atom id") else "--structure"
        raise UsageError(f"{option}: {msg}") from None
    table.to_csv(args.out, index=False, float_format="%.10f")
    print(f"{args.out}: {len(table)} barriers for {len(ids)} vacancies "
          f"({structure.lattice.kind} {structure.lattice.n}^3, a = {structure.lattice.a:.6f} A)")
    return 0


def _structure_frames(path: str, species: list[str]):
    """(label, positions, box edge lengths, species index per atom, atom names) of every frame of an extxyz
    file (by suffix .xyz/.extxyz, elements by symbol) or a LAMMPS text dump (type k = the model's k-th species)."""
    import numpy as np

    if path.endswith((".xyz", ".extxyz")):
        from ase.io import read

        for k, atoms in enumerate(read(path, index=":", format="extxyz")):
            cell = np.asarray(atoms.cell)
            if not np.allclose(cell, np.diag(np.diag(cell)), atol=1e-9):
                raise UsageError(f"--structure: frame {k}: the cell is not orthogonal")
            symbols = atoms.get_chemical_symbols()
            unknown = sorted(set(symbols) - set(species))
            if unknown:
                raise UsageError(f"--structure: frame {k}: elements {unknown} are not among the model's species {species}")
            names = [f"atom {i + 1} ({s})" for i, s in enumerate(symbols)]
            yield k, atoms.positions, np.diag(cell), np.array([species.index(s) for s in symbols]), names
        return
    from dbkmc.neb.dump import read_dump_frames

    for frame in read_dump_frames(path):
        bad = (frame.types < 1) | (frame.types > len(species))
        if bad.any():
            j = int(np.flatnonzero(bad)[0])
            raise UsageError(f"--structure: timestep {frame.timestep}: atom id {frame.ids[j]} has type "
                             f"{frame.types[j]}; the model's species are {species} (types 1..{len(species)})")
        yield (frame.timestep, frame.positions, frame.box_hi - frame.box_lo, frame.types - 1,
               [f"atom id {i}" for i in frame.ids])


def _energy(args: argparse.Namespace) -> int:
    import numpy as np
    import pandas as pd
    import torch

    from dbkmc.core.lattice_map import map_onto_lattice
    from dbkmc.detailed_balance.extensive import load_energy_model

    if not (args.tol > 0 and math.isfinite(args.tol)):
        raise UsageError(f"--tol: need a finite number > 0, got {args.tol}")
    try:
        model = load_energy_model(args.model)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError, pickle.UnpicklingError) as err:
        raise UsageError(f"--model: {err}") from None
    if model.lattice_kind is not None and model.lattice_kind != args.lattice:
        raise UsageError(f"--lattice: the model {args.model} was trained on {model.lattice_kind}, not {args.lattice}")
    rows = []
    try:
        for label, pos, box, spec, names in _structure_frames(args.structure, model.species):
            lattice, site = map_onto_lattice(pos, box, args.lattice, names, args.tol)
            digits = torch.zeros(lattice.n_sites, dtype=torch.long)
            digits[torch.as_tensor(site)] = torch.as_tensor(np.asarray(spec) + 1)
            mean, std = model.lattice_energy(digits[None], lattice)
            rows.append({"frame": label, "n_atoms": len(site), "n_vacancies": lattice.n_sites - len(site),
                         "supercell": lattice.n, "a": lattice.a, "E_mean_eV": float(mean[0]), "E_std_eV": float(std[0])})
    except ValueError as err:
        raise UsageError(f"--structure: {err}") from None
    pd.DataFrame(rows).to_csv(args.out, index=False, float_format="%.10f")
    print(f"{args.out}: E(S) of {len(rows)} frame(s) ({model.n_members}-member M_EXT ensemble)")
    return 0


def _version(_: argparse.Namespace) -> int:
    from dbkmc.core.provenance import code_provenance

    print(json.dumps(code_provenance(), indent=2))
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="dbkmc", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("check-config", help="validate a config file against the schema")
    p.add_argument("config")
    p.add_argument("--show", action="store_true", help="print the config with defaults filled in")
    p.set_defaults(func=_check_config)
    p = sub.add_parser("lattice-constants", help="end-member lattice parameters of a dataset's potential")
    p.add_argument("config")
    p.add_argument("--dataset", required=True)
    p.set_defaults(func=_lattice_constants)
    p = sub.add_parser("nnk", help="neural network kinetics tools")
    nnk_sub = p.add_subparsers(dest="nnk_command", required=True)
    q = nnk_sub.add_parser("barriers", help="barriers of every jump path of given vacancies (published NNK model)")
    q.add_argument("--weights", required=True, help="weights.npy of the published network (loaded without pickle code)")
    q.add_argument("--structure", required=True, help="LAMMPS text dump of a fully occupied fcc/bcc supercell")
    q.add_argument("--vacancy-ids", required=True, help="comma-separated dump atom ids; each is made the vacancy in turn")
    q.add_argument("--out", required=True, help="CSV: vacancy_id, path, neighbor_id, barrier_eV")
    q.add_argument("--cutoff", type=float, default=None,
                   help="encoding cutoff (Angstrom); default and only accepted value: the network's own (7.5)")
    q.add_argument("--lattice", choices=["fcc", "bcc"], default=None, help="lattice kind (default: from the atom count)")
    q.add_argument("--tol", type=float, default=0.01, help="largest distance (Angstrom) of an atom from its ideal site")
    q.set_defaults(func=_nnk_barriers)
    p = sub.add_parser("energy", help="E(S) of lattice structures from an M_EXT ensemble (mean and std, eV)")
    p.add_argument("--model", required=True, help="an M_EXT model folder (member_<k>.pt)")
    p.add_argument("--structure", required=True,
                   help="extxyz (.xyz/.extxyz) or LAMMPS text dump: atoms on the ideal sites of a cubic supercell, "
                        "empty sites are vacancies; dump type k is the model's k-th species")
    p.add_argument("--lattice", required=True, choices=["fcc", "bcc"])
    p.add_argument("--out", required=True, help="CSV: frame, n_atoms, n_vacancies, supercell, a, E_mean_eV, E_std_eV")
    p.add_argument("--tol", type=float, default=0.01, help="largest distance (Angstrom) of an atom from its ideal site")
    p.set_defaults(func=_energy)
    p = sub.add_parser("version", help="code and library versions")
    p.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    prog = "dbkmc " + " ".join(c for c in (args.command, getattr(args, "nnk_command", None)) if c)
    try:
        return args.func(args)
    except ConfigError as err:  # one line per problem in the config
        print("\n".join(f"{prog}: {line}" for line in str(err).splitlines()), file=sys.stderr)
    except UsageError as err:
        print(f"{prog}: {err}", file=sys.stderr)
    except OSError as err:  # a missing, unreadable or unwritable file
        where = f": {err.filename}" if err.filename else ""
        print(f"{prog}: {err.strerror or err}{where}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
