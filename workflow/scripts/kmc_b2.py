"""Rule kmc_b2: B2 units and their clusters in every snapshot (Fig 5)."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.kmc_report import b2_report_step

log_to_file(snakemake.log[0])
b2_report_step(snakemake.input.snapshots, snakemake.input.final, snakemake.params.analysis["b2"],
               snakemake.wildcards.kmc_run, snakemake.output.clusters, snakemake.output.per_snapshot,
               snakemake.output.fig5)
