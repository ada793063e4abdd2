"""Rule neb: relax end states and run CI-NEB for one shard of events."""

from dbkmc.stages.dataset import neb_shard_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
neb_shard_step(
    snakemake.input.events,
    int(snakemake.wildcards.shard),
    snakemake.params.n_shards,
    snakemake.params.potential_name,
    snakemake.params.potential,
    snakemake.params.neb,
    snakemake.params.qc,
    snakemake.output.table,
    snakemake.output.structures,
)
