"""Rule train_nnk: one NNK barrier network on an all_paths dataset."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.nnk import train_step

log_to_file(snakemake.log[0])
train_step(snakemake.wildcards.nnk_set, snakemake.wildcards.arch, snakemake.input.events,
           snakemake.input.transfer[0] if snakemake.input.transfer else None,
           snakemake.params.set_cfg, snakemake.params.nnk, Path(snakemake.output.model).parent,
           threads=snakemake.threads)
