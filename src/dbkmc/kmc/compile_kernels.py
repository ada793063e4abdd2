"""Compile the numba kernels of the kMC engine's CPU paths once, when the package is installed.

numba compiles a kernel on its first call in a process and caches the machine code next to the module
(``__pycache__``), so only the first kMC job of a fresh checkout pays for it: about 10 s for the M_EXT
path (:mod:`dbkmc.kmc.rates.extensive_fast`), a second for the jump (:mod:`dbkmc.kmc.step_kernels`).
``make .venv`` runs this module after installing, so that cost is part of the installation, not of the
pipeline's first jobs. It runs a few jumps of untrained float32 and float64 M_EXT + KRA models on a small
fcc cell, one trajectory and a batch, with the state memo: every kernel signature the pipeline uses.

    python -m dbkmc.kmc.compile_kernels
"""

from __future__ import annotations

import time

import numpy as np
import torch

from dbkmc.core.lattice import Lattice
from dbkmc.detailed_balance.fingerprints import AEVParams
from dbkmc.detailed_balance.models import Ensemble, build_model
from dbkmc.detailed_balance.site_descriptors import SiteDescriptors
from dbkmc.kmc.engine import KMC
from dbkmc.kmc.rates.extensive_db import ExtensiveRateModel

SPECIES = ("Cu", "Ni")


def untrained_model(lattice: Lattice, dtype: torch.dtype) -> ExtensiveRateModel:
    """An M_EXT + KRA rate model with one untrained member each, in ``dtype``."""
    params = AEVParams()
    desc = SiteDescriptors(lattice, len(SPECIES))
    energy = build_model("M_EXT", len(SPECIES) + desc.n_features, hidden=(8,), dropout=0.0,
                         n_species=len(SPECIES)).to(dtype).eval()
    kra = build_model("KRA", params.dim(len(SPECIES)), hidden=(8,), dropout=0.0).to(dtype).eval()
    return ExtensiveRateModel(Ensemble([energy]), desc, Ensemble([kra]), params, lattice, SPECIES)


def main() -> int:
    start = time.perf_counter()
    lattice = Lattice("fcc", 4, 3.6)
    digits = np.random.default_rng(0).integers(1, len(SPECIES) + 1, lattice.n_sites)
    digits[0] = 0
    for dtype in (torch.float32, torch.float64):
        model = untrained_model(lattice, dtype)
        for temperatures in ([800.0], [800.0, 1200.0]):
            KMC(model, digits, temperatures, seed=0, cache=8).run(4)
    print(f"dbkmc: kMC kernels compiled in {time.perf_counter() - start:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
