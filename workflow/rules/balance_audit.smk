# Detailed-balance audit of kMC rate models (config block `balance_audit`): closed-loop drift of the
# implied dE = E_b(A->B) - E_b(B->A) and the exact Markov check, for rate models that predict barriers
# directly (NNK) as for the detailed-balance ones (M_KOL or M_EXT + KRA).

from types import SimpleNamespace

AUDIT_CFG = config["balance_audit"]


def audit_targets():
    if not AUDIT_CFG["enabled"] or not AUDIT_CFG["runs"]:
        return []
    return [f"{OUT}/tables/balance_audit.md", f"{OUT}/figures/balance_audit_drift.png"]


def audit_inputs(wc):
    """Every file the audited runs' rate models read (as rule kmc)."""
    files = []
    for run in AUDIT_CFG["runs"]:
        for value in kmc_run_inputs(SimpleNamespace(kmc_run=run)).values():
            files += value if isinstance(value, list) else [value]
    return files


rule balance_audit:
    """Loop drift (E_net against L) and Markov flux imbalance of the named kMC runs' rate models."""
    input:
        audit_inputs,
    output:
        loops=f"{OUT}/tables/balance_audit_loops.csv",
        drift=f"{OUT}/tables/balance_audit_drift.csv",
        markov=f"{OUT}/tables/balance_audit_markov.csv",
        markdown=f"{OUT}/tables/balance_audit.md",
        figure=f"{OUT}/figures/balance_audit_drift.png",
    params:
        runs={run: KMC_RUNS[run] for run in AUDIT_CFG["runs"] if run in KMC_RUNS},
        cfg=AUDIT_CFG,
        device=KMC_CFG["device"],
    log:
        f"{LOGS}/kmc/balance_audit.log",
    benchmark:
        f"{BENCH}/kmc/balance_audit.tsv"
    threads: 1
    resources:
        runtime=60,
        mem_mb=4000,
        cpus_per_task=1,
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/balance_audit.py"
