# Vibrational prefactors (harmonic TST): the detailed-balance prefactor model (PRE_S: M_EXT on dS,
# PRE_KRA: KRA on S_KRA), the direct model PRE_DIRECT (M_NC on ln nu), the seed's ridge surrogate,
# the Markov check with prefactors, tables and figures. Input: the prefactor table of rule hessians.
# Switched on by prefactors.enabled (needs hessians.enabled; the Markov check needs M_EXT and KRA
# ensembles: this run's (models.dataset) or the folders prefactors.markov.energy / kra).

from dbkmc.stages.keys import TRAIN_CONFIG_KEYS

PRE_CFG = config["prefactors"]
PRE_MODELS = ("PRE_S", "PRE_KRA", "PRE_DIRECT")
PRE_KIND = {"PRE_S": "M_EXT", "PRE_KRA": "KRA", "PRE_DIRECT": "M_NC"}
PRE_DIR = f"{OUT}/prefactors"


def prefactor_train_params():
    """The training settings of the prefactor models, as a models block: prefactors.* training keys, the
    model stage's split, seed and device (the same split as the dE models); no whole-cell energy term
    (E_A is not a vibrational quantity)."""
    params = {k: PRE_CFG[k] if k in PRE_CFG else MODELS_CFG[k] for k in TRAIN_CONFIG_KEYS}
    params.update(split=PRE_CFG["split"] or MODELS_CFG["split"], seed=MODELS_CFG["seed"], device=MODELS_CFG["device"])
    if "energy_weight" in params:
        params["energy_weight"] = 0.0
    params["per_kind"] = {k: {kk: vv for kk, vv in v.items() if kk != "energy_weight"}
                          for k, v in params["per_kind"].items()}
    return params


def prefactor_table():
    return f"{hessians_dir(hessians_dataset())}/prefactors.parquet"


def prefactor_members(name):
    return [f"{OUT}/models/prefactors/{name}/member_{k}.pt" for k in range(PRE_CFG["n_members"])]


def prefactor_targets():
    if not (PRE_CFG["enabled"] and config["hessians"]["enabled"]):
        return []
    out = [
        *[f"{OUT}/models/prefactors/{m}/metrics.json" for m in PRE_MODELS],
        f"{OUT}/tables/prefactors_metrics.csv",
        f"{OUT}/tables/prefactors_metrics.md",
        f"{OUT}/tables/prefactors_surrogate.csv",
        f"{OUT}/tables/prefactors_meyer_neldel.csv",
        *[f"{OUT}/figures/prefactors_{f}.png" for f in ("compensation", "parity", "ln_nu_hist", "forward_reverse")],
    ]
    if MODELS_CFG["dataset"] is not None or (PRE_CFG["markov"]["energy"] and PRE_CFG["markov"]["kra"]):
        out += [f"{OUT}/tables/prefactors_markov.csv", f"{OUT}/tables/prefactors_markov.md"]
    return out


def markov_folder(key):
    """prefactors.markov.<key> with {run} = this run's name, or None."""
    folder = PRE_CFG["markov"][key]
    return folder.format(run=RUN) if folder else None


def markov_energy_dirs():
    """The M_EXT and KRA folders of the Markov check's barriers: prefactors.markov.energy / kra, else this run's."""
    return {"M_EXT": markov_folder("energy") or f"{OUT}/models/M_EXT", "KRA": markov_folder("kra") or f"{OUT}/models/KRA"}


def markov_energy_inputs():
    """This run's member files (the rules train them), or an outside folder's training.json."""
    energy, kra = markov_folder("energy"), markov_folder("kra")
    return [*([f"{energy}/training.json"] if energy else model_members("M_EXT")),
            *([f"{kra}/training.json"] if kra else model_members("KRA"))]


wildcard_constraints:
    pre="|".join(PRE_MODELS),


rule prefactor_events:
    """The prefactor table as a model events table: dE := dS, E_KRA := S_KRA, barriers := -ln nu."""
    input:
        table=prefactor_table(),
        dataset=lambda wc: f"{dataset_dir(hessians_dataset())}/dataset.json",
    output:
        events=f"{PRE_DIR}/events.parquet",
        dataset=f"{PRE_DIR}/dataset.json",
    log:
        f"{LOGS}/prefactors/events.log",
    benchmark:
        f"{BENCH}/prefactors/events.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"  # its script imports dbkmc.stages.prefactors, which imports torch
    script:
        "../scripts/prefactor_events.py"


rule prefactor_fingerprints:
    """KOL, TW and EXT fingerprints of the prefactor events (the model stage's fingerprints step)."""
    input:
        events=f"{PRE_DIR}/events.parquet",
        dataset=f"{PRE_DIR}/dataset.json",
    output:
        f"{PRE_DIR}/fingerprints.pt",
    params:
        aev=config["fingerprints"],
    log:
        f"{LOGS}/prefactors/fingerprints.log",
    benchmark:
        f"{BENCH}/prefactors/fingerprints.tsv"
    resources:
        runtime=15,
        mem_mb=4000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/fingerprints.py"


