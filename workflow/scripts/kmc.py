"""Rule kmc: residence-time kMC of one run (every temperature and replica in one batch)."""

import torch

from dbkmc.logs import log_to_file
from dbkmc.kmc_stage import kmc_step

log_to_file(snakemake.log[0])
torch.set_num_threads(snakemake.threads)
kmc_step(snakemake.wildcards.kmc_run, snakemake.params.run, snakemake.params.device, snakemake.params.progress,
         {k: snakemake.output[k] for k in ("timeseries", "final", "snapshots", "summary")},
         snakemake.params.work_dir)
