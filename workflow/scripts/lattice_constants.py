"""Rule lattice_constants: measure end-member lattice parameters with the potential."""

from dbkmc.stages.dataset import lattice_constants_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
lattice_constants_step(
    snakemake.wildcards.potential,
    snakemake.params.potential,
    snakemake.wildcards.species.split("-"),
    snakemake.wildcards.lattice,
    snakemake.params.ftol,
    snakemake.output[0],
)
