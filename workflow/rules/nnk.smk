# Neural network kinetics (NNK): per-path voxel images of all_paths NEB datasets -> barrier
# networks (MLP, CNN); the published Nb-Mo-Ta network over a composition triangle.

from dbkmc.stages.keys import NNK_TRAIN_KEYS

NNK_CFG = config["nnk"]
NNK_SETS = NNK_CFG["sets"]
NNK_ARCHS = NNK_CFG["architectures"]


def nnk_params():
    return {k: NNK_CFG[k] for k in NNK_TRAIN_KEYS}


def nnk_transfer_events(wc):
    ds = NNK_SETS[wc.nnk_set]["transfer_dataset"]
    return [f"{dataset_dir(ds)}/events.parquet"] if ds else []


def nnk_targets():
    targets = []
    if NNK_SETS:
        targets += [f"{OUT}/tables/nnk_metrics.csv", f"{OUT}/tables/nnk_metrics.md"]
        targets += [f"{OUT}/figures/nnk/spectrum_{s}.png" for s in NNK_SETS]
    if NNK_CFG["published"]["weights"]:
        targets += [f"{OUT}/tables/nnk_ternary.csv", f"{OUT}/figures/nnk/ternary_published.png"]
    return targets


wildcard_constraints:
    nnk_set=_alternation(list(NNK_SETS)),
    arch="mlp|cnn",


rule train_nnk:
    """One NNK barrier network (MLP or CNN) on an all_paths dataset; predictions on every split and the larger cell."""
    input:
        events=lambda wc: f"{dataset_dir(NNK_SETS[wc.nnk_set]['dataset'])}/events.parquet",
        transfer=nnk_transfer_events,
    output:
        model=f"{OUT}/nnk/{{nnk_set}}/{{arch}}/model.pt",
        record=f"{OUT}/nnk/{{nnk_set}}/{{arch}}/training.json",
        metrics=f"{OUT}/nnk/{{nnk_set}}/{{arch}}/metrics.json",
        predictions=f"{OUT}/nnk/{{nnk_set}}/{{arch}}/predictions.parquet",
    params:
        nnk=lambda wc: nnk_params(),
        set_cfg=lambda wc: NNK_SETS[wc.nnk_set],
    log:
        f"{LOGS}/nnk/train_{{nnk_set}}_{{arch}}.log",
    benchmark:
        f"{BENCH}/nnk/train_{{nnk_set}}_{{arch}}.tsv"
    threads: 2
    resources:
        runtime=240,
        mem_mb=4000,
        cpus_per_task=2,
        gpu=gpu_resources(NNK_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_nnk.py"


def nnk_set_files(wc, name, transfer=False):
    """``events.parquet`` or the fingerprints of the set's dataset (or of its transfer dataset; [] if none)."""
    ds = NNK_SETS[wc.nnk_set]["transfer_dataset" if transfer else "dataset"]
    if not ds:
        return []
    return [f"{dataset_dir(ds)}/events.parquet" if name == "events" else f"{OUT}/fingerprints/{ds}.pt"]


rule train_nnk_db:
    """DB-NNK: M_EXT (dE) + KRA (E_KRA) on an NNK set, its split and held-out compositions; E_b = E_KRA + dE/2."""
    input:
        events=lambda wc: nnk_set_files(wc, "events"),
        fingerprints=lambda wc: nnk_set_files(wc, "fingerprints"),
        transfer_events=lambda wc: nnk_set_files(wc, "events", transfer=True),
        transfer_fingerprints=lambda wc: nnk_set_files(wc, "fingerprints", transfer=True),
    output:
        metrics=f"{OUT}/nnk/{{nnk_set}}/db/metrics.json",
        predictions=f"{OUT}/nnk/{{nnk_set}}/db/predictions.parquet",
        record=f"{OUT}/nnk/{{nnk_set}}/db/training.json",
        members=[f"{OUT}/nnk/{{nnk_set}}/db/{m}/member_{k}.pt" for m in ("M_EXT", "KRA")
                 for k in range(MODELS_CFG["n_members"])],
    params:
        nnk=lambda wc: nnk_params(),
        set_cfg=lambda wc: NNK_SETS[wc.nnk_set],
        models=lambda wc: train_params(),
    log:
        f"{LOGS}/nnk/train_{{nnk_set}}_db.log",
    benchmark:
        f"{BENCH}/nnk/train_{{nnk_set}}_db.tsv"
    threads: 2
    resources:
        runtime=240,
        mem_mb=4000,
        cpus_per_task=2,
        gpu=gpu_resources(MODELS_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_nnk_db.py"


rule nnk_report:
    """NNK metrics table (MAE in eV and % of the mean barrier, size transfer) and barrier-spectrum figures."""
    input:
        metrics=[f"{OUT}/nnk/{s}/{a}/metrics.json" for s in NNK_SETS for a in NNK_ARCHS],
        predictions=[f"{OUT}/nnk/{s}/{a}/predictions.parquet" for s in NNK_SETS for a in NNK_ARCHS],
    output:
        table=f"{OUT}/tables/nnk_metrics.csv",
        markdown=f"{OUT}/tables/nnk_metrics.md",
        spectra=[
            report(f"{OUT}/figures/nnk/spectrum_{s}.png", caption="../report/nnk_spectrum.rst", category="NNK")
            for s in NNK_SETS
        ],
        parity=[
            report(f"{OUT}/figures/nnk/parity_{s}.png", caption="../report/nnk_parity.rst", category="NNK")
            for s in NNK_SETS
        ],
    params:
        sets=NNK_SETS,
    log:
        f"{LOGS}/nnk/report.log",
    benchmark:
        f"{BENCH}/nnk/report.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/nnk_report.py"


rule nnk_ternary:
    """Mean barrier of random bcc configurations over a composition triangle, published NNK network (Fig 2c-style)."""
    input:
        weights=NNK_CFG["published"]["weights"] or [],
    output:
        table=f"{OUT}/tables/nnk_ternary.csv",
        figure=report(
            f"{OUT}/figures/nnk/ternary_published.png", caption="../report/nnk_ternary.rst", category="NNK"
        ),
    params:
        published=NNK_CFG["published"],
    log:
        f"{LOGS}/nnk/ternary.log",
    benchmark:
        f"{BENCH}/nnk/ternary.tsv"
    threads: 2
    resources:
        runtime=30,
        mem_mb=4000,
        cpus_per_task=2,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/nnk_ternary.py"
