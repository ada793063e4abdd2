"""Rule far_field: std of NEB dE and E_KRA (and of the prefactor terms, when the cells have them) against r_cut (Fig 11)."""

from dbkmc.stages.far_field import far_field_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
far_field_step(snakemake.input.sampled, snakemake.input.events, snakemake.input.rejects,
               dict(zip(snakemake.params.models, snakemake.input.metrics, strict=True)),
               snakemake.params.model_r_cut, snakemake.output.table, snakemake.output.figure,
               *(snakemake.input.prefactors or [None, None]))
