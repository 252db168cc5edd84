"""A free-running SystemVerilog harness around a generated design, for long simulations.

cocotb costs 10-20 us of Python per awaited clock edge. For long runs (a whole test split) the
harness moves the per-cycle work into the simulator: every input stream of the design is fed
by a *source* that reads words from a text file (one hex word per line) and every output
stream is drained by a *sink* that writes words to a file. Sources drop ``valid`` and sinks drop
``ready`` at random (a per-stream LFSR, probability set at run time), so backpressure is
exercised on every stream. cocotb only starts the clock, pulses reset and awaits ``done``.

Each reset starts a new *run*: the harness (re)opens ``<dir>/run<N>_<stream>.hex`` for the
sources and ``<dir>/run<N>_<stream>.out`` for the sinks, with ``N`` counting resets from 0, and
reads the word counts from ``<dir>/run<N>_counts.hex`` (one line per stream, sources first, in
port order). So a cocotb bench can run a network layer by layer in one simulator process,
computing each layer's input from the previous layer's output between runs.
"""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["StreamPort", "harness_verilog", "HARNESS_TOP", "STALL_SCALE"]

#: Module name of the generated harness.
HARNESS_TOP = "shifthw_harness"
#: Stall probabilities are given to the harness in 1/STALL_SCALE units.
STALL_SCALE = 65536


@dataclass(frozen=True)
class StreamPort:
    """One stream port of the design: Amaranth names it ``<name>__payload/valid/ready``."""

    name: str
    width: int
    is_source: bool  # True: the harness drives it (a design input)


def _open(n: str, ext: str, mode: str) -> str:
    pad = " " * 12
    lines = [
        f'{n}_fd = $fopen($sformatf("%0s/run%0d_{n}.{ext}", dir, run), "{mode}");',
        f'if ({n}_fd == 0) $fatal(1, "harness: cannot open run%0d_{n}.{ext}", run);',
        'cfd = $fopen($sformatf("%0s/run%0d_' + n + '.count", dir, run), "r");',
        f'if (cfd == 0) $fatal(1, "harness: cannot open run%0d_{n}.count", run);',
        f'crc = $fscanf(cfd, "%d", {n}_left);',
        '$fclose(cfd);',
    ]
    return "".join(pad + line + "\n" for line in lines)


def _source(p: StreamPort, index: int) -> str:
    n, w = p.name, p.width
    seed = (0x1234567 * (index + 1)) & 0xFFFFFFFF | 1
    return f"""
    // ---- source {n}: {w}-bit words from run<N>_{n}.hex
    reg [{w - 1}:0] {n}_payload;
    reg {n}_valid;
    wire {n}_ready;
    reg [31:0] {n}_lfsr;
    integer {n}_fd = 0, {n}_left = 0, {n}_rc;
    reg [{w - 1}:0] {n}_word;
    always @(posedge clk) begin : src_{n}
        integer cfd, crc;
        {n}_lfsr <= {{{n}_lfsr[30:0], {n}_lfsr[31] ^ {n}_lfsr[21] ^ {n}_lfsr[1] ^ {n}_lfsr[0]}};
        if (rst) begin
            {n}_valid <= 1'b0;
            {n}_lfsr <= 32'h{seed:08x} ^ seed;
        end else if (starting) begin
            if ({n}_fd != 0) $fclose({n}_fd);
{_open(n, "hex", "r")}        end else if (!{n}_valid || {n}_ready) begin
            if ({n}_left > 0 && {n}_lfsr[15:0] >= source_stall) begin
                {n}_rc = $fscanf({n}_fd, "%h\\n", {n}_word);
                {n}_payload <= {n}_word;
                {n}_valid <= 1'b1;
                {n}_left = {n}_left - 1;
            end else begin
                {n}_valid <= 1'b0;
            end
        end
    end
"""


