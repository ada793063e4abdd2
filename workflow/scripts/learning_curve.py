"""Rule learning_curve: Fig 8 (the curves, and the parity panels at the smallest training set)."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.learning_curve import report_step

log_to_file(snakemake.log[0])
models = snakemake.params.full_models
full = {m: {"metrics": snakemake.input.full_metrics[k], "training": snakemake.input.full_training[k]}
        for k, m in enumerate(models)}
report_step(snakemake.input.points, full, snakemake.input.parity, snakemake.output.table, snakemake.output.figure,
            snakemake.output.parity)
