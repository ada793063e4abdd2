"""Rule hessians: Vineyard prefactors of one shard of a dataset's events."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.hessians import hessians_shard_step

log_to_file(snakemake.log[0])
params = snakemake.params
hessians_shard_step(
    snakemake.input.events,
    snakemake.input.meta,
    int(snakemake.wildcards.shard),
    params.hessians,
    params.neb,
    params.qc,
    params.potential_name,
    params.potential,
    snakemake.output.table,
)