def _sink(p: StreamPort, index: int) -> str:
    n, w = p.name, p.width
    seed = (0x7654321 * (index + 3)) & 0xFFFFFFFF | 1
    return f"""
    // ---- sink {n}: {w}-bit words to run<N>_{n}.out
    wire [{w - 1}:0] {n}_payload;
    wire {n}_valid;
    reg {n}_ready;
    reg [31:0] {n}_lfsr;
    integer {n}_fd = 0, {n}_left = 0;
    always @(posedge clk) begin : sink_{n}
        integer cfd, crc;
        {n}_lfsr <= {{{n}_lfsr[30:0], {n}_lfsr[31] ^ {n}_lfsr[21] ^ {n}_lfsr[1] ^ {n}_lfsr[0]}};
        if (rst) begin
            {n}_ready <= 1'b0;
            {n}_lfsr <= 32'h{seed:08x} ^ seed;
        end else if (starting) begin
            if ({n}_fd != 0) $fclose({n}_fd);
{_open(n, "out", "w")}        end else begin
            {n}_ready <= {n}_left > 0 && {n}_lfsr[15:0] >= sink_stall;
            if ({n}_valid && {n}_ready) begin
                $fwrite({n}_fd, "%h\\n", {n}_payload);
                {n}_left = {n}_left - 1;
                $fflush({n}_fd);  // so a bench that times out can count what arrived
            end
        end
    end
"""


def harness_verilog(design_top: str, ports: list[StreamPort]) -> str:
    """SystemVerilog text of the harness instantiating ``design_top`` (clk, rst, streams).

    Ports of the harness: ``clk``, ``rst`` (inputs), ``seed`` (32-bit LFSR seed),
    ``source_stall``/``sink_stall`` (16-bit, stall probability x 65536), and outputs
    ``done`` (every sink has its word count), ``cycles`` (cycles since reset),
    ``src_blocked`` (source-valid-but-not-ready cycles, summed over sources).
    """
    sources = [p for p in ports if p.is_source]
    sinks = [p for p in ports if not p.is_source]
    if not sinks:
        raise ValueError("the design has no output stream to wait for")
    body = "".join(_source(p, i) for i, p in enumerate(sources))
    body += "".join(_sink(p, i) for i, p in enumerate(sinks))
    all_done = " && ".join(f"({p.name}_left == 0)" for p in sinks)
    blocked = " + ".join(f"64'({p.name}_valid && !{p.name}_ready)" for p in sources) or "0"
    conns = ["        .clk(clk)", "        .rst(rst)"]
    for p in ports:
        for sig in ("payload", "valid", "ready"):
            conns.append(f"        .{p.name}__{sig}({p.name}_{sig})")
    return f"""// Generated by shifthw.sim.harness: a free-running stream harness for {design_top}.
/* verilator lint_off DECLFILENAME */
/* verilator lint_off UNUSEDSIGNAL */
module {HARNESS_TOP} (
    input wire clk,
    input wire rst,
    input wire [31:0] seed,
    input wire [15:0] source_stall,
    input wire [15:0] sink_stall,
    output reg done = 1'b0,
    output reg [63:0] cycles = 0,
    output reg [63:0] src_blocked = 0
);
    reg [1023:0] dir;
    integer run = -1;
    reg rst_q = 1'b0;
    wire starting = rst_q && !rst;
{body}
    {design_top} dut (
{(","+chr(10)).join(conns)}
    );

    initial begin
        if (!$value$plusargs("shifthw_dir=%s", dir)) dir = ".";
    end

    // Runs are counted at the rising edge of reset; files open in the first cycle after it.
    always @(posedge clk) begin
        rst_q <= rst;
        if (rst && !rst_q) run <= run + 1;
        if (rst) begin
            done <= 1'b0;
            cycles <= 0;
            src_blocked <= 0;
        end else if (!starting && !done) begin
            cycles <= cycles + 1;
            src_blocked <= src_blocked + {blocked};
            if ({all_done}) done <= 1'b1;
        end
    end
endmodule
"""
