"""The LAMMPS text dump reader: frames, columns, and errors that name the line."""

import numpy as np
import pytest

from dbkmc.neb.dump import read_dump, read_dump_frames, to_lattice


def frame_text(timestep=0, atoms=None, columns="id type x y z", n=None, box="0 6.48"):
    # bcc 2x2x2 (16 atoms), a = 3.24
    if atoms is None:
        atoms = []
        a = 3.24
        k = 1
        for i in range(2):
            for j in range(2):
                for m in range(2):
                    for off in (0.0, 0.5):
                        atoms.append(f"{k} {1 + k % 3} {(i + off) * a:.4f} {(j + off) * a:.4f} {(m + off) * a:.4f}")
                        k += 1
    n = len(atoms) if n is None else n
    return (f"ITEM: TIMESTEP\n{timestep}\nITEM: NUMBER OF ATOMS\n{n}\nITEM: BOX BOUNDS pp pp pp\n"
            + f"{box}\n" * 3 + f"ITEM: ATOMS {columns}\n" + "\n".join(atoms) + "\n")


def write(tmp_path, text, name="a.dump"):
    p = tmp_path / name
    p.write_text(text)
    return p


def test_reads_every_frame_and_maps_onto_the_lattice(tmp_path):
    p = write(tmp_path, frame_text(0) + frame_text(250))
    frames = list(read_dump_frames(p))
    assert [f.timestep for f in frames] == [0, 250]
    f = read_dump(p)
    assert f.positions.shape == (16, 3) and f.ids.tolist() == list(range(1, 17))
    st = to_lattice(f)
    assert st.lattice.kind == "bcc" and st.lattice.n == 2
    assert sorted(st.ids.tolist()) == list(range(1, 17))


def test_scaled_and_string_columns(tmp_path):
    text = frame_text(columns="id type element x y z")
    lines = text.splitlines()
    lines[9:] = [" ".join([r.split()[0], r.split()[1], "Nb", *r.split()[2:]]) for r in lines[9:]]
    f = read_dump(write(tmp_path, "\n".join(lines) + "\n"))
    scaled = frame_text().replace("id type x y z", "id type xs ys zs")
    lines = scaled.splitlines()
    lines[9:] = [" ".join([*r.split()[:2], *(f"{float(v) / 6.48:.6f}" for v in r.split()[2:])]) for r in lines[9:]]
    g = read_dump(write(tmp_path, "\n".join(lines) + "\n", "s.dump"))
    np.testing.assert_allclose(g.positions, f.positions, atol=1e-5)


def line_of(text, needle):
    return next(i + 1 for i, r in enumerate(text.splitlines()) if r.startswith(needle))


@pytest.mark.parametrize("bad, expect", [
    ("7 2 abc 0 0", "field 3 ('abc') is not a number"),
    ("7 2 0.0 0.0", "atom line has 4 fields, the ATOMS header names 5"),
    ("7.5 2 0 0 0", "atom id '7.5' is not an integer"),
])
def test_a_bad_atom_line_is_named(tmp_path, bad, expect):
    text = frame_text()
    lines = text.splitlines()
    k = line_of(text, "7 ")
    lines[k - 1] = bad
    p = write(tmp_path, "\n".join(lines) + "\n")
    with pytest.raises(ValueError, match=rf"line {k}: {expect}".replace("(", r"\(").replace(")", r"\)")):
        read_dump(p)


def test_a_nan_coordinate_gets_its_own_error(tmp_path):
    text = frame_text()
    for bad in ("nan", "inf"):
        lines = text.splitlines()
        k = line_of(text, "5 ")
        f = lines[k - 1].split()
        f[3] = bad
        lines[k - 1] = " ".join(f)
        p = write(tmp_path, "\n".join(lines) + "\n")
        with pytest.raises(ValueError, match=rf"line {k}: atom id 5 has a non-finite coordinate.*{bad}"):
            read_dump(p)


def test_to_lattice_names_a_non_finite_atom(tmp_path):
    from dataclasses import replace

    frame = read_dump(write(tmp_path, frame_text()))
    pos = frame.positions.copy()
    pos[1, 2] = np.nan
    frame = replace(frame, positions=pos)
    with pytest.raises(ValueError, match="atom id 2 has a non-finite position"):
        to_lattice(frame, kind="bcc")


def test_structural_errors_name_the_line(tmp_path):
    text = frame_text()
    short = "\n".join(text.splitlines()[:-3]) + "\n"
    with pytest.raises(ValueError, match=r"line 22: the file ends after 13 atom lines; NUMBER OF ATOMS is 16"):
        read_dump(write(tmp_path, short, "short.dump"))
    two = frame_text(n=18) + frame_text(5)
    with pytest.raises(ValueError, match=r"line 26: NUMBER OF ATOMS is 18, but an ITEM line follows after 16"):
        read_dump(write(tmp_path, two, "two.dump"))
    dup = text.replace("\n3 ", "\n2 ", 1)
    with pytest.raises(ValueError, match=r"line 12: atom id 2 appears again \(first on line 11\)"):
        read_dump(write(tmp_path, dup, "dup.dump"))
    with pytest.raises(ValueError, match=r"line 2: timestep 'x' is not an integer"):
        read_dump(write(tmp_path, text.replace("TIMESTEP\n0", "TIMESTEP\nx"), "ts.dump"))
    with pytest.raises(ValueError, match=r"line 7: y bounds: expected two finite numbers lo < hi"):
        lines = text.splitlines()
        lines[6] = "0 nan"
        read_dump(write(tmp_path, "\n".join(lines) + "\n", "box.dump"))
    with pytest.raises(ValueError, match=r"line 9: the ATOMS columns lack 'type'"):
        read_dump(write(tmp_path, text.replace("id type x", "id kind x"), "col.dump"))
    with pytest.raises(ValueError, match="no frame"):
        read_dump(write(tmp_path, "", "empty.dump"))
