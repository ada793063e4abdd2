# kMC stage: residence-time kMC runs (dbkmc.kmc.engine) and their analyses (dbkmc.kmc.analysis).
# One run = config kmc.runs.<name>: every (temperature, replica) trajectory in one batch.

from dbkmc.core.config_kmc import ENSEMBLE_MODELS, PREFACTOR_DIR, PREFACTOR_MODELS, is_run_model_dir, nnk_db_set_of

KMC_CFG = config["kmc"]
KMC_RUNS = KMC_CFG["runs"]


def kmc_dir(run):
    return f"{OUT}/kmc/{run}"


def kmc_run_inputs(wc):
    """Files a run reads: its structure dump and its rate model's files."""
    run = KMC_RUNS[wc.kmc_run]
    files = {}
    if run["structure"].get("dump"):
        files["structure"] = run["structure"]["dump"]
    spec = run["rate_model"]
    if spec.get("weights"):
        files["weights"] = spec["weights"]
    if spec.get("checkpoint"):  # nnk_trained: may be an output of rule train_nnk
        files["checkpoint"] = spec["checkpoint"]
    for key, model in ENSEMBLE_MODELS.items():  # detailed balance: this run's model-stage ensembles
        if spec.get(key) and is_run_model_dir(spec[key], RUN, model):  # (ensembles of other runs: no rule)
            files[key] = [f"{OUT}/models/{model}/member_{k}.pt" for k in range(MODELS_CFG["n_members"])]
        elif spec.get(key) and nnk_db_set_of(spec[key], RUN, model):  # this run's DB-NNK: rule train_nnk_db
            files[key] = [f"{spec[key]}/member_{k}.pt" for k in range(MODELS_CFG["n_members"])]
    if spec.get("prefactor") and is_run_model_dir(spec["prefactor"], RUN, PREFACTOR_DIR):  # this run's prefactors
        files["prefactor"] = [f"{OUT}/models/{PREFACTOR_DIR}/{model}/member_{k}.pt" for model in PREFACTOR_MODELS
                              for k in range(config["prefactors"]["n_members"])]  # rule train_prefactor
    return files


def kmc_analysis(run):
    return KMC_RUNS[run]["analysis"]


def kmc_targets():
    targets = []
    for run, cfg in KMC_RUNS.items():
        targets += [f"{kmc_dir(run)}/timeseries.parquet", f"{kmc_dir(run)}/summary.json"]
        an = cfg["analysis"]
        if an["order_pair"]:
            targets += [f"{OUT}/figures/kmc/{run}_fig3a_delta_vs_T.png", f"{kmc_dir(run)}/order_summary.json"]
        if an["randomness"]:
            targets += [f"{OUT}/figures/kmc/{run}_fig4b_R_distributions.png", f"{kmc_dir(run)}/randomness_summary.json"]
        if an["b2"]:
            targets += [f"{OUT}/figures/kmc/{run}_fig5_b2_clusters.png"]
    return targets


wildcard_constraints:
    kmc_run="|".join(KMC_RUNS) if KMC_RUNS else "(?!x)x",


