"""Switching activity: the VCD reader, de-duplication and attribution, and a real run."""

import textwrap

import numpy as np
import pytest

from shifthw import numerics as nx
from shifthw.estimate.activity import (measure_activity, mult_jobs, mult_weights, net_toggles,
                                       read_vcd, verilog_dataflow)
from shifthw.estimate.hierarchy import net_rules
from shifthw.rtl_gen.config import EngineConfig

from .conftest import TINY, linear_program

VERILOG = textwrap.dedent("""\
    module shifthw_engine(clk, act__payload);
      input clk;
      input [7:0] act__payload;
    endmodule
    module \\shifthw_engine.array (clk, i__payload);
      input clk;
      input [3:0] i__payload;
      wire [5:0] \\$14 ;
      reg [5:0] acc_0 = 6'h00;
      assign \\$14 = i__payload + 6'h01;
      always @(posedge clk)
        acc_0 <= \\$14 ;
    endmodule
    module \\shifthw_engine.array.pe_r0_c0 (w, term);
      input [3:0] w;
      output [4:0] term;
    endmodule
    """)

# harness payload == engine input; w_rd__data == array i__payload == PE w (aliases)
VCD = textwrap.dedent("""\
    $timescale 1ps $end
    $scope module shifthw_harness $end
     $var wire 8 ! src_payload [7:0] $end
     $scope module dut $end
      $var wire 8 " act__payload [7:0] $end
      $var wire 4 # w_rd__data [3:0] $end
      $var wire 4 $ is_row [3:0] $end
      $scope module array $end
       $var wire 4 % i__payload [3:0] $end
       $var wire 6 & acc_0 [5:0] $end
       $var wire 6 ' $14 [5:0] $end
       $scope module pe_r0_c0 $end
        $var wire 4 ( w [3:0] $end
        $var wire 5 ) term [4:0] $end
       $upscope $end
      $upscope $end
     $upscope $end
    $upscope $end
    $enddefinitions $end
    #0
    $dumpvars
    b0 !
    b0 "
    b0 #
    b0 $
    b0 %
    b0 &
    b0 '
    b0 (
    b0 )
    $end
    #10
    b1 !
    b1 "
    b11 #
    b11 %
    b11 (
    b1 $
    b1 '
    #20
    b11 !
    b11 "
    b0 #
    b0 %
    b0 (
    b10 $
    b1 &
    #30
    b111 !
    b111 "
    b1 #
    b1 %
    b1 (
    b11 $
    b11111 )
    """)


@pytest.fixture
def vcd(tmp_path):
    path = tmp_path / "dump.vcd"
    path.write_text(VCD)
    return read_vcd(path)


def test_reader(vcd):
    assert len(vcd.decls) == 9
    times, values = vcd.changes["$"]
    assert times == [0, 10, 20, 30] and values == [0, 1, 2, 3]
    assert vcd.end_time == 30


def test_dataflow_names_unnamed_nets_by_what_they_feed():
    flow = verilog_dataflow(VERILOG, "shifthw_engine.array", net_rules("array"))
    assert flow == {"$14": "accumulators"}


def test_aliases_count_once_for_the_driver(vcd):
    res = net_toggles(vcd, VERILOG, ("shifthw_harness", "dut"))
    t = res["toggles"]
    assert t["harness"] == 3                # the stimulus, not the engine's input port
    assert t["buffers"] == 5                # memory read data, not the array / PE inputs
    assert t["control"] == 4                # is_row: 0 -> 1 -> 2 -> 3
    assert t["accumulators"] == 2           # acc_0 and $14 (dataflow)
    assert t["pe_array"] == 5               # term
    assert res["net_bits"]["pe_array"] == 5


def test_mult_weights_are_the_same_weights_as_integers():
    codes = nx.encode_weight(np.array([1, -1, 1, 0, 1]), np.array([1, 2, 4, 0, 12]), 5)
    w = mult_weights(codes, 5, 8)
    assert w.tolist() == [127, -64, 16, 0, 0]      # largest -> 127, 2**-k scaled, tiny -> 0


def test_mult_jobs_keep_the_layer_shapes_and_inputs():
    prog = linear_program(k=8, n=4)
    cfg = EngineConfig(**TINY)
    mcfg = EngineConfig(**TINY, pe="mult")
    xq = np.random.default_rng(1).integers(-128, 128, size=(3, 8))
    (job, rows), = mult_jobs(prog, cfg, mcfg, xq)
    assert job.weights.shape == (4, 8) and np.abs(job.weights).max() <= 127
    assert np.array_equal(rows, xq)


@pytest.mark.slow
def test_real_runs_count_toggles_in_every_component(tmp_path):
    prog = linear_program(k=8, n=4)
    cfg = EngineConfig(**TINY)
    xq = np.random.default_rng(2).integers(-128, 128, size=(2, 8))
    for mult in (None, EngineConfig(**TINY, pe="mult")):
        work = tmp_path / ("mult" if mult is not None else "shift")
        res = measure_activity(prog, cfg, xq, mult_cfg=mult, work_dir=work)
        assert res["mismatches"] == 0 and res["images"] == 2
        for comp in ("pe_array", "adder_trees", "accumulators", "output_stage", "buffers",
                     "control"):
            assert res["toggles"][comp] > 0, (mult, comp)
        assert not list(work.glob("dump.vcd"))     # VCD removed