rule train_prefactor:
    """One prefactor ensemble: PRE_S (M_EXT on dS), PRE_KRA (KRA on S_KRA) or PRE_DIRECT (M_NC on ln nu)."""
    input:
        events=f"{PRE_DIR}/events.parquet",
        fingerprints=f"{PRE_DIR}/fingerprints.pt",
    output:
        members=[f"{OUT}/models/prefactors/{{pre}}/member_{k}.pt" for k in range(PRE_CFG["n_members"])],
        record=f"{OUT}/models/prefactors/{{pre}}/training.json",
    params:
        models=lambda wc: prefactor_train_params(),
        kind=lambda wc: PRE_KIND[wc.pre],
    log:
        f"{LOGS}/prefactors/train_{{pre}}.log",
    benchmark:
        f"{BENCH}/prefactors/train_{{pre}}.tsv"
    threads: 2
    resources:
        runtime=60,
        mem_mb=4000,
        cpus_per_task=2,
        gpu=gpu_resources(MODELS_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/train_prefactor.py"


rule evaluate_prefactors:
    """metrics.json of PRE_S (+PRE_KRA: the barrier RMSEs are those of -ln nu), PRE_KRA and PRE_DIRECT; ln nu predictions."""
    input:
        events=f"{PRE_DIR}/events.parquet",
        fingerprints=f"{PRE_DIR}/fingerprints.pt",
        members=[f for m in PRE_MODELS for f in prefactor_members(m)],
    output:
        **{m: f"{OUT}/models/prefactors/{m}/metrics.json" for m in PRE_MODELS},
        predictions=f"{PRE_DIR}/predictions.parquet",
    params:
        models=lambda wc: prefactor_train_params(),
        model_dirs={m: f"{OUT}/models/prefactors/{m}" for m in PRE_MODELS},
    log:
        f"{LOGS}/prefactors/evaluate.log",
    benchmark:
        f"{BENCH}/prefactors/evaluate.tsv"
    resources:
        runtime=15,
        mem_mb=4000,
        cpus_per_task=1,
        gpu=gpu_resources(MODELS_CFG["device"], pays=False),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/evaluate_prefactors.py"


rule prefactor_surrogate:
    """The seed's linear surrogate: ridge of ln nu_AB on D_min ⊕ D_saddle (sna and aev sums), alpha on validation."""
    input:
        table=prefactor_table(),
    output:
        table=f"{OUT}/tables/prefactors_surrogate.csv",
        predictions=f"{PRE_DIR}/surrogate_predictions.parquet",
    params:
        models=lambda wc: prefactor_train_params(),
        alphas=PRE_CFG["ridge_alphas"],
    log:
        f"{LOGS}/prefactors/surrogate.log",
    benchmark:
        f"{BENCH}/prefactors/surrogate.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"  # its script imports dbkmc.stages.prefactors, which imports torch
    script:
        "../scripts/prefactor_surrogate.py"


rule prefactor_markov:
    """Exact Markov chain with M_EXT + KRA barriers and prefactors: detailed balance with PRE_S + PRE_KRA, not with PRE_DIRECT."""
    input:
        events=f"{PRE_DIR}/events.parquet",
        dataset=f"{PRE_DIR}/dataset.json",
        members=[f for m in PRE_MODELS for f in prefactor_members(m)],
        energy=markov_energy_inputs(),
    output:
        table=f"{OUT}/tables/prefactors_markov.csv",
        markdown=f"{OUT}/tables/prefactors_markov.md",
    params:
        ext_dir=markov_energy_dirs()["M_EXT"],
        kra_dir=markov_energy_dirs()["KRA"],
        model_dirs={m: f"{OUT}/models/prefactors/{m}" for m in PRE_MODELS},
        markov={k: v for k, v in PRE_CFG["markov"].items() if k not in ("energy", "kra")},
        seed=MODELS_CFG["seed"],
        device=MODELS_CFG["device"],
    log:
        f"{LOGS}/prefactors/markov.log",
    benchmark:
        f"{BENCH}/prefactors/markov.tsv"
    resources:
        runtime=30,
        mem_mb=4000,
        cpus_per_task=1,
        gpu=gpu_resources(MODELS_CFG["device"], pays=False),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/prefactor_markov.py"


rule prefactor_report:
    """Tables of ln nu metrics (RMSE/std, R²) and the Meyer-Neldel fit; compensation, parity, histogram figures."""
    input:
        table=prefactor_table(),
        predictions=f"{PRE_DIR}/predictions.parquet",
        surrogate=f"{PRE_DIR}/surrogate_predictions.parquet",
    output:
        metrics_csv=f"{OUT}/tables/prefactors_metrics.csv",
        metrics_md=f"{OUT}/tables/prefactors_metrics.md",
        meyer_neldel=f"{OUT}/tables/prefactors_meyer_neldel.csv",
        figures=[f"{OUT}/figures/prefactors_{f}.png" for f in ("compensation", "parity", "ln_nu_hist", "forward_reverse")],
    log:
        f"{LOGS}/prefactors/report.log",
    benchmark:
        f"{BENCH}/prefactors/report.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"  # its script imports dbkmc.stages.prefactors, which imports torch
    script:
        "../scripts/prefactor_report.py"
