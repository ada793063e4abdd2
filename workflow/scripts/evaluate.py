"""Rule evaluate: metrics.json and per-event predictions of one ensemble."""

from pathlib import Path

from dbkmc.core.logs import log_to_file
from dbkmc.stages.models import evaluate_step

log_to_file(snakemake.log[0])
inp = snakemake.input
evaluate_step(snakemake.wildcards.model, inp.events, inp.fingerprints, Path(inp.members[0]).parent,
              Path(inp.kra[0]).parent, snakemake.params.models, snakemake.output.metrics,
              snakemake.output.predictions)
