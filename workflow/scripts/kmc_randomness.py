"""Rule kmc_randomness: jump randomness R per site of each final configuration, Var(R) against T."""

import torch

from dbkmc.core.logs import log_to_file
from dbkmc.stages.kmc import randomness_rule_step

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
randomness_rule_step(snakemake.wildcards.kmc_run, snakemake.params.run, snakemake.params.device,
                     snakemake.input.final, snakemake.output.per_site, snakemake.output.per_t,
                     snakemake.output.summary)
