"""Rule collect_hessians: merge the hessians shards into the prefactor tables."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.hessians import hessians_collect_step

log_to_file(snakemake.log[0])
out = snakemake.output
hessians_collect_step(snakemake.input.tables, snakemake.params.hessians, out.prefactors, out.rejects,
                      out.qc_summary, out.local_vs_full)
