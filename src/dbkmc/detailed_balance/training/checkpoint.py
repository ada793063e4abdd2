"""Checkpoints of trained ensembles: one self-contained ``member_<k>.pt`` per member, and loading them back.

A checkpoint holds plain dicts, lists and tensors (loadable with
``weights_only=True``): the model kind and architecture, the AEV parameters
and species the fingerprints were made with, and the member's state dict.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from dbkmc.detailed_balance.aev import AEVParams
from dbkmc.detailed_balance.ext_fingerprints import DEFAULT_SHELLS, featurize_ext_events
from dbkmc.detailed_balance.fingerprints import featurize_events
from dbkmc.detailed_balance.models import Ensemble, EnsemblePrediction, TransitionModel, build_model

CHECKPOINT_FORMAT = "dbkmc-model/1"


def save_member(path: str | Path, model: TransitionModel, params: AEVParams, species: Sequence[str], *,
                member: int = 0, extra: Mapping[str, Any] | None = None) -> Path:
    """One ensemble member as a self-contained checkpoint (plain dicts, lists and tensors)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": CHECKPOINT_FORMAT,
        "kind": model.kind,
        "arch": model.arch(),
        "fingerprint_params": params.to_dict(),
        "species": list(species),
        "member": int(member),
        "state_dict": {k: v.detach().to("cpu").clone() for k, v in model.state_dict().items()},
        "extra": dict(extra or {}),
    }
    torch.save(payload, path)
    return path


def save_ensemble(directory: str | Path, ensemble: Ensemble, params: AEVParams, species: Sequence[str], *,
                  extra: Mapping[str, Any] | None = None) -> list[Path]:
    """``<directory>/member_<k>.pt`` for every member."""
    return [save_member(Path(directory) / f"member_{k}.pt", ensemble.member(k), params, species,
                        member=k, extra=extra) for k in range(ensemble.n_members)]


@dataclass
class LoadedModel:
    """An ensemble rebuilt from its checkpoints, with the fingerprint settings it was trained on."""

    ensemble: Ensemble
    params: AEVParams
    species: list[str]
    extra: dict[str, Any]

    @property
    def kind(self) -> str:
        return self.ensemble.kind

    def featurize(self, events: Any, device: str | None = None) -> dict[str, Tensor]:
        """The model's fingerprints of ``events`` (ideal lattice), in its dtype on its device."""
        dev = self.ensemble.device if device is None else torch.device(device)
        if self.ensemble.fingerprint == "EXT":
            shells = self.extra.get("ext_shells", DEFAULT_SHELLS)
            fps = featurize_ext_events(events, self.species, **shells)
            return {k: v.to(device=dev, dtype=self.ensemble.dtype) for k, v in fps.items()}
        fps = featurize_events(events, self.params, dev, species=self.species)
        return {k: v.to(self.ensemble.dtype) for k, v in fps.items()}

    def predict_events(self, events: Any) -> EnsemblePrediction:
        """Ensemble prediction (dE_[A,B] or E_KRA) for the jumps A -> B of ``events``."""
        fps = self.featurize(events)
        fp = self.ensemble.fingerprint
        return self.ensemble.predict(fps[f"{fp}_A"], fps[f"{fp}_B"])


def load_member(path: str | Path, device: str = "cpu") -> tuple[TransitionModel, dict[str, Any]]:
    """A member module (eval mode) and its checkpoint metadata."""
    payload = torch.load(Path(path), map_location=device, weights_only=True)
    if payload.get("format") != CHECKPOINT_FORMAT:
        raise ValueError(f"training: {path} is not a {CHECKPOINT_FORMAT} checkpoint")
    model = build_model(payload["kind"], **payload["arch"])
    state = payload["state_dict"]
    model.to(device=device, dtype=next(iter(state.values())).dtype)
    model.load_state_dict(state)
    return model.eval(), payload


def load_model(directory: str | Path, device: str = "cpu") -> LoadedModel:
    """Rebuild an ensemble from ``<directory>/member_<k>.pt`` alone (k = 0, 1, ...)."""
    paths = sorted(Path(directory).glob("member_*.pt"), key=lambda p: int(p.stem.split("_")[1]))
    if not paths:
        raise FileNotFoundError(f"training: no member_<k>.pt in {directory}")
    loaded = [load_member(p, device) for p in paths]
    first = loaded[0][1]
    for _, meta in loaded[1:]:
        if (meta["kind"], meta["arch"], meta["fingerprint_params"], meta["species"]) != \
                (first["kind"], first["arch"], first["fingerprint_params"], first["species"]):
            raise ValueError(f"training: members in {directory} disagree on kind, architecture or fingerprints")
    return LoadedModel(Ensemble([m for m, _ in loaded]), AEVParams.from_dict(first["fingerprint_params"]),
                       list(first["species"]), dict(first.get("extra", {})))
