"""Rule import_dataset: take a dataset made elsewhere instead of running NEB."""

from dbkmc.stages.dataset import import_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
out = snakemake.output
import_step(snakemake.params.source, out.events, out.rejects, out.qc_summary, out.structures, out.dataset)