rule kmc:
    """Residence-time (BKL) kMC of one run: all temperatures and replicas advance together.

    Writes the time series (jumps, simulated time, delta_ij, alpha_ij, energy where the
    rate model defines one), the final configurations and LAMMPS-dump snapshots. Killed
    jobs resume from the checkpoint in kmc/<run>/work/ when rerun with the same config.
    """
    input:
        unpack(kmc_run_inputs),
    output:
        timeseries=f"{OUT}/kmc/{{kmc_run}}/timeseries.parquet",
        final=f"{OUT}/kmc/{{kmc_run}}/final.npz",
        snapshots=directory(f"{OUT}/kmc/{{kmc_run}}/snapshots"),
        summary=f"{OUT}/kmc/{{kmc_run}}/summary.json",
    params:
        run=lambda wc: KMC_RUNS[wc.kmc_run],
        device=KMC_CFG["device"],
        progress=KMC_CFG["progress"],
        work_dir=lambda wc: f"{kmc_dir(wc.kmc_run)}/work",
    log:
        f"{LOGS}/kmc/{{kmc_run}}.log",
    benchmark:
        f"{BENCH}/kmc/{{kmc_run}}.tsv"
    threads: lambda wc: KMC_RUNS[wc.kmc_run]["threads"]
    resources:
        runtime=lambda wc: KMC_RUNS[wc.kmc_run]["runtime"],
        mem_mb=lambda wc: KMC_RUNS[wc.kmc_run]["mem_mb"],
        cpus_per_task=lambda wc: KMC_RUNS[wc.kmc_run]["threads"],
        gpu=gpu_resources(KMC_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/kmc.py"


rule kmc_order:
    """Figs 3a, 3b (NNK paper): delta_ij against T at the end of each run, delta_<pair> against jumps."""
    input:
        timeseries=f"{OUT}/kmc/{{kmc_run}}/timeseries.parquet",
    output:
        table=f"{OUT}/tables/kmc_{{kmc_run}}_order.csv",
        summary=f"{OUT}/kmc/{{kmc_run}}/order_summary.json",
        fig3a=report(f"{OUT}/figures/kmc/{{kmc_run}}_fig3a_delta_vs_T.png", caption="../report/kmc_fig3a.rst",
                     category="kMC"),
        fig3b=report(f"{OUT}/figures/kmc/{{kmc_run}}_fig3b_delta_vs_jumps.png", caption="../report/kmc_fig3b.rst",
                     category="kMC"),
    params:
        analysis=lambda wc: kmc_analysis(wc.kmc_run),
    log:
        f"{LOGS}/kmc/{{kmc_run}}_order.log",
    benchmark:
        f"{BENCH}/kmc/{{kmc_run}}_order.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/kmc_order.py"


rule kmc_randomness:
    """Jump randomness R of every site of each final configuration (barriers from the run's model)."""
    input:
        unpack(kmc_run_inputs),
        final=f"{OUT}/kmc/{{kmc_run}}/final.npz",
    output:
        per_site=f"{OUT}/kmc/{{kmc_run}}/randomness_sites.parquet",
        per_t=f"{OUT}/tables/kmc_{{kmc_run}}_var_R.csv",
        summary=f"{OUT}/kmc/{{kmc_run}}/randomness_summary.json",
    params:
        run=lambda wc: KMC_RUNS[wc.kmc_run],
        device=KMC_CFG["device"],
    log:
        f"{LOGS}/kmc/{{kmc_run}}_randomness.log",
    benchmark:
        f"{BENCH}/kmc/{{kmc_run}}_randomness.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
        cpus_per_task=1,
        gpu=gpu_resources(KMC_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/kmc_randomness.py"


rule kmc_randomness_figures:
    """Figs 4b, 4c (NNK paper): R distributions at chosen temperatures, Var(R) against T."""
    input:
        per_site=f"{OUT}/kmc/{{kmc_run}}/randomness_sites.parquet",
        per_t=f"{OUT}/tables/kmc_{{kmc_run}}_var_R.csv",
        summary=f"{OUT}/kmc/{{kmc_run}}/randomness_summary.json",
    output:
        fig4b=report(f"{OUT}/figures/kmc/{{kmc_run}}_fig4b_R_distributions.png", caption="../report/kmc_fig4b.rst",
                     category="kMC"),
        fig4c=report(f"{OUT}/figures/kmc/{{kmc_run}}_fig4c_var_R.png", caption="../report/kmc_fig4c.rst",
                     category="kMC"),
    params:
        analysis=lambda wc: kmc_analysis(wc.kmc_run),
    log:
        f"{LOGS}/kmc/{{kmc_run}}_randomness_figures.log",
    benchmark:
        f"{BENCH}/kmc/{{kmc_run}}_randomness_figures.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/kmc_randomness_figures.py"


rule kmc_b2:
    """Fig 5 (NNK paper): B2 units, their clusters in every snapshot, and the persistent clusters."""
    input:
        snapshots=f"{OUT}/kmc/{{kmc_run}}/snapshots",
        final=f"{OUT}/kmc/{{kmc_run}}/final.npz",
    output:
        clusters=f"{OUT}/tables/kmc_{{kmc_run}}_b2_clusters.csv",
        per_snapshot=f"{OUT}/tables/kmc_{{kmc_run}}_b2_snapshots.csv",
        fig5=report(f"{OUT}/figures/kmc/{{kmc_run}}_fig5_b2_clusters.png", caption="../report/kmc_fig5.rst",
                    category="kMC"),
    params:
        analysis=lambda wc: kmc_analysis(wc.kmc_run),
    log:
        f"{LOGS}/kmc/{{kmc_run}}_b2.log",
    benchmark:
        f"{BENCH}/kmc/{{kmc_run}}_b2.tsv"
    resources:
        runtime=20,
        mem_mb=4000,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/kmc_b2.py"
