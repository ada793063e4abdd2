# Shared helpers for the rules: config lookups and target lists. They only read `config`.

from dbkmc.core.potential_files import resolve_potential_file
from dbkmc.core.sampling import dataset_species
from dbkmc.detailed_balance.far_field import FAR_FIELD_DATASET, far_field_dataset
from dbkmc.neb.potentials import sha256_file

LOGS = f"{OUT}/logs"
BENCH = f"{OUT}/benchmarks"


def all_datasets():
    """Every dataset the dataset rules make: config's ``datasets``, then (far_field.enabled) the
    pseudo-dataset "far-field", whose cells go through the same neb and collect_dataset rules."""
    datasets = dict(config["datasets"])
    if config["far_field"]["enabled"]:
        datasets[FAR_FIELD_DATASET] = far_field_dataset(config["far_field"], config["potentials"])
    return datasets


DATASETS = all_datasets()


def dataset_cfg(name):
    return DATASETS[name]


def potential_name(dataset):
    return dataset_cfg(dataset)["potential"]


def potential_cfg(dataset):
    return config["potentials"][potential_name(dataset)]


def potential_hashes(potential):
    """sha256 of every file of a potential: a changed file reruns what used it."""
    files = config["potentials"][potential].get("files", {})
    return {key: sha256_file(resolve_potential_file(str(f))) for key, f in sorted(files.items())}


def species_of(dataset):
    return dataset_species(dataset_cfg(dataset)["compositions"], potential_cfg(dataset)["elements"])


def generated_datasets():
    return [d for d, c in DATASETS.items() if not c.get("source")]


def sourced_datasets():
    return [d for d, c in DATASETS.items() if c.get("source")]


def _alternation(names):
    return "|".join(names) if names else "(?!x)x"


def dataset_dir(dataset):
    return f"{OUT}/datasets/{dataset}"


DATASET_FILES = ("events.parquet", "rejects.parquet", "qc_summary.json", "structures.extxyz", "dataset.json")


def dataset_targets():
    return [f"{dataset_dir(d)}/{f}" for d in DATASETS for f in DATASET_FILES]


def gpu_resources(device, pays=True):
    """SLURM ``gpu`` resource of a rule whose torch code runs on ``device``.

    ``device`` is a ``models``/``nnk``/``kmc.device`` value. ``cuda`` or ``cuda:N``: one GPU,
    the script fails without it. ``auto`` (use a GPU when the node has one): one GPU for the
    rules where a GPU pays (``pays=True``: training, kMC, loop drift); the short ones that
    merely accept a device (evaluation, the Markov check) ask for none and run on a CPU
    node. ``cpu``: none; on a cluster without GPUs, set the device to ``cpu``.
    """
    if device.startswith("cuda"):
        return 1
    if device == "auto":
        return 1 if pays else 0
    if device == "cpu":
        return 0
    raise ValueError(f"device: {device!r} is none of auto, cpu, cuda, cuda:N")
