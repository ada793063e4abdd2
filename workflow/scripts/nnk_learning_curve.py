"""Rule nnk_learning_curve: one NNK architecture retrained on growing shares of a set's training data."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.nnk_learning import learning_curve_step

log_to_file(snakemake.log[0])
learning_curve_step(snakemake.wildcards.nnk_set, snakemake.wildcards.arch, snakemake.input.events,
                    snakemake.params.set_cfg, snakemake.params.nnk, snakemake.params.fractions,
                    snakemake.output.table, threads=snakemake.threads)
