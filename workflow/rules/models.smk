# Stages 2-3: fingerprints and the detailed-balance model family (M_NC, M_SAS, M_HAS, M_KOL, M_EXT, KRA).

from dbkmc.detailed_balance.kinds import DE_KINDS, MODEL_KINDS
from dbkmc.stages.keys import TRAIN_KEYS

MODELS_CFG = config["models"]


def train_params(kind=None):
    """The training keys; with ``kind``, per_kind keeps that kind's entry only (another kind's settings rerun nothing)."""
    params = {k: MODELS_CFG[k] for k in TRAIN_KEYS}
    if kind is not None:
        params["per_kind"] = {k: v for k, v in params["per_kind"].items() if k == kind}
    return params


def model_events():
    return f"{dataset_dir(MODELS_CFG['dataset'])}/events.parquet"


def model_fingerprints():
    return f"{OUT}/fingerprints/{MODELS_CFG['dataset']}.pt"


def model_members(model):
    return [f"{OUT}/models/{model}/member_{k}.pt" for k in range(MODELS_CFG["n_members"])]


def model_targets():
    if MODELS_CFG["dataset"] is None:
        return []
    return [
        f"{OUT}/tables/table2.csv",
        f"{OUT}/tables/table2.md",
        f"{OUT}/tables/learning_curve.csv",
        f"{OUT}/figures/fig8_learning_curves.png",
        f"{OUT}/figures/fig8_parity_smallest.png",
        f"{OUT}/tables/sas_sweep.csv",
        f"{OUT}/figures/sas_sweep.png",
        *[f"{OUT}/models/{m}/metrics.json" for m in MODEL_KINDS],
    ]


wildcard_constraints:
    model="|".join(MODEL_KINDS),


rule fingerprints:
    """Kolmogorov (KOL_A, KOL_B) and transition-wise (TW_A, TW_B) AEVs on the ideal lattice."""
    input:
        events=f"{OUT}/datasets/{{dataset}}/events.parquet",
    output:
        f"{OUT}/fingerprints/{{dataset}}.pt",
    params:
        aev=config["fingerprints"],
    log:
        f"{LOGS}/fingerprints/{{dataset}}.log",
    benchmark:
        f"{BENCH}/fingerprints/{{dataset}}.tsv"
    resources:
        runtime=15,
        mem_mb=4000,
        cpus_per_task=1,
    group:
        "fingerprints"
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fingerprints.py"


