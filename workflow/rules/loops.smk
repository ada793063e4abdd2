# Closed-loop drift (Fig 9) and the exact Markov-chain check of detailed balance, on the model
# stage's ensembles (M_NC, M_SAS, M_HAS, M_KOL, KRA). Switched on by loops.enabled.

from dbkmc.detailed_balance.kinds import DE_KINDS

LOOPS_CFG = config["loops"]
LOOP_MODELS = list(DE_KINDS)  # the dE models: loop drift compares them, the Markov check adds KRA


def loop_targets():
    if not LOOPS_CFG["enabled"]:
        return []
    return [
        f"{OUT}/tables/loop_drift.csv",
        f"{OUT}/loops/loop_drift_loops.parquet",
        f"{OUT}/figures/fig9_loop_drift.png",
        f"{OUT}/tables/markov_check.csv",
        f"{OUT}/tables/markov_check.md",
    ]


rule loop_drift:
    """Fig 9: random closed loops of vacancy hops; <|E_net(L)|>, the predicted dE summed around each loop, per model."""
    input:
        events=model_events(),
        dataset=f"{dataset_dir(MODELS_CFG['dataset'])}/dataset.json" if MODELS_CFG["dataset"] else [],
        members=[f for m in LOOP_MODELS for f in model_members(m)],
    output:
        table=f"{OUT}/tables/loop_drift.csv",
        loops=f"{OUT}/loops/loop_drift_loops.parquet",
        figure=report(f"{OUT}/figures/fig9_loop_drift.png", caption="../report/loop_drift.rst",
                      category="Detailed balance"),
    params:
        model_dirs={m: f"{OUT}/models/{m}" for m in LOOP_MODELS},
        loops={k: v for k, v in LOOPS_CFG.items() if k not in ("enabled", "markov")},
        device=MODELS_CFG["device"],
    log:
        f"{LOGS}/loops/loop_drift.log",
    benchmark:
        f"{BENCH}/loops/loop_drift.tsv"
    threads: 2
    resources:
        runtime=120,
        mem_mb=8000,
        cpus_per_task=2,
        gpu=gpu_resources(MODELS_CFG["device"]),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/loop_drift.py"


rule markov_check:
    """Exact Markov chain on a tiny cell: detailed balance and Boltzmann weights of KOL+KRA rates, and the other models' violation."""
    input:
        events=model_events(),
        dataset=f"{dataset_dir(MODELS_CFG['dataset'])}/dataset.json" if MODELS_CFG["dataset"] else [],
        members=[f for m in [*LOOP_MODELS, "KRA"] for f in model_members(m)],
    output:
        table=report(f"{OUT}/tables/markov_check.csv", caption="../report/markov_check.rst",
                     category="Detailed balance"),
        markdown=f"{OUT}/tables/markov_check.md",
    params:
        model_dirs={m: f"{OUT}/models/{m}" for m in LOOP_MODELS},
        kra_dir=f"{OUT}/models/KRA",
        loops={k: v for k, v in LOOPS_CFG.items() if k != "enabled"},
        device=MODELS_CFG["device"],
    log:
        f"{LOGS}/loops/markov_check.log",
    benchmark:
        f"{BENCH}/loops/markov_check.tsv"
    threads: 1
    resources:
        runtime=30,
        mem_mb=4000,
        cpus_per_task=1,
        gpu=gpu_resources(MODELS_CFG["device"], pays=False),
    conda:
        "../../envs/torch.yaml"
    script:
        "../scripts/markov_check.py"
