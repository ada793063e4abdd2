# Aging curves of the detailed-balance kMC runs (after kmc.smk): order and energy against time.


def kmc_aging_runs():
    """Runs with detailed-balance rates and an order pair get the aging figure."""
    return [run for run, cfg in KMC_RUNS.items()
            if cfg["rate_model"]["kind"] == "detailed_balance" and cfg["analysis"]["order_pair"]]


def kmc_aging_targets():
    return [f"{OUT}/figures/kmc/{run}_aging_delta_vs_time.png" for run in kmc_aging_runs()]


rule kmc_aging:
    """Aging: delta of the run's order pair and the M_KOL state energy against simulated time, per temperature."""
    input:
        timeseries=f"{OUT}/kmc/{{kmc_run}}/timeseries.parquet",
    output:
        table=f"{OUT}/tables/kmc_{{kmc_run}}_aging.csv",
        figure=report(f"{OUT}/figures/kmc/{{kmc_run}}_aging_delta_vs_time.png", caption="../report/kmc_aging.rst",
                      category="kMC"),
    params:
        pair=lambda wc: KMC_RUNS[wc.kmc_run]["analysis"]["order_pair"],
        energy=lambda wc: "M_EXT" if KMC_RUNS[wc.kmc_run]["rate_model"].get("energy") else "M_KOL",
    log:
        f"{LOGS}/kmc/{{kmc_run}}_aging.log",
    benchmark:
        f"{BENCH}/kmc/{{kmc_run}}_aging.tsv"
    resources:
        runtime=10,
        mem_mb=2000,
        cpus_per_task=1,
    conda:
        "../../envs/analysis.yaml"
    script:
        "../scripts/kmc_aging.py"
