"""Rule equilibrium_check: swap MC vs kMC vs LAMMPS swap MC, and M_EXT far from training."""

from dbkmc.core.logs import log_to_file
from dbkmc.stages.equilibrium import equilibrium_check_step

log_to_file(snakemake.log[0])
equilibrium_check_step(snakemake.params.cfg, snakemake.params.potential_cfg, snakemake.params.potential,
                       snakemake.params.run, snakemake.output.table, snakemake.output.markdown,
                       snakemake.output.far, snakemake.output.figure)
