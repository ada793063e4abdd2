"""The ``dbkmc`` command line: small tools around the pipeline's library."""

from __future__ import annotations

import argparse
import json
import sys

from dbkmc.config import ConfigError, load_config


def _check_config(args: argparse.Namespace) -> int:
    try:
        cfg = load_config(args.config)
    except ConfigError as err:
        print(err, file=sys.stderr)
        return 2
    print(json.dumps(cfg, indent=2, sort_keys=True) if args.show else f"{args.config}: valid")
    return 0


def _lattice_constants(args: argparse.Namespace) -> int:
    from dbkmc.dataset_stage import species_of
    from dbkmc.lattice_constants import measure_end_members
    from dbkmc.potentials import Potential

    cfg = load_config(args.config)
    ds = cfg["datasets"][args.dataset]
    pot_cfg = cfg["potentials"][ds["potential"]]
    pot = Potential.from_config(ds["potential"], pot_cfg)
    print(json.dumps(measure_end_members(pot, species_of(ds, pot_cfg), ds["lattice"]), indent=2))
    return 0


def _version(_: argparse.Namespace) -> int:
    from dbkmc.provenance import code_provenance

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
    p = sub.add_parser("version", help="code and library versions")
    p.set_defaults(func=_version)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
