"""The code blocks of the README's "Using the library" section run as written.

Each ```python block of that section is taken from README.md and executed, unchanged, in
its own namespace in a temporary working directory that looks like the repository root:
``data`` links to the repository's ``data/``. The trained-ensemble example reads
``results/demo/models/M_KOL``, the output of ``make run``; the test writes a tiny M_KOL
ensemble there first (trained for two epochs on reference events), so the example runs
without the pipeline. No path in the README text is substituted. The tests then check the
values the blocks leave behind against independent computations.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
SECTION = "Using the library"


def readme_blocks(text: str, section: str = SECTION) -> list[str]:
    """The ```python blocks between the ``## <section>`` heading and the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(section)}\n(.*?)(?=^## |\Z)", text, flags=re.M | re.S)
    if match is None:
        raise AssertionError(f"README.md has no '## {section}' section")
    return re.findall(r"^```python\n(.*?)^```", match.group(1), flags=re.M | re.S)


BLOCKS = readme_blocks((REPO / "README.md").read_text(encoding="utf-8"))


def block(keyword: str) -> str:
    """The one README block that contains ``keyword``."""
    found = [b for b in BLOCKS if keyword in b]
    assert len(found) == 1, f"expected one README example with {keyword!r}, found {len(found)}"
    return found[0]


@pytest.fixture
def repo_like(tmp_path, monkeypatch) -> Iterator[Path]:
    """A working directory with ``data/`` of the repository, as the examples expect.

    torch runs on one thread meanwhile: the examples are tiny, and on a shared machine
    several threads per process only wait for each other.
    """
    (tmp_path / "data").symlink_to(REPO / "data", target_is_directory=True)
    monkeypatch.chdir(tmp_path)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield tmp_path
    torch.set_num_threads(threads)


def run_block(code: str) -> dict:
    namespace: dict = {"__name__": "__readme__"}
    exec(compile(code, "README.md (Using the library)", "exec"), namespace)  # noqa: S102 - the README's own text
    return namespace


def test_the_section_holds_the_four_examples():
    assert len(BLOCKS) == 4
    for keyword in ("barrier_table", "transition_fingerprints", "load_model", "KMC("):
        block(keyword)


def test_the_extractor_reads_only_that_section():
    text = "# t\n```python\nx = 0\n```\n## Using the library\nsome text\n```python\na = 1\n```\n" \
           "```bash\nls\n```\n```python\nb = 2\n```\n## Next\n```python\nc = 3\n```\n"
    assert readme_blocks(text) == ["a = 1\n", "b = 2\n"]
    with pytest.raises(AssertionError, match="no '## Missing' section"):
        readme_blocks(text, "Missing")


def test_nnk_barriers_of_a_dump(repo_like):
    ns = run_block(block("barrier_table"))
    table = ns["table"]
    assert list(table.columns) == ["vacancy_id", "path", "neighbor_id", "barrier_eV"]
    assert table["vacancy_id"].tolist() == [5] * 8 + [17] * 8          # bcc: 8 paths per vacancy
    assert table["path"].tolist() == list(range(8)) * 2
    # the jumping atoms are first neighbours of the vacancy in the dump itself
    from dbkmc.neb.dump import read_dump

    frame = read_dump(REPO / "data/nnk_nbmota/nbmota_1024.dump")
    pos = dict(zip(frame.ids.tolist(), frame.positions))
    box = frame.box_hi - frame.box_lo
    a = box[0] / 8
    for vac, nbr in zip(table["vacancy_id"], table["neighbor_id"]):
        d = pos[int(nbr)] - pos[int(vac)]
        d -= box * np.round(d / box)
        assert np.linalg.norm(d) == pytest.approx(np.sqrt(3) / 2 * a, abs=0.01)
    assert table["barrier_eV"].between(0.8, 3.0).all()


def test_fingerprints_of_an_event(repo_like):
    ns = run_block(block("transition_fingerprints"))
    from dbkmc.detailed_balance.fingerprints import AEVParams, featurize_events

    event = pd.read_parquet(REPO / "data/reference_cuni/events.parquet").iloc[[0]]
    ref = featurize_events(event, AEVParams())
    assert torch.equal(ns["f_kol_a"], ref["KOL_A"][0])
    assert torch.equal(ns["f_tw_a"], ref["TW_A"][0]) and torch.equal(ns["f_tw_b"], ref["TW_B"][0])
    assert ns["f_kol_a"].shape == (AEVParams().dim(2),)
    assert not torch.equal(ns["f_tw_a"], ns["f_tw_b"])   # the jump changes the union environment


def test_delta_e_of_a_trained_ensemble(repo_like):
    from dbkmc.detailed_balance.fingerprints import AEVParams
    from dbkmc.detailed_balance.training import EventData, TrainConfig, save_ensemble, split_events, train_model

    events = pd.read_parquet(REPO / "data/reference_cuni/events.parquet")
    params = AEVParams(r_cut=4.0)  # a small window keeps the tiny training fast
    data = EventData.from_events(events.head(60), params)
    split = split_events(data.event_id, data.composition)
    fit = train_model("M_KOL", data, split, TrainConfig(hidden=(8,), n_members=2, max_epochs=2, batch_size=32))
    save_ensemble(repo_like / "results/demo/models/M_KOL", fit.ensemble, params, data.species)

    ns = run_block(block("load_model"))
    pred = ns["pred"]
    expected = EventData.from_events(events.head(4), params).fingerprints
    members = fit.ensemble(expected["KOL_A"], expected["KOL_B"])   # (members, events)
    assert pred.members.shape == (2, 4)
    torch.testing.assert_close(pred.mean, members.mean(0))
    torch.testing.assert_close(pred.std, members.std(0, unbiased=False))
    # M_KOL is antisymmetric: the reverse jumps give -dE exactly
    torch.testing.assert_close(fit.ensemble(expected["KOL_B"], expected["KOL_A"]).mean(0), -pred.mean)


def test_kmc_run_from_python(repo_like):
    ns = run_block(block("KMC("))
    engine, lattice, species = ns["engine"], ns["lattice"], ns["species"]
    assert engine.step == 5000 and engine.T == 2
    assert torch.all(engine.time > 0)
    # the same 5000 jumps take far longer at 800 K than at 1200 K (Arrhenius rates)
    assert engine.time[0] > 10 * engine.time[1]
    digits = engine.digits.numpy()
    start = ns["insert_vacancies"](ns["digits"], 1, seed=0)
    for row in digits:   # jumps only move atoms: the composition is conserved
        assert np.array_equal(np.bincount(row, minlength=4), np.bincount(start, minlength=4))
    assert lattice.n_sites == 1024 and species == ["Nb", "Mo", "Ta"]
    assert os.path.basename(os.getcwd()) == repo_like.name   # ran in the temporary root


# --------------------------------------------------------------------------- the README as a page


def test_the_readme_leads_with_exactly_the_two_commands():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    first = re.search(r"^```(\w*)\n(.*?)^```", text, flags=re.M | re.S)
    assert first is not None and first.group(1) == "bash"
    commands = [line.split("#")[0].strip() for line in first.group(2).splitlines()]
    assert [c for c in commands if c] == ["make run", "make test"]
    assert text.index(first.group(0)) < text.index("\n## ")   # before any section


def markdown_links(path: Path) -> list[str]:
    """Relative link targets of a markdown file (images included), without their #anchors."""
    targets = re.findall(r"\]\(([^)\s]+)\)", path.read_text(encoding="utf-8"))
    return [t.split("#")[0] for t in targets if not re.match(r"[a-z]+:", t) and not t.startswith("#")]


@pytest.mark.parametrize("page", ["README.md", *sorted(p.relative_to(REPO).as_posix() for p in (REPO / "docs").glob("*.md"))])
def test_relative_links_point_to_files(page):
    path = REPO / page
    missing = [t for t in markdown_links(path) if not (path.parent / t).exists()]
    assert not missing, f"{page} links to missing files: {missing}"


def test_every_docs_page_is_linked_from_the_index():
    linked = set(markdown_links(REPO / "docs/index.md"))
    pages = {p.name for p in (REPO / "docs").glob("*.md")} - {"index.md"}
    assert pages <= linked, f"docs/index.md does not link {sorted(pages - linked)}"


def test_citation_file_names_both_papers():
    import yaml

    cff = yaml.safe_load((REPO / "CITATION.cff").read_text(encoding="utf-8"))
    assert cff["cff-version"] == "1.2.0" and cff["license"] == "MIT"
    for key in ("message", "title", "authors"):
        assert cff[key], f"CITATION.cff: {key} is empty"
    titles = [ref["title"] for ref in cff["references"]]
    assert any("detailed balance" in t for t in titles) and any("Neural network kinetics" in t for t in titles)
    readme = " ".join((REPO / "README.md").read_text(encoding="utf-8").split()).lower()  # lines unwrapped
    for ref in cff["references"]:
        assert ref["title"].lower() in readme, f"README does not cite {ref['title']!r}"
    assert (REPO / "LICENSE").read_text(encoding="utf-8").startswith("MIT License")
