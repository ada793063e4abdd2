"""Rule nnk_ternary: mean barrier over a composition triangle with the published NNK network."""

import torch

from dbkmc.core.logs import log_to_file
from dbkmc.stages.nnk import ternary_step

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
ternary_step(snakemake.input.weights, snakemake.params.published, snakemake.output.table,
             snakemake.output.figure)
