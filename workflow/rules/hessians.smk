# Vibrational prefactors (harmonic TST): local Hessians of A, B and the saddle of a dataset's events (LAMMPS).


def hessians_dataset():
    """The dataset of the hessians rule: hessians.dataset, else models.dataset."""
    h = config["hessians"]
    return h["dataset"] if h["dataset"] is not None else config["models"]["dataset"]


def hessians_dir(dataset):
    return f"{dataset_dir(dataset)}/hessians"


HESSIANS_FILES = ("prefactors.parquet", "rejects.parquet", "qc_summary.json", "local_vs_full.csv")


def hessians_targets():
    if not config["hessians"]["enabled"]:
        return []
    return [f"{hessians_dir(hessians_dataset())}/{f}" for f in HESSIANS_FILES]


rule hessians:
    """Rerun one shard of the selected events (relax + CI-NEB) and compute the Vineyard prefactors."""
    input:
        events=f"{OUT}/datasets/{{dataset}}/events.parquet",
        meta=f"{OUT}/datasets/{{dataset}}/dataset.json",
    output:
        table=f"{OUT}/datasets/{{dataset}}/hessians/shard_{{shard}}.parquet",
    params:
        hessians=config["hessians"],
        neb=config["neb"],
        qc=config["qc"],
        potential_name=lambda wc: potential_name(wc.dataset),
        potential=lambda wc: potential_cfg(wc.dataset),
        sha256=lambda wc: potential_hashes(potential_name(wc.dataset)),
    log:
        f"{LOGS}/hessians/{{dataset}}_shard_{{shard}}.log",
    benchmark:
        f"{BENCH}/hessians/{{dataset}}_shard_{{shard}}.tsv"
    threads: 1
    resources:
        runtime=240,
        mem_mb=2000,
        cpus_per_task=1,
        tasks=1,
    conda:
        "../../envs/equilibrium.yaml"  # LAMMPS and torch (the AEV sums)
    script:
        "../scripts/hessians_shard.py"


rule collect_hessians:
    """Merge the hessians shards: prefactors.parquet, rejects with the failed check, QC summary, local vs full."""
    input:
        tables=lambda wc: expand(f"{OUT}/datasets/{wc.dataset}/hessians/shard_{{k}}.parquet",
                                 k=range(config["hessians"]["n_shards"])),
    output:
        **{f.split(".")[0]: f"{OUT}/datasets/{{dataset}}/hessians/{f}" for f in HESSIANS_FILES},
    params:
        hessians=config["hessians"],
    log:
        f"{LOGS}/collect_hessians/{{dataset}}.log",
    benchmark:
        f"{BENCH}/collect_hessians/{{dataset}}.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/equilibrium.yaml"  # LAMMPS and torch (the AEV sums)
    script:
        "../scripts/hessians_collect.py"
