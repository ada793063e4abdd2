"""Rule balance_audit: loop drift and Markov check of the named kMC runs' rate models."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.balance_audit import audit_step

log_to_file(snakemake.log[0])
audit_step(snakemake.params.runs, snakemake.params.cfg, snakemake.params.device, snakemake.output)
