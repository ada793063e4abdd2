"""Cross-field checks of the ``kmc`` config block (called by :func:`dbkmc.core.config.validate_config`).

Kept free of torch so that validating a config stays cheap.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path
from typing import Any

from dbkmc.core.constants import PUBLISHED_NNK_CUTOFF

Issue = tuple[tuple[Any, ...], str]

# File paths of a kMC run that may name this run's outputs through the {run} placeholder,
# e.g. ``kol: results/{run}/models/M_KOL``: renaming ``run`` then keeps them pointing at this run.
PATH_FIELDS = (("structure", "dump"), ("rate_model", "weights"), ("rate_model", "checkpoint"),
               ("rate_model", "kol"), ("rate_model", "kra"), ("rate_model", "energy"), ("rate_model", "prefactor"))
PLACEHOLDERS = ("run",)
_PLACEHOLDER = re.compile(r"\{([^{}]*)\}")
# The folder of each detailed-balance ensemble under results/<run>/models/.
# ``energy`` (an M_EXT extensive energy) replaces ``kol`` as the source of the state energies.
ENSEMBLE_MODELS = {"kol": "M_KOL", "kra": "KRA", "energy": "M_EXT"}
# Vibrational prefactors (``prefactor``): a folder results/<run>/models/prefactors with these ensembles.
PREFACTOR_DIR = "prefactors"
PREFACTOR_MODELS = ("PRE_S", "PRE_KRA")


def expand_run_placeholders(cfg: MutableMapping[str, Any]) -> Iterator[Issue]:
    """Replace ``{run}`` in the kMC runs' file paths by ``cfg["run"]``, in place.

    Yields an issue for any other placeholder (``{name}``, ``{}``) or an unmatched brace, and
    leaves such a path as written. Expanded paths hold no braces (run names cannot), so
    validating a validated config again changes nothing.
    """
    known = ", ".join("{" + k + "}" for k in PLACEHOLDERS)
    for name, run in cfg["kmc"]["runs"].items():
        for section, key in PATH_FIELDS:
            path = run[section].get(key)
            if not isinstance(path, str):
                continue
            where = ("kmc", "runs", name, section, key)
            unknown = [m for m in dict.fromkeys(_PLACEHOLDER.findall(path)) if m not in PLACEHOLDERS]
            for m in unknown:
                yield where, f"unknown placeholder {{{m}}} in {path!r} (known: {known})"
            if unknown:
                continue
            if set("{}") & set(_PLACEHOLDER.sub("", path)):
                yield where, f"unmatched brace in {path!r} (placeholders: {known})"
                continue
            run[section][key] = _PLACEHOLDER.sub(lambda m: str(cfg[m.group(1)]), path)


def run_model_dir(run: str, model: str) -> str:
    """This run's ensemble folder of one model of the model stage: ``results/<run>/models/<model>``."""
    return f"results/{run}/models/{model}"


def is_run_model_dir(path: str, run: str, model: str) -> bool:
    """Whether ``path`` names this run's ``model`` ensemble folder (a trailing slash or ./ allowed)."""
    return Path(path) == Path(run_model_dir(run, model))


def run_nnk_db_dir(run: str, nnk_set: str, model: str) -> str:
    """This run's DB-NNK ensemble folder (rule ``train_nnk_db``): ``results/<run>/nnk/<set>/db/<model>``."""
    return f"results/{run}/nnk/{nnk_set}/db/{model}"


def nnk_db_set_of(path: str, run: str, model: str) -> str | None:
    """The NNK set whose DB-NNK ``model`` ensemble ``path`` names in this run, or None."""
    parts = Path(path).parts
    if len(parts) == 6 and parts[:3] == ("results", run, "nnk") and parts[4:] == ("db", model):
        return parts[3]
    return None


def kmc_issues(kmc: Mapping[str, Any], *, run: str, model_stage: bool,
               nnk_db_sets: Sequence[str] = ()) -> Iterator[Issue]:
    """Cross-field issues of the kmc block; ``run`` and ``model_stage`` (models.dataset set) are the
    run's name and whether this run trains the ensembles that detailed-balance rates may name;
    ``nnk_db_sets``: the NNK sets whose DB-NNK ensembles this run trains (nnk.architectures has db)."""
    for name, spec in kmc["runs"].items():
        yield from _run_issues(("kmc", "runs", name), spec)
        yield from _ensemble_issues(("kmc", "runs", name, "rate_model"), spec["rate_model"], run, model_stage,
                                    nnk_db_sets)


