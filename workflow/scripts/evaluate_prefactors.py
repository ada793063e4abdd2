"""Rule evaluate_prefactors: metrics.json of the three prefactor ensembles and their ln nu predictions."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.prefactors import evaluate_step_all

log_to_file(snakemake.log[0])
out = snakemake.output
evaluate_step_all(snakemake.input.events, snakemake.input.fingerprints, snakemake.params.model_dirs,
                  snakemake.params.models, {m: out[m] for m in ("PRE_S", "PRE_KRA", "PRE_DIRECT")}, out.predictions)
