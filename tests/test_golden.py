"""The golden model against a term-by-term reference, and its narrow-accumulator order."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shifthw import golden, numerics as nx
from shifthw.program import Flatten, InputSpec, MaxPool2d, Program, ShiftLayer


def ref_acc(x, codes, bias, b, g, acc_bits=None, chunk=None):
    m, k = x.shape
    out = np.zeros((m, codes.shape[0]), dtype=object)
    for i in range(m):
        for n in range(codes.shape[0]):
            terms = [nx.shift_term(int(x[i, j]), int(codes[n, j]), b, g) for j in range(k)]
            if acc_bits is None:
                out[i, n] = int(bias[n]) + sum(terms)
                continue
            acc = int(bias[n])
            for j0 in range(0, k, chunk):
                acc = nx.saturate(acc + sum(terms[j0:j0 + chunk]), acc_bits)
            out[i, n] = acc
    return out


@given(data=st.data(), b=st.integers(2, 6), a=st.integers(2, 10), m=st.integers(1, 3),
       k=st.integers(1, 12), n=st.integers(1, 5))
@settings(max_examples=60, deadline=None)
def test_shift_matmul_against_terms(data, b, a, m, k, n):
    g = data.draw(st.integers(0, nx.max_shift(b)))
    rng = np.random.default_rng(data.draw(st.integers(0, 2 ** 32 - 1)))
    x = rng.integers(nx.act_min(a), nx.act_max(a) + 1, (m, k))
    codes = rng.integers(0, 2 ** b, (n, k))
    arith = nx.LayerArith(act_bits=a, weight_bits=b, guard_bits=g, exponent=0, frac_in=0,
                          frac_out=0, fan_in=k)
    lim = nx.bias_limit(arith.acc_bits)
    bias = rng.integers(-lim - 1, lim + 1, n)
    got = golden.shift_matmul(x, codes, bias, arith)
    assert (got == ref_acc(x, codes, bias, b, g)).all()
    # The natural width never overflows.
    top = 2 ** (arith.acc_bits - 1)
    assert (np.asarray(got, dtype=object) < top).all() and (np.asarray(got) >= -top).all()


def test_narrow_accumulator_saturates_in_chunk_order():
    b, a, g, k = 5, 8, 0, 10
    x = np.full((1, k), 127)
    codes = np.array([[nx.encode_weight(1, 0, b)] * 5 + [nx.encode_weight(-1, 0, b)] * 5])
    arith = nx.LayerArith(act_bits=a, weight_bits=b, guard_bits=g, exponent=0, frac_in=0,
                          frac_out=0, fan_in=k, acc_bits=10)
    got = golden.shift_matmul(x, codes, np.array([0]), arith, chunk=4)
    # 4*127 = 508 fits; +127-3*127 -> 254; -2*127 -> 0, all within +-511 except none.
    assert int(got[0, 0]) == int(ref_acc(x, codes, [0], b, g, 10, 4)[0, 0])
    x2 = np.full((1, k), 127)
    codes2 = np.array([[nx.encode_weight(1, 0, b)] * 8 + [nx.encode_weight(-1, 0, b)] * 2])
    got2 = golden.shift_matmul(x2, codes2, np.array([0]), arith, chunk=4)
    # 508, then 1016 saturates to 511, then 511 - 254 = 257: order matters.
    assert int(got2[0, 0]) == 257


def test_narrow_accumulator_above_62_bits_saturates_exactly():
    # b = 8 with every guard bit: a 150-bit natural width, held as Python ints; a 100-bit
    # accumulator saturates them without going through int64.
    b, a, k = 8, 8, 6
    g = nx.max_shift(b)
    rng = np.random.default_rng(3)
    x = rng.integers(-128, 128, (2, k))
    codes = np.array([[nx.encode_weight(1, 0, b)] * k, list(rng.integers(0, 2 ** b, k))])
    arith = nx.LayerArith(act_bits=a, weight_bits=b, guard_bits=g, exponent=0, frac_in=0,
                          frac_out=0, fan_in=k, acc_bits=100)
    bias = np.array([2 ** 98, -(2 ** 99)], dtype=object)
    got = golden.shift_matmul(x, codes, bias, arith, chunk=2)
    assert (got == ref_acc(x, codes, bias, b, g, 100, 2)).all()
    assert got.max() <= 2 ** 99 - 1 and got.min() >= -(2 ** 99)


def tiny_program(relu=True, g_frac=3):
    rng = np.random.default_rng(1)
    conv = ShiftLayer(name="c1", kind="conv2d", codes=rng.integers(0, 32, (3, 2 * 9)),
                      bias_fine=[5000, -7000, 123], exponent=0, frac_in=4, frac_out=g_frac,
                      relu=relu, in_channels=2, kernel_size=(3, 3), padding=(1, 1))
    lin = ShiftLayer(name="fc", kind="linear", codes=rng.integers(0, 32, (4, 3 * 2 * 2)),
                     bias_fine=[0, 1, -1, 99999], exponent=1, frac_in=g_frac, frac_out=2,
                     relu=False)
    return Program(act_bits=8, weight_bits=5, input=InputSpec((2, 5, 5), 4),
                   steps=[conv, MaxPool2d("p", (2, 2), (2, 2)), Flatten("f"), lin])


def test_conv_equals_loop_reference():
    prog = tiny_program()
    rng = np.random.default_rng(2)
    xq = rng.integers(-128, 128, (2, 2, 5, 5))
    run = golden.run_program(prog, xq, quantized=True, guard_bits=3)
    conv = prog.steps[0]
    bias = conv.bias_q(prog, 3)
    arith = conv.arith(prog, 3)
    xp = np.pad(xq, ((0, 0), (0, 0), (1, 1), (1, 1)))
    for bi in range(2):
        for o in range(3):
            for i in range(5):
                for j in range(5):
                    acc = int(bias[o])
                    for c in range(2):
                        for di in range(3):
                            for dj in range(3):
                                acc += nx.shift_term(int(xp[bi, c, i + di, j + dj]),
                                                     int(conv.codes[o, c * 9 + di * 3 + dj]),
                                                     5, 3)
                    want = nx.requantize(acc, arith.out_shift, 8, relu=True)
                    assert run.outputs[0][bi, o, i, j] == want
    pooled = run.outputs[1]
    assert pooled.shape == (2, 3, 2, 2)
    assert pooled[0, 1, 1, 0] == run.outputs[0][0, 1, 2:4, 0:2].max()
    assert run.outputs[2].shape == (2, 12)
    assert run.predictions().shape == (2,)


def test_bias_derivation_per_guard_bits():
    prog = tiny_program()
    conv = prog.steps[0]
    # bias_fine is at G = P = 14; G = 3 drops 11 bits with floor.
    assert conv.bias_q(prog, 3).tolist()[:2] == [5000 >> 11, -7000 >> 11]
    assert conv.bias_q(prog, 14).tolist()[:2] == [5000, -7000]


def test_run_program_rejects_bad_inputs():
    prog = tiny_program()
    with pytest.raises(ValueError, match="shape"):
        golden.run_program(prog, np.zeros((1, 3, 5, 5)))
    with pytest.raises(ValueError, match="guard_bits"):
        golden.run_program(prog, np.zeros((1, 2, 5, 5)), guard_bits=15)


def test_input_batches_are_reshaped_only_in_their_element_order():
    from shifthw.golden import quantize_input, run_program
    from shifthw.rtl_gen.host import random_program

    cnn, mlp = random_program("cnn"), random_program("mlp")        # (1, 8, 8) and (64,)
    x = np.random.default_rng(0).uniform(-1, 1, size=(2, 1, 8, 8))
    flat = quantize_input(cnn, x.reshape(2, 64))                   # flat rows: fine
    assert np.array_equal(flat, quantize_input(cnn, x))
    assert quantize_input(mlp, x).shape == (2, 64)                 # images into an MLP
    with pytest.raises(ValueError, match=r"input batch has shape \(2, 8, 8, 1\), program "
                                         r"expects \(B,\) \+ \(1, 8, 8\)"):
        quantize_input(cnn, x.transpose(0, 2, 3, 1))               # channels last: refused
    with pytest.raises(ValueError, match="input batch has shape"):
        run_program(cnn, np.zeros((2, 8, 8, 1), dtype=np.int64), quantized=True)
