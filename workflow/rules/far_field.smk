# Far-field noise floor (Fig 11): one transition whose far field is redrawn N times per r_cut.
# The cells go through the dataset stage's own `neb` (sharded, neb.shards) and `collect_dataset`
# rules as the pseudo-dataset "far-field" (results/<run>/datasets/far-field/), which common.smk's
# all_datasets() adds to the configured datasets.

from types import SimpleNamespace

from dbkmc.detailed_balance.kinds import MODEL_KINDS

FF_CFG = config["far_field"]
FF_DIR = f"{OUT}/datasets/{FAR_FIELD_DATASET}"


def far_field_targets():
    if not FF_CFG["enabled"]:
        return []
    return [f"{OUT}/tables/far_field.csv", f"{OUT}/figures/fig11_far_field.png"]


def far_field_metrics():
    """Model name -> metrics.json of the model stage (test RMSEs on Fig 11); empty without a model stage."""
    if config["models"]["dataset"] is None:
        return {}
    return {m: f"{OUT}/models/{m}/metrics.json" for m in MODEL_KINDS}


def far_field_prefactors():
    """The prefactor table and its rejects when rule hessians runs on the far-field cells; else none."""
    h = config["hessians"]
    if not (h["enabled"] and h["dataset"] == FAR_FIELD_DATASET):
        return []
    return [f"{FF_DIR}/hessians/prefactors.parquet", f"{FF_DIR}/hessians/rejects.parquet"]


# The far-field cells replace the random sampling of the pseudo-dataset.
ruleorder: far_field_events > sample_events


rule far_field_events:
    """Far-field cells of one transition (species within r_cut of either vacancy site frozen), as events_sampled.jsonl."""
    input:
        lattice_constants=lambda wc: lattice_constants_file(SimpleNamespace(dataset=FAR_FIELD_DATASET)),
    output:
        f"{FF_DIR}/events_sampled.jsonl",
    params:
        dataset=lambda wc: dataset_cfg(FAR_FIELD_DATASET),
        potential=lambda wc: potential_cfg(FAR_FIELD_DATASET),
        far_field=FF_CFG,
    log:
        f"{LOGS}/far_field/events.log",
    benchmark:
        f"{BENCH}/far_field/events.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/far_field_events.py"


rule far_field:
    """Fig 11: spread (std) of NEB dE and E_KRA against r_cut, with the model stage's test RMSEs."""
    input:
        sampled=f"{FF_DIR}/events_sampled.jsonl",
        events=f"{FF_DIR}/events.parquet",
        rejects=f"{FF_DIR}/rejects.parquet",
        metrics=lambda wc: list(far_field_metrics().values()),
        prefactors=far_field_prefactors(),
    output:
        table=f"{OUT}/tables/far_field.csv",
        figure=report(f"{OUT}/figures/fig11_far_field.png", caption="../report/far_field.rst",
                      category="Detailed balance"),
    params:
        models=lambda wc: list(far_field_metrics()),
        model_r_cut=config["fingerprints"]["r_cut"],
    log:
        f"{LOGS}/far_field/far_field.log",
    benchmark:
        f"{BENCH}/far_field/far_field.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/far_field.py"
