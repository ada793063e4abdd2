# Thermodynamic check of M_EXT (config block `equilibrium`): swap Monte Carlo with M_EXT vs
# time-weighted kMC with M_EXT + KRA rates vs swap Monte Carlo with relaxed LAMMPS energies on a
# small cell, and M_EXT vs LAMMPS energy differences on ordered / clustered cells.

EQ_CFG = config["equilibrium"]


def equilibrium_potential():
    name = EQ_CFG["potential"]
    if name is None:
        if len(config["potentials"]) != 1:
            raise ValueError("equilibrium.potential: name one of the potentials")
        name = next(iter(config["potentials"]))
    return name


def equilibrium_targets():
    if not EQ_CFG["enabled"]:
        return []
    return [f"{OUT}/tables/equilibrium_check.csv", f"{OUT}/figures/equilibrium_check.png"]


def equilibrium_models():
    """The M_EXT and KRA ensembles' training records (their members sit next to them)."""
    return [f"{EQ_CFG[key].format(run=RUN)}/training.json" for key in ("energy", "kra")]


rule equilibrium_check:
    """alpha_1 and <E> of swap MC (M_EXT), time-weighted kMC (M_EXT + KRA) and swap MC (LAMMPS); M_EXT vs LAMMPS dE far from training."""
    input:
        models=equilibrium_models(),
    output:
        table=f"{OUT}/tables/equilibrium_check.csv",
        markdown=f"{OUT}/tables/equilibrium_check.md",
        far=f"{OUT}/tables/equilibrium_far_from_training.csv",
        figure=f"{OUT}/figures/equilibrium_check.png",
    params:
        cfg=EQ_CFG,
        potential=lambda wc: equilibrium_potential(),
        potential_cfg=lambda wc: config["potentials"][equilibrium_potential()],
        run=RUN,
    log:
        f"{LOGS}/equilibrium/equilibrium_check.log",
    benchmark:
        f"{BENCH}/equilibrium/equilibrium_check.tsv"
    resources:
        runtime=60,
        mem_mb=4000,
        cpus_per_task=1,
    conda:
        "../../envs/equilibrium.yaml"
    script:
        "../scripts/equilibrium_check.py"
