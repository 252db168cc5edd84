"""Stream and buffer layouts: one definition, packed and unpacked by the same offsets."""

import pytest
from amaranth.hdl import Shape
from hypothesis import given, settings
from hypothesis import strategies as st

from shifthw import numerics as nx
from shifthw.rtl_gen import layouts as ly
from shifthw.rtl_gen.config import EngineConfig

CFG = EngineConfig(rows=3, cols=2, act_bits=6, weight_bits=4, guard_bits=2, k_depth=5,
                   weight_depth=9, bias_depth=4, bias_lanes=1, param_word_bits=7)


def test_weight_layout_is_the_contracts():
    assert ly.weight_layout(CFG) is nx.weight_code_layout(4)
    assert Shape.cast(ly.weight_layout(EngineConfig(pe="mult", weight_bits=6))).signed


def test_sizes():
    assert ly.act_word_layout(CFG).size == 3 * 6
    assert ly.out_word_layout(CFG).size == 2 * 6
    assert ly.weight_entry_layout(CFG).size == 3 * 2 * 4
    assert ly.weight_entry_words(CFG) == -(-24 // 7)
    assert ly.bias_entry_layout(CFG).size == CFG.bias_bits
    lo, hi = CFG.out_shift_range
    desc = ly.descriptor_layout(CFG)
    assert Shape.cast(desc["out_shift"].shape).signed


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(-32, 31), min_size=3, max_size=3))
def test_act_word_round_trip(lanes):
    layout = ly.act_word_layout(CFG)
    bits = ly.pack(layout, lanes)
    assert bits == layout.const(lanes).as_bits()
    assert ly.unpack(layout, bits) == lanes


def test_weight_entry_codes_are_raw_bits():
    layout = ly.weight_entry_layout(CFG)
    codes = [[1, 2, 15], [7, 0, 9]]
    bits = ly.pack(layout, codes)
    back = ly.unpack(layout, bits)
    code = nx.weight_code_layout(4)
    assert back[1][2] == ly.unpack(code, 9) == {"shift": 1, "sign": 1}
    assert ly.pack(layout, [[ly.pack(code, c) for c in row] for row in back]) == bits


def test_pack_checks_ranges():
    with pytest.raises(ValueError, match="does not fit"):
        ly.pack(ly.act_word_layout(CFG), [32, 0, 0])
    with pytest.raises(ValueError, match="lanes"):
        ly.pack(ly.act_word_layout(CFG), [0, 0, 0, 0])


def test_descriptor_round_trip_and_checks():
    fields = dict(k_tiles=5, n_tiles=1, count=7, out_shift=-7, relu=True, round_half_up=False,
                  reload=True)
    bits = ly.pack_descriptor(CFG, **fields)
    back = ly.unpack_descriptor(CFG, bits)
    assert back == {"reload": 1, "relu": 1, "round_half_up": 0, "out_shift": -7, "k_tiles": 5,
                    "n_tiles": 1, "count": 7}
    for bad, word in [(dict(k_tiles=0), "k_tiles"), (dict(k_tiles=6), "k_tiles"),
                      (dict(n_tiles=2), "n_tiles"), (dict(out_shift=-8), "out_shift"),
                      (dict(out_shift=CFG.acc_bits + 1), "out_shift")]:
        with pytest.raises(ValueError, match=word):
            ly.pack_descriptor(CFG, **{**fields, **bad})


def test_split_join():
    words = ly.split_words(0b1011001110, 10, 4)
    assert words == [0b1110, 0b1100, 0b10]
    assert ly.join_words(words, 4) == 0b1011001110


def test_describe_layout_offsets():
    recs = ly.describe_layout(ly.descriptor_layout(CFG))
    names = [r["field"] for r in recs]
    assert names[:3] == ["reload", "relu", "round_half_up"]
    offsets = [r["offset"] for r in recs]
    assert offsets == sorted(offsets)
    entry = ly.describe_layout(ly.weight_entry_layout(CFG))[0]
    assert entry["count"] == 2 and entry["stride"] == 12
    assert entry["element"][0]["element"][0]["field"] == "shift"
