"""Rule nnk_report: NNK metrics table and barrier-spectrum / parity figures."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.nnk import report_step

log_to_file(snakemake.log[0])
report_step(snakemake.input.metrics, snakemake.input.predictions, snakemake.params.sets,
            snakemake.output.table, snakemake.output.markdown, Path(snakemake.output.spectra[0]).parent)
