"""Rule loop_drift: <|E_net(L)|> of each dE ensemble on random closed loops (Fig 9)."""

from dbkmc.stages.loops import loop_drift_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
loop_drift_step(snakemake.params.model_dirs, snakemake.input.events, snakemake.input.dataset,
                snakemake.params.loops, snakemake.params.device,
                snakemake.output.table, snakemake.output.loops, snakemake.output.figure)
