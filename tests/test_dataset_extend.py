"""datasets.<name>.extends: a larger run keeps an earlier run's rows byte for byte (dbkmc.stages.dataset_extend)."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from dbkmc.stages.dataset import collect_step
from dbkmc.stages.dataset_extend import extend_table

REPO = Path(__file__).resolve().parents[1]
REFERENCE = REPO / "data" / "reference_cuni" / "events.parquet"


@pytest.fixture(scope="module")
def events() -> pd.DataFrame:
    return pd.read_parquet(REFERENCE).iloc[:16].reset_index(drop=True)


def recomputed(rows: pd.DataFrame, shift_eV: float) -> pd.DataFrame:
    """The same events as a new run would give them: saddle energies moved by ``shift_eV``, new timings."""
    out = rows.copy()
    out["E_saddle"] += shift_eV
    out["barrier_forward"] += shift_eV
    out["wall_time_s"] += 1.0
    return out


def test_the_base_rows_are_kept_byte_for_byte_and_the_recomputation_is_reported(events):
    base, new = events.iloc[:10], events.iloc[10:]
    table = pd.concat([recomputed(events.iloc[:10], 3e-4), new]).sample(frac=1.0, random_state=0)
    merged, report = extend_table(base, table)
    kept = merged.set_index("event_id").loc[base.event_id]
    pd.testing.assert_frame_equal(kept.reset_index()[base.columns], base.reset_index(drop=True))
    pd.testing.assert_frame_equal(merged.set_index("event_id").loc[new.event_id].reset_index()[new.columns],
                                  new.reset_index(drop=True))
    assert list(merged.event_id) == sorted(merged.event_id)
    assert report["n_from_base"] == 10 and report["n_recomputed_accepted_both"] == 10
    assert report["recomputed_minus_kept_meV"]["E_saddle"]["mean"] == pytest.approx(0.3, abs=1e-6)
    assert report["recomputed_minus_kept_meV"]["E_A"]["max_abs"] == 0.0


def test_a_base_drawn_otherwise_is_refused_with_the_event_and_the_column(events):
    base = events.iloc[:4].copy()
    with pytest.raises(ValueError, match=r"datasets.cuni.extends: 1 event.*not among this run's"):
        extend_table(base, events.iloc[1:], key="datasets.cuni.extends")
    other = base.copy()
    other.loc[2, "occupation"] = other.loc[2, "occupation"][::-1]
    with pytest.raises(ValueError, match=rf"event {other.loc[2, 'event_id']} has another occupation"):
        extend_table(other, events, key="datasets.cuni.extends")


def test_collect_step_with_extends_writes_the_kept_rows_and_the_report(tmp_path, events):
    base_dir = tmp_path / "base"
    base_dir.mkdir()
    events.iloc[:6].to_parquet(base_dir / "events.parquet", index=False)
    shard = tmp_path / "shard_0.parquet"
    recomputed(events, 2e-4).assign(status="accepted", reject_reason="").to_parquet(shard, index=False)
    xyz = tmp_path / "shard_0.extxyz"
    xyz.write_text("")
    out = {k: tmp_path / f"{k}.out" for k in ("events", "rejects", "summary", "structures", "meta")}
    summary = collect_step([shard], [xyz], {"dataset": "cuni"}, out["events"], out["rejects"], out["summary"],
                           out["structures"], out["meta"], extends=base_dir)
    written = pd.read_parquet(out["events"]).set_index("event_id")
    assert (written.loc[events.event_id[:6], "E_saddle"].to_numpy() == events.E_saddle[:6].to_numpy()).all()
    assert (written.loc[events.event_id[6:], "E_saddle"].to_numpy() == events.E_saddle[6:].to_numpy() + 2e-4).all()
    assert summary["n_accepted"] == 16 and summary["extends"]["n_from_base"] == 6
    assert json.loads(out["summary"].read_text())["extends"]["recomputed_minus_kept_meV"]["E_saddle"]["rms"] == \
        pytest.approx(0.2, abs=1e-6)


BIG = REPO / "data" / "reference_cuni_30k" / "events.parquet"


@pytest.mark.skipif(not BIG.is_file(), reason="data/reference_cuni_30k is not committed yet")
def test_the_committed_30k_dataset_holds_the_reference_events_byte_for_byte():
    ref = pd.read_parquet(REFERENCE)
    big = pd.read_parquet(BIG).set_index("event_id").loc[ref.event_id].reset_index()
    pd.testing.assert_frame_equal(big[ref.columns], ref, check_exact=True)
    counts = pd.read_parquet(BIG).groupby("composition").size()
    assert (counts >= 9900).all(), counts.to_dict()  # about 10,000 accepted events per composition
