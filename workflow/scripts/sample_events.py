"""Rule sample_events: deterministic vacancy-jump events of one dataset."""

from dbkmc.stages.dataset import sample_events_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
sample_events_step(
    snakemake.wildcards.dataset,
    snakemake.params.dataset,
    snakemake.params.potential,
    snakemake.input.lattice_constants,
    snakemake.output[0],
)
