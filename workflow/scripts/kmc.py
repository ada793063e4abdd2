"""Rule kmc: residence-time kMC of one run (every temperature and replica in one batch)."""

import logging

import torch

from dbkmc.stages.kmc import kmc_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
log_stream = next(h.stream for h in logging.getLogger().handlers if isinstance(h, logging.FileHandler))
kmc_step(snakemake.wildcards.kmc_run, snakemake.params.run, snakemake.params.device, snakemake.params.progress,
         {k: snakemake.output[k] for k in ("timeseries", "final", "snapshots", "summary")},
         snakemake.params.work_dir, progress_file=log_stream)