def _ensemble_issues(key: tuple[Any, ...], rm: Mapping[str, Any], run: str, model_stage: bool,
                     nnk_db_sets: Sequence[str] = ()) -> Iterator[Issue]:
    """detailed_balance: each ensemble is this run's model-stage output or an existing folder."""
    if rm["kind"] != "detailed_balance":
        return
    folder = rm.get("prefactor")
    if folder and not is_run_model_dir(folder, run, PREFACTOR_DIR):
        if not Path(folder).is_dir():
            yield (*key, "prefactor"), (f"no folder {folder} (this run's prefactor models are "
                                        f"{run_model_dir(run, PREFACTOR_DIR)}, with PRE_S/ and PRE_KRA/)")
        elif not all((Path(folder) / sub).is_dir() for sub in PREFACTOR_MODELS):
            yield (*key, "prefactor"), f"{folder} has no PRE_S/ and PRE_KRA/ folders (a prefactor folder needs both)"
    for field, model in ENSEMBLE_MODELS.items():
        folder = rm[field]
        if not folder:
            continue
        nnk_set = nnk_db_set_of(folder, run, model)
        if nnk_set is not None:
            if nnk_set not in nnk_db_sets:
                yield (*key, field), (f"{folder} is this run's DB-NNK output, but no NNK set {nnk_set!r} trains "
                                      "architecture db (nnk.sets, nnk.architectures)")
        elif is_run_model_dir(folder, run, model):
            if not model_stage:
                yield (*key, field), (f"{folder} is this run's model-stage output, but the model stage is off "
                                      "(set models.dataset)")
        elif Path(folder).name != model and Path(folder).name.startswith(("M_", "KRA")):
            yield (*key, field), f"{folder} is a {Path(folder).name} ensemble; {field} needs {model}"
        elif not Path(folder).is_dir():
            yield (*key, field), (f"no folder {folder} (this run's {model} ensemble is "
                                  f"{run_model_dir('{run}', model)}, i.e. {run_model_dir(run, model)})")


def _run_issues(key: tuple[Any, ...], run: Mapping[str, Any]) -> Iterator[Issue]:
    st = run["structure"]
    species = list(st["species"])
    sk = (*key, "structure")
    if st["dump"]:
        if not Path(st["dump"]).is_file():
            yield (*sk, "dump"), f"no file {st['dump']}"
        if st["repeat"] > 1 and st["redraw"]:
            yield (*sk, "redraw"), "give either repeat or redraw, not both"
        for extra in ("n", "a", "composition"):
            if st[extra] is not None:
                yield (*sk, extra), "only used without a dump (the dump sets the cell)"
    else:
        for need in ("lattice", "n", "a", "composition"):
            if st[need] is None:
                yield (*sk, need), "needed when no dump is given"
        if st["composition"] is not None:
            unknown = sorted(set(st["composition"]) - set(species))
            if unknown:
                yield (*sk, "composition"), f"{unknown} not in structure.species {species}"
            total = sum(st["composition"].values())
            if not math.isclose(total, 1.0, abs_tol=1e-6):
                yield (*sk, "composition"), f"fractions sum to {total:g}, not 1"
    rm = run["rate_model"]
    rk = (*key, "rate_model")
    if rm["kind"] == "nnk_published":
        if not rm["weights"]:
            yield (*rk, "weights"), "nnk_published needs the weights file"
        elif not Path(rm["weights"]).is_file():
            yield (*rk, "weights"), f"no file {rm['weights']}"
        if rm["species"] is not None and list(rm["species"]) != species:
            yield (*rk, "species"), f"the network's species {list(rm['species'])} are not the structure's {species}"
        if rm["cutoff"] != PUBLISHED_NNK_CUTOFF:
            yield (*rk, "cutoff"), (f"the published network was trained with a {PUBLISHED_NNK_CUTOFF} A cutoff; "
                                    f"{rm['cutoff']} would feed it images it never saw")
    if rm["kind"] == "nnk_trained" and not rm["checkpoint"]:
        yield (*rk, "checkpoint"), "nnk_trained needs the network's checkpoint file"
    if rm.get("prefactor") and rm["kind"] != "detailed_balance":
        yield (*rk, "prefactor"), "vibrational prefactors need kind detailed_balance"
    if rm["kind"] == "detailed_balance":
        if not rm["kra"]:
            yield (*rk, "kra"), "detailed_balance needs the KRA ensemble folder"
        if bool(rm["kol"]) == bool(rm["energy"]):
            yield (*rk, "energy" if rm["energy"] else "kol"), (
                "detailed_balance needs exactly one source of state energies: kol (an M_KOL ensemble folder) "
                "or energy (an M_EXT folder)")
    an = run["analysis"]
    if an["order_pair"] is not None:
        for s in an["order_pair"]:
            if s not in species:
                yield (*key, "analysis", "order_pair"), f"{s!r} is not in structure.species {species}"
    if an["b2"] is not None:
        a, b = an["b2"]["a"], an["b2"]["b"]
        if a == b:
            yield (*key, "analysis", "b2"), "a and b must differ"
        for s in (a, b):
            if s not in species:
                yield (*key, "analysis", "b2"), f"{s!r} is not in structure.species {species}"
        if st["lattice"] == "fcc":
            yield (*key, "analysis", "b2"), "B2 order is defined on bcc"
        if run["snapshots"]["count"] < 1:
            yield (*key, "snapshots", "count"), "the B2 analysis reads snapshots: need count >= 1"