rule sas_sweep:
    """M_SAS: sweep the antisymmetry penalty lambda, choose it on the validation set."""
    input:
        events=model_events(),
        fingerprints=model_fingerprints(),
    output:
        table=f"{OUT}/tables/sas_sweep.csv",
        figure=report(f"{OUT}/figures/sas_sweep.png", caption="../report/sas_sweep.rst", category="Models"),
        chosen=f"{OUT}/models/M_SAS_lambda.json",
    params:
        models=lambda wc: {**train_params("M_SAS"), "sas_lambdas": MODELS_CFG["sas_lambdas"]},
    log:
        f"{LOGS}/models/sas_sweep.log",
    benchmark:
        f"{BENCH}/models/sas_sweep.tsv"
    threads: 2
    resources:
        runtime=120,
        mem_mb=4000,
        cpus_per_task=2,
        gpu=gpu_resources(MODELS_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/sas_sweep.py"


rule train:
    """One voting ensemble of a model, trained in one batched (vmap) pass."""
    input:
        events=model_events(),
        fingerprints=model_fingerprints(),
        sas_lambda=lambda wc: f"{OUT}/models/M_SAS_lambda.json" if wc.model == "M_SAS" else [],
    output:
        members=[f"{OUT}/models/{{model}}/member_{k}.pt" for k in range(MODELS_CFG["n_members"])],
        record=f"{OUT}/models/{{model}}/training.json",
    params:
        models=lambda wc: train_params(wc.model),
    log:
        f"{LOGS}/models/train_{{model}}.log",
    benchmark:
        f"{BENCH}/models/train_{{model}}.tsv"
    threads: 2
    resources:
        runtime=60,
        mem_mb=4000,
        cpus_per_task=2,
        gpu=gpu_resources(MODELS_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train.py"


rule evaluate:
    """metrics.json (RMSE of dE, E_KRA, barriers; ddE) and per-event predictions of one ensemble."""
    input:
        events=model_events(),
        fingerprints=model_fingerprints(),
        members=lambda wc: model_members(wc.model),
        kra=model_members("KRA"),
    output:
        metrics=f"{OUT}/models/{{model}}/metrics.json",
        predictions=f"{OUT}/models/{{model}}/predictions.parquet",
    params:
        models=lambda wc: train_params(wc.model),
    log:
        f"{LOGS}/models/evaluate_{{model}}.log",
    benchmark:
        f"{BENCH}/models/evaluate_{{model}}.tsv"
    resources:
        runtime=15,
        mem_mb=4000,
        cpus_per_task=1,
        gpu=gpu_resources(MODELS_CFG["device"], pays=False),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/evaluate.py"


def curve_fractions():
    """models.learning_curve_fractions below 1, as wildcard strings (the 100 % point is the model stage's ensemble)."""
    return [f"{f:g}" for f in MODELS_CFG["learning_curve_fractions"] if f < 1]


def curve_point(model, fraction, name):
    return f"{OUT}/models/learning_curve/{model}/{fraction}/{name}"


def curve_full_models():
    """The dE models whose 100 % point the curve reads from rules train/evaluate."""
    return list(DE_KINDS) if 1.0 in MODELS_CFG["learning_curve_fractions"] else []


def curve_parity_predictions():
    """Fig 8a, b: the test predictions of each dE model at the smallest fraction."""
    fractions = curve_fractions()
    if fractions:
        smallest = min(fractions, key=float)
        return [curve_point(m, smallest, "predictions.parquet") for m in DE_KINDS]
    return [f"{OUT}/models/{m}/predictions.parquet" for m in curve_full_models()]


rule learning_curve_point:
    """One point of Fig 8: a dE model trained on a nested stratified fraction of the training set."""
    input:
        events=model_events(),
        fingerprints=model_fingerprints(),
        sas_lambda=f"{OUT}/models/M_SAS_lambda.json",
    output:
        point=curve_point("{model}", "{fraction}", "point.json"),
        predictions=curve_point("{model}", "{fraction}", "predictions.parquet"),
    params:
        models=lambda wc: train_params(wc.model),
    log:
        f"{LOGS}/models/learning_curve/{{model}}_{{fraction}}.log",
    benchmark:
        f"{BENCH}/models/learning_curve/{{model}}_{{fraction}}.tsv"
    threads: 1
    resources:
        runtime=240,
        mem_mb=4000,
        cpus_per_task=1,
        gpu=gpu_resources(MODELS_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/learning_curve_point.py"


rule learning_curve:
    """Fig 8: test RMSE and ddE against training-set size for the dE models (8c, d), parity at the smallest size (8a, b)."""
    input:
        points=[curve_point(m, f, "point.json") for m in DE_KINDS for f in curve_fractions()],
        full_metrics=[f"{OUT}/models/{m}/metrics.json" for m in curve_full_models()],
        full_training=[f"{OUT}/models/{m}/training.json" for m in curve_full_models()],
        parity=curve_parity_predictions(),
    output:
        table=f"{OUT}/tables/learning_curve.csv",
        figure=report(f"{OUT}/figures/fig8_learning_curves.png", caption="../report/learning_curve.rst", category="Models"),
        parity=report(f"{OUT}/figures/fig8_parity_smallest.png", caption="../report/learning_curve.rst", category="Models"),
    params:
        full_models=curve_full_models(),
    log:
        f"{LOGS}/models/learning_curve.log",
    benchmark:
        f"{BENCH}/models/learning_curve.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/learning_curve.py"


rule model_report:
    """Table 2 (CSV and Markdown) and the parity / forward-reverse figures (Figs 3-7)."""
    input:
        metrics=[f"{OUT}/models/{m}/metrics.json" for m in MODEL_KINDS],
        predictions=[f"{OUT}/models/{m}/predictions.parquet" for m in MODEL_KINDS],
    output:
        table_csv=f"{OUT}/tables/table2.csv",
        table_md=f"{OUT}/tables/table2.md",
        figures=report(directory(f"{OUT}/figures/models"), patterns=["{name}.png"],
                       caption="../report/models.rst", category="Models"),
    params:
        models=list(MODEL_KINDS),
    log:
        f"{LOGS}/models/report.log",
    benchmark:
        f"{BENCH}/models/report.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"  # its script imports dbkmc.stages.models, which imports torch
    script:
        "../scripts/model_report.py"
