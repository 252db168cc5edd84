"""The .shiftprog format: packing, round trip, and one clear error per malformed field."""

import json
import os

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from shifthw.program import (ProgramError, is_program_file, load_program, pack_codes, save_program,
                             unpack_codes)
from tests.test_golden import tiny_program


@given(b=st.integers(2, 8), data=st.data())
def test_pack_unpack_roundtrip(b, data):
    codes = np.array(data.draw(st.lists(st.integers(0, 2 ** b - 1), max_size=50)), dtype=np.int64)
    blob = pack_codes(codes, b)
    assert len(blob) == (codes.size * b + 7) // 8
    assert unpack_codes(blob, codes.size, b).tolist() == codes.tolist()


def test_pack_is_lsb_first():
    # Two 5-bit codes 0b10011, 0b00001 -> bits 1,1,0,0,1, 1,0,0,0,0 -> bytes 0x33, 0x00.
    assert pack_codes(np.array([0b10011, 0b00001]), 5) == bytes([0x33, 0x00])


def test_padding_bits_must_be_zero():
    blob = pack_codes(np.array([0b10011, 0b00001]), 5)             # 10 bits in 2 bytes
    assert unpack_codes(blob, 2, 5).tolist() == [0b10011, 0b00001]
    with pytest.raises(ProgramError, match="6 padding bit.* after 2 codes of 5 bits are "
                                           "not zero"):
        unpack_codes(bytes([blob[0], blob[1] | 0x80]), 2, 5)


def test_roundtrip(tmp_path):
    prog = tiny_program()
    path = save_program(prog, tmp_path / "m.shiftprog")
    back = load_program(path)
    assert back.to_json() == prog.to_json()
    assert [s.name for s in back.steps] == ["c1", "p", "f", "fc"]
    assert (back.layers[0].codes == prog.layers[0].codes).all()


def _write(tmp_path, obj):
    p = tmp_path / "bad.shiftprog"
    p.write_text(json.dumps(obj))
    return p


@pytest.mark.parametrize("mutate, message", [
    (lambda o: o.update(version=2), "version 2 is not supported"),
    (lambda o: o.update(format="other"), "format"),
    (lambda o: o["steps"][0].pop("exponent"), "step 0 \\(c1\\): missing field 'exponent'"),
    (lambda o: o["steps"][0].update(weights="AAAA"), "step 0 \\(c1\\): packed weights"),
    (lambda o: o["steps"][0].update(weights="!!"), "not valid base64"),
    (lambda o: o["steps"][0].pop("weights"), "step 0 \\(c1\\): missing field 'weights'"),
    # A field out of range is named, not out_shift_exact's disagreement with it.
    (lambda o: o["steps"][0].update(exponent=10**30), "exponent must be in -32..32, not 1"),
    (lambda o: o["steps"][0].update(frac_out=-33), "frac_out must be in -32..48, not -33"),
    (lambda o: o["steps"][0].update(relu=1), "'relu' has the wrong type"),
    (lambda o: o["steps"][3].update(frac_in=5, out_shift_exact=16),
     "layer fc: frac_in=5 but its input"),
    (lambda o: o["steps"][3].update(fan_in=11), "step 3 \\(fc\\): packed weights"),
    (lambda o: o["steps"][1].update(type="avgpool"), "unknown step type 'avgpool'"),
    (lambda o: o["steps"][0].update(out_shift_exact=0), "out_shift_exact=0 disagrees"),
    (lambda o: o.update(weight_bits=9), "weight_bits must be in 2..8"),
    (lambda o: o["steps"][0].update(kernel_size=[3]), "kernel_size must be a list of two"),
    (lambda o: o["steps"][0].update(kernel_size=[-k for k in o["steps"][0]["kernel_size"]]),
     "layer c1: kernel_size and stride must be >= 1"),
    (lambda o: o["steps"][0].update(round_half_up="false"), "'round_half_up' has the wrong type"),
    (lambda o: o["input"].update(shape=[str(d) for d in o["input"]["shape"]]),
     "input: shape must be a list of integers"),
])
def test_malformed_files_get_one_clear_error(tmp_path, mutate, message):
    obj = tiny_program().to_json()
    mutate(obj)
    path = _write(tmp_path, obj)
    with pytest.raises(ProgramError, match=message) as info:
        load_program(path)
    assert str(path) in str(info.value)


def test_unreadable_and_non_json(tmp_path):
    with pytest.raises(ProgramError, match="cannot read"):
        load_program(tmp_path / "missing.shiftprog")
    p = tmp_path / "x.shiftprog"
    p.write_text("{not json")
    with pytest.raises(ProgramError, match="not valid JSON"):
        load_program(p)
    p.write_bytes(b"\xff\xfe binary")             # was a UnicodeDecodeError naming no file
    with pytest.raises(ProgramError, match=f"{p}: not a .shiftprog .* not UTF-8"):
        load_program(p)


def test_save_leaves_nothing_half_written(tmp_path, monkeypatch):
    prog = tiny_program()
    target = tmp_path / "m.shiftprog"

    def boom(*a, **k):
        raise OSError("disk full")
    monkeypatch.setattr("os.replace", boom)
    with pytest.raises(OSError):
        save_program(prog, target)
    assert list(tmp_path.iterdir()) == []


def test_save_follows_links_and_refuses_other_files(tmp_path):
    prog = tiny_program()
    real = tmp_path / "real.shiftprog"
    real.write_text("")
    link = tmp_path / "link.shiftprog"
    link.symlink_to(real)
    save_program(prog, link)
    assert link.is_symlink() and load_program(real).to_json() == prog.to_json()
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    with pytest.raises(ValueError, match="exists and is not a regular file"):
        save_program(prog, fifo)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fifo", "link.shiftprog",
                                                          "real.shiftprog"]


def test_a_program_is_known_by_its_suffix_or_its_json(tmp_path):
    from shifthw.estimate.flow import load_model
    from shifthw.sim.flow import load_source

    prog = tiny_program()
    for name in ("m.shiftprog", "m.SHIFTPROG", "m"):
        path = save_program(prog, tmp_path / name)
        assert is_program_file(path)
        assert load_source(path)[0].to_json() == prog.to_json()
        assert load_model(str(path))[0].to_json() == prog.to_json()
    (tmp_path / "w.pt").write_bytes(b"PK\x03\x04 a zip")
    assert not is_program_file(tmp_path / "w.pt")
    assert not is_program_file(tmp_path / "missing")
