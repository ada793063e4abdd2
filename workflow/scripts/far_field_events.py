"""Rule far_field_events: the far-field cells of one transition, as the pseudo-dataset's events_sampled.jsonl."""

from dbkmc.detailed_balance.far_field import FAR_FIELD_DATASET
from dbkmc.stages.far_field import far_field_events_step
from dbkmc.core.logs import log_to_file

log_to_file(snakemake.log[0])
far_field_events_step(FAR_FIELD_DATASET, snakemake.params.dataset, snakemake.params.potential,
                      snakemake.params.far_field, snakemake.input.lattice_constants, snakemake.output[0])
