"""Rule prefactor_markov: the exact Markov chain with M_EXT + KRA barriers and vibrational prefactors."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.prefactors import markov_step

log_to_file(snakemake.log[0])
p = snakemake.params
markov_step(p.ext_dir, p.kra_dir, p.model_dirs, snakemake.input.events, snakemake.input.dataset, p.markov, p.seed,
            p.device, snakemake.output.table, snakemake.output.markdown)
