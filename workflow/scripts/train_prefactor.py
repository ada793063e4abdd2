"""Rule train_prefactor: PRE_S and PRE_KRA through the model stage's train step, PRE_DIRECT through its own."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import train_step
from dbkmc.stages.prefactors import direct_train_step

log_to_file(snakemake.log[0])
out_dir = Path(snakemake.output.record).parent
if snakemake.wildcards.pre == "PRE_DIRECT":
    direct_train_step(snakemake.input.events, snakemake.input.fingerprints, snakemake.params.models, out_dir)
else:
    train_step(snakemake.params.kind, snakemake.input.events, snakemake.input.fingerprints, snakemake.params.models,
               out_dir, provenance={"prefactor_model": snakemake.wildcards.pre})
