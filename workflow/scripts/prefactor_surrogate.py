"""Rule prefactor_surrogate: the seed's ridge surrogate of ln nu_AB on sna and aev descriptor sums."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.prefactors import surrogate_step

log_to_file(snakemake.log[0])
surrogate_step(snakemake.input.table, snakemake.params.models, snakemake.params.alphas, snakemake.output.table,
               snakemake.output.predictions)
