"""Rule collect_dataset: merge NEB shards into the dataset files."""

import json
from pathlib import Path

from dbkmc.stages.dataset import collect_step
from dbkmc.core.logs import log_to_file
from dbkmc.neb.potentials import Potential

log_to_file(snakemake.log[0])
params = snakemake.params
provenance = {
    "dataset": snakemake.wildcards.dataset,
    "seeds": {f"datasets.{snakemake.wildcards.dataset}.seed": params.dataset["seed"]},
    "parameters": {"dataset": params.dataset, "neb": params.neb, "qc": params.qc},
    "potential": Potential.from_config(params.potential_name, params.potential).provenance(),
    "lattice_constants": json.loads(Path(snakemake.input.lattice_constants).read_text())["a"],
}
out = snakemake.output
collect_step(snakemake.input.tables, snakemake.input.structures, provenance,
             out.events, out.rejects, out.qc_summary, out.structures, out.dataset,
             extends=params.dataset.get("extends"))
