"""Rule nnk_learning_curve_report: every NNK learning curve in one table and one figure."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.nnk_learning import learning_curve_report

log_to_file(snakemake.log[0])
learning_curve_report(snakemake.input.tables, snakemake.output.table, snakemake.output.markdown,
                      snakemake.output.figure)
