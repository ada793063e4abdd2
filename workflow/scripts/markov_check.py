"""Rule markov_check: the exact Markov-chain check of detailed balance on a tiny cell."""

from dbkmc.stages.loops import markov_check_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
markov_check_step(snakemake.params.model_dirs, snakemake.params.kra_dir, snakemake.input.events,
                  snakemake.input.dataset, snakemake.params.loops, snakemake.params.device,
                  snakemake.output.table, snakemake.output.markdown)
