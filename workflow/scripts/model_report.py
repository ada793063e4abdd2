"""Rule model_report: Table 2 and the parity / forward-reverse figures."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import report_step

log_to_file(snakemake.log[0])
names = snakemake.params.models
report_step(dict(zip(names, snakemake.input.metrics, strict=True)),
            dict(zip(names, snakemake.input.predictions, strict=True)),
            snakemake.output.table_csv, snakemake.output.table_md, snakemake.output.figures)
