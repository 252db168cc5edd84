"""Simulation speed of the cocotb harness beside plain Verilator's ceiling, in one run.

1. `shifthw flow`'s path: the digits CNN's whole test split through the 8x8 engine in the
   free-running harness under cocotb (the cached build, C++ at $SHIFTHW_CXX_OPT or -O0).
2. The ceiling: the very same harness and run files, built with `verilator --binary` (no cocotb,
   no VPI, a SystemVerilog clock) at -O2 and replayed; only the simulation loop is timed.

Prints simulated cycles per second of both and their ratio. A benchmark, not a test:

    python benchmarks/sim_speed.py [--model cnn] [--images 360]
"""

from __future__ import annotations

import argparse
import subprocess
import tempfile
import time
from pathlib import Path

from shifthw import golden, toolchain
from shifthw.models.data import load_digits_split
from shifthw.rtl_gen.config import EngineConfig
from shifthw.sim.flow import load_source
from shifthw.sim.harness import harness_verilog
from shifthw.sim.verify import ENGINE_TOP, engine_ports, engine_verilog, simulate_program

TB = """
module bench_top;
    reg clk = 0, rst = 1;
    wire done;
    wire [63:0] cycles, src_blocked;
    integer runs, r;
    shifthw_harness h(.clk(clk), .rst(rst), .seed(32'd1), .source_stall(16'd0),
                      .sink_stall(16'd0), .done(done), .cycles(cycles),
                      .src_blocked(src_blocked));
    always #5 clk = ~clk;
    initial begin
        if (!$value$plusargs("runs=%d", runs)) runs = 1;
        for (r = 0; r < runs; r = r + 1) begin
            rst = 1;
            repeat (3) @(posedge clk);
            rst = 0;
            @(posedge done);
            $display("run %0d cycles %0d", r, cycles);
        end
        $finish;
    end
endmodule
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="cnn")
    ap.add_argument("--images", type=int, default=360)
    args = ap.parse_args()
    program, _ = load_source(args.model)
    cfg = EngineConfig(rows=8, cols=8, act_bits=program.act_bits,
                       weight_bits=program.weight_bits)
    _, _, x, _ = load_digits_split()
    xq = golden.quantize_input(program, x.numpy()[:args.images])
    work = Path(tempfile.mkdtemp(prefix="shifthw-speed-"))
    res = simulate_program(program, cfg, xq, work_dir=work / "cocotb")
    runs = len(res["layers"])
    cocotb_rate = res["total_cycles"] / res["sim_wall_seconds"]

    ceiling = work / "ceiling"
    ceiling.mkdir()
    (ceiling / "engine.v").write_text(engine_verilog(cfg))
    (ceiling / "harness.sv").write_text(harness_verilog(ENGINE_TOP, engine_ports(cfg)))
    (ceiling / "tb.sv").write_text(TB)
    t0 = time.perf_counter()
    toolchain.run_verilator(["--binary", "--timing", "-Wno-fatal", "-O3", "--top-module",
                             "bench_top", "-CFLAGS", "-O2", "-j", "2", "--Mdir", "obj",
                             "tb.sv", "harness.sv", "engine.v"], cwd=ceiling)
    build_s = time.perf_counter() - t0
    # Replay the cocotb run's input files: same words, same counts, no stalls.
    for f in (work / "cocotb").glob("run*_*"):
        (ceiling / f.name).write_bytes(f.read_bytes())
    t1 = time.perf_counter()
    out = subprocess.run([str(ceiling / "obj" / "Vbench_top"), f"+runs={runs}"], cwd=ceiling,
                         capture_output=True, text=True, check=True, env=toolchain.tool_env())
    wall = time.perf_counter() - t1
    cycles = sum(int(line.split()[-1]) for line in out.stdout.splitlines()
                 if line.startswith("run "))
    ceiling_rate = cycles / wall
    print(f"model {args.model}, {len(xq)} images, {runs} layer runs, {cycles} cycles "
          f"(cocotb run: {res['total_cycles']})")
    print(f"cocotb + harness (shifthw verify's path): {cocotb_rate / 1e3:8.0f} k cycles/s "
          f"({res['sim_wall_seconds']:.2f} s)")
    print(f"plain Verilator --binary -O2 ceiling:     {ceiling_rate / 1e3:8.0f} k cycles/s "
          f"({wall:.2f} s incl. process start; built in {build_s:.0f} s)")
    print(f"ratio: {cocotb_rate / ceiling_rate:.2f} of the ceiling")


if __name__ == "__main__":
    main()
