"""Rule prefactor_report: ln nu metrics and Meyer-Neldel tables, compensation / parity / histogram figures."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.prefactors import report_step

log_to_file(snakemake.log[0])
inp, out = snakemake.input, snakemake.output
report_step(inp.table, inp.predictions, inp.surrogate, out.metrics_csv, out.metrics_md, out.meyer_neldel,
            Path(out.figures[0]).parent)
