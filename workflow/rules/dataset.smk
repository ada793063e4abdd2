# Stage 1: random alloy supercells with a vacancy -> relaxed end states -> CI-NEB (LAMMPS).


wildcard_constraints:
    shard=r"\d+",


rule lattice_constants:
    """End-member lattice parameters measured with the potential (box relaxation), cached per potential."""
    output:
        f"{OUT}/potentials/{{potential}}/lattice_{{lattice}}_{{species}}.json",
    params:
        potential=lambda wc: config["potentials"][wc.potential],
        sha256=lambda wc: potential_hashes(wc.potential),
        ftol=config["lattice_constant"]["ftol"],
    log:
        f"{LOGS}/lattice_constants/{{potential}}_{{lattice}}_{{species}}.log",
    benchmark:
        f"{BENCH}/lattice_constants/{{potential}}_{{lattice}}_{{species}}.tsv"
    resources:
        runtime=10,
        mem_mb=1000,
        cpus_per_task=1,
    group:
        "prepare"  # with sample_events: one cluster job for the two short preparation steps
    conda:
        "../../envs/lammps.yaml"
    script:
        "../scripts/lattice_constants.py"


def lattice_constants_file(wc):
    ds = dataset_cfg(wc.dataset)
    species = "-".join(species_of(wc.dataset))
    return f"{OUT}/potentials/{ds['potential']}/lattice_{ds['lattice']}_{species}.json"


rule sample_events:
    """Random vacancy configurations and jumps; event i depends only on (seed, composition, i)."""
    input:
        lattice_constants=lattice_constants_file,
    output:
        f"{OUT}/datasets/{{dataset}}/events_sampled.jsonl",
    params:
        # extends only changes how the rows are collected, not which events are drawn
        dataset=lambda wc: {k: v for k, v in dataset_cfg(wc.dataset).items() if k != "extends"},
        potential=lambda wc: potential_cfg(wc.dataset),
    log:
        f"{LOGS}/sample_events/{{dataset}}.log",
    benchmark:
        f"{BENCH}/sample_events/{{dataset}}.tsv"
    resources:
        runtime=5,
        mem_mb=1000,
        cpus_per_task=1,
    group:
        "prepare"
    conda:
        "../../envs/lammps.yaml"
    script:
        "../scripts/sample_events.py"


rule neb:
    """Relax both end states and run climbing-image NEB for one shard of events."""
    input:
        events=f"{OUT}/datasets/{{dataset}}/events_sampled.jsonl",
    output:
        table=f"{OUT}/datasets/{{dataset}}/neb/shard_{{shard}}.parquet",
        structures=f"{OUT}/datasets/{{dataset}}/neb/shard_{{shard}}.extxyz",
    params:
        n_shards=config["neb"]["shards"],
        neb={k: v for k, v in config["neb"].items() if k != "shards"},
        qc=config["qc"],
        potential_name=lambda wc: potential_name(wc.dataset),
        potential=lambda wc: potential_cfg(wc.dataset),
        sha256=lambda wc: potential_hashes(potential_name(wc.dataset)),
    log:
        f"{LOGS}/neb/{{dataset}}_shard_{{shard}}.log",
    benchmark:
        f"{BENCH}/neb/{{dataset}}_shard_{{shard}}.tsv"
    threads: 1
    resources:
        runtime=240,
        mem_mb=2000,
        cpus_per_task=1,
        tasks=1,
    group:
        "neb"
    conda:
        "../../envs/lammps.yaml"
    script:
        "../scripts/neb.py"


rule collect_dataset:
    """Merge NEB shards: events.parquet (accepted), rejects with reasons, QC summary, provenance."""
    input:
        tables=lambda wc: expand(f"{OUT}/datasets/{wc.dataset}/neb/shard_{{k}}.parquet", k=range(config["neb"]["shards"])),
        structures=lambda wc: expand(f"{OUT}/datasets/{wc.dataset}/neb/shard_{{k}}.extxyz", k=range(config["neb"]["shards"])),
        lattice_constants=lattice_constants_file,
    output:
        **{f.split(".")[0]: f"{OUT}/datasets/{{dataset}}/{f}" for f in DATASET_FILES},
    wildcard_constraints:
        dataset=_alternation(generated_datasets()),
    params:
        dataset=lambda wc: dataset_cfg(wc.dataset),
        potential_name=lambda wc: potential_name(wc.dataset),
        potential=lambda wc: potential_cfg(wc.dataset),
        neb=config["neb"],
        qc=config["qc"],
    log:
        f"{LOGS}/collect_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCH}/collect_dataset/{{dataset}}.tsv"
    resources:
        runtime=10,
        mem_mb=4000,
        cpus_per_task=1,
    conda:
        "../../envs/lammps.yaml"
    script:
        "../scripts/collect_dataset.py"


rule import_dataset:
    """Use a dataset made elsewhere (config datasets.<name>.source) instead of running NEB."""
    input:
        events=lambda wc: f"{dataset_cfg(wc.dataset)['source']}/events.parquet",
    output:
        **{f.split(".")[0]: f"{OUT}/datasets/{{dataset}}/{f}" for f in DATASET_FILES},
    wildcard_constraints:
        dataset=_alternation(sourced_datasets()),
    params:
        source=lambda wc: dataset_cfg(wc.dataset)["source"],
    log:
        f"{LOGS}/import_dataset/{{dataset}}.log",
    benchmark:
        f"{BENCH}/import_dataset/{{dataset}}.tsv"
    resources:
        runtime=5,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/lammps.yaml"
    script:
        "../scripts/import_dataset.py"
