"""Rule fingerprints: Kolmogorov and transition-wise AEVs of a dataset."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import fingerprints_step

log_to_file(snakemake.log[0])
fingerprints_step(snakemake.input.events, snakemake.params.aev, snakemake.output[0])
