"""Rule train_nnk_db: M_EXT + KRA on an NNK set (exact detailed balance), reported as NNK architecture ``db``."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.nnk_db import train_db_step

log_to_file(snakemake.log[0])
inp = snakemake.input
train_db_step(snakemake.wildcards.nnk_set, inp.events[0], inp.fingerprints[0],
              inp.transfer_events[0] if inp.transfer_events else None,
              inp.transfer_fingerprints[0] if inp.transfer_fingerprints else None,
              snakemake.params.set_cfg, snakemake.params.nnk, snakemake.params.models,
              Path(snakemake.output.metrics).parent)
