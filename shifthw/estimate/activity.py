"""Switching activity of a model on the engine: Verilator runs, VCD toggles per component.

:func:`measure_activity` runs a few images of a program through the generated engine in
Verilator with a VCD trace (:func:`shifthw.sim.verify.simulate_program` for shift PEs; the
same layers, with the same layer inputs, as multiplier jobs for the baseline) and counts the
bit toggles of every net of the engine, per component.

The VCD (tens of MB for a large run) is read by a streaming reader of our own
(:func:`read_vcd`).  One net often appears under several names: a port in the parent and in
the child, a struct field and its whole, a memory's read data and the array's input bus.
Input ports and field views are skipped (their nets are declared where they are driven);
the remaining bits that toggle at exactly the same times (at least four times: fewer may
coincide by chance) are one net (a parent's wire for a child's output, a concatenation, a
sign extension, a replicated bus), counted once and charged to one component: that of its
deepest declaration, one whose name matches a rule of :mod:`.hierarchy` before one that does
not, a named one before an unnamed one.
"""

from __future__ import annotations

import math
import re
import shutil
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from .. import numerics as nx
from ..program import Program, ShiftLayer
from ..rtl_gen.config import EngineConfig
from ..rtl_gen.host import LayerJob, golden_program, layer_job, layer_rows
from .hierarchy import COMPONENTS, ENGINE, net_rules, scope_component

__all__ = ["VcdData", "read_vcd", "verilog_ports", "verilog_dataflow", "net_toggles",
           "mult_weights", "shift_jobs", "mult_jobs", "measure_activity"]

_MASK64 = (1 << 64) - 1
#: Bits of one declaration with identical toggle times and at least this many toggles are
#: taken as one net (fewer may coincide by chance).
_SAME_NET_TOGGLES = 4


class VcdData:
    """What :func:`read_vcd` keeps: declarations and every code's value changes.

    Attributes
    ----------
    decls : list of ``(scope tuple, name, code, width)``.
    changes : ``{code: (times, values)}`` (lists of ints; x and z read as 0).
    end_time : the last timestamp.
    """

    def __init__(self):
        self.decls: list[tuple[tuple[str, ...], str, str, int]] = []
        self.changes: dict[str, tuple[list[int], list[int]]] = {}
        self.end_time = 0


def read_vcd(path) -> VcdData:
    """Read a VCD file line by line (it is never held in memory whole)."""
    data = VcdData()
    scope: list[str] = []
    widths: dict[str, int] = {}
    table = str.maketrans("xXzZ", "0000")
    with open(path, encoding="ascii", errors="replace") as fh:
        for line in fh:
            if line.startswith("$enddefinitions"):
                break
            tok = line.split()
            if not tok:
                continue
            if tok[0] == "$scope":
                scope.append(tok[2])
            elif tok[0] == "$upscope":
                scope.pop()
            elif tok[0] == "$var":
                width, code, name = int(tok[2]), tok[3], tok[4]
                data.decls.append((tuple(scope), name, code, width))
                widths[code] = width
        changes = {code: ([], []) for code in widths}
        t = 0
        for line in fh:
            c = line[0] if line else ""
            if c == "#":
                t = int(line[1:])
            elif c == "b":
                value, code = line[1:].split()
                entry = changes.get(code)
                if entry is not None:
                    entry[0].append(t)
                    entry[1].append(int(value.translate(table), 2))
            elif c in "01xzXZ":
                code = line[1:].strip()
                entry = changes.get(code)
                if entry is not None:
                    entry[0].append(t)
                    entry[1].append(1 if c == "1" else 0)
        data.end_time = t
    data.changes = changes
    return data


def _splitmix(x: np.ndarray) -> np.ndarray:
    """A 64-bit mix of every time stamp: the weights of the toggle-time hash."""
    with np.errstate(over="ignore"):
        z = (x.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15))
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def _bit_stats(times: list[int], values: list[int], width: int):
    """(toggles per bit, toggle-time hash per bit) of one code's changes."""
    if len(values) < 2:
        return np.zeros(width, dtype=np.int64), np.zeros(width, dtype=np.uint64)
    t = _splitmix(np.asarray(times[1:], dtype=np.int64))
    toggles = np.zeros(width, dtype=np.int64)
    hashes = np.zeros(width, dtype=np.uint64)
    prev = values[:-1]
    xors = [a ^ b for a, b in zip(prev, values[1:])]
    for lo in range(0, width, 64):
        n = min(64, width - lo)
        chunk = np.asarray([(x >> lo) & _MASK64 for x in xors], dtype=np.uint64)
        bits = ((chunk[:, None] >> np.arange(n, dtype=np.uint64)) & np.uint64(1))
        toggles[lo:lo + n] = bits.sum(axis=0)
        with np.errstate(over="ignore"):
            hashes[lo:lo + n] = (bits * t[:, None]).sum(axis=0, dtype=np.uint64)
    return toggles, hashes


def verilog_ports(text: str) -> dict[str, set[str]]:
    """Input ports of every module of a Verilog file: ``{module: {port, ...}}``."""
    ports: dict[str, set[str]] = {}
    current = None
    for line in text.splitlines():
        m = re.match(r"\s*module\s+(\\\S+|\w+)", line)
        if m:
            current = m.group(1).lstrip("\\")
            ports[current] = set()
            continue
        m = re.match(r"\s*input\s+(?:signed\s+)?(?:\[[^\]]*\]\s*)?(\\\S+|\w+)\s*;", line)
        if m and current is not None:
            ports[current].add(m.group(1).lstrip("\\"))
    return ports


_NUMBER = re.compile(r"\d*'[sS]?[bBhHdDoO][0-9a-fA-FxXzZ_?]+")
_IDENT = re.compile(r"\\\S+|[A-Za-z_][A-Za-z0-9_$]*")
_KEYWORDS = {"always", "posedge", "negedge", "begin", "end", "if", "else", "case", "casez",
             "endcase", "assign", "reg", "wire", "input", "output", "signed", "default",
             "initial"}


def verilog_dataflow(text: str, module: str, rules) -> dict[str, str]:
    """Component of the unnamed (``$N``) nets of ``module``: that of the named nets they feed.

    A light reading of Amaranth's Verilog: in every statement, each identifier other than
    the assigned one feeds the assigned one.
    """
    m = re.search(r"^module\s+\\?" + re.escape(module) + r"\s*\(.*?^endmodule", text,
                  re.S | re.M)
    if not m:
        return {}
    body = re.sub(r"\(\*.*?\*\)", "", m.group(0))
    feeds = defaultdict(set)
    for stmt in body.split(";"):
        stmt = _NUMBER.sub(" ", stmt)
        asg = re.search(r"(\\\S+|[A-Za-z_][A-Za-z0-9_$]*)\s*(?:\[[^\]]*\]\s*)?<?=(?!=)", stmt)
        if not asg:
            continue
        lhs = asg.group(1).lstrip("\\")
        for ident in _IDENT.findall(stmt):
            name = ident.lstrip("\\")
            if name != lhs and name not in _KEYWORDS:
                feeds[name].add(lhs)
    comp = {}
    for net in [n for n in feeds if n.startswith("$")]:
        seen, frontier, found = {net}, [net], None
        while frontier and not found:
            nxt = []
            for n in frontier:
                for d in sorted(feeds.get(n, ())):
                    hit = next((c for rx, c in rules if rx.match(d)), None)
                    if hit:
                        found = hit
                        break
                    if d not in seen:
                        seen.add(d)
                        nxt.append(d)
                if found:
                    break
            frontier = nxt
        if found:
            comp[net] = found
    return comp


def net_toggles(vcd: VcdData, verilog_text: str, engine_scope: tuple[str, ...]) -> dict:
    """Toggles and net bits per component of a VCD of the engine (see the module docstring).

    ``engine_scope`` is the VCD scope of the engine instance; everything outside it is
    ``harness``.
    """
    inputs = verilog_ports(verilog_text)
    dataflow = verilog_dataflow(verilog_text, f"{ENGINE}.array", net_rules("array"))
    n = len(engine_scope)
    names_in = defaultdict(set)
    for scope, name, _, _ in vcd.decls:
        names_in[scope].add(name)
    by_code = defaultdict(list)
    for scope, name, code, width in vcd.decls:
        if scope[:n] == engine_scope:
            below = scope[n:]
            base = re.split(r"[.\[]", name, maxsplit=1)[0]
            if base in inputs.get(ENGINE + "".join("." + s for s in below), ()):
                continue            # an input port: its driver is declared elsewhere
            if base != name and base in names_in[scope]:
                continue            # a field or element view of a declared whole
        by_code[code].append((scope, name, width))
    groups: dict = defaultdict(lambda: {"toggles": 0, "decls": []})
    for code, decls in by_code.items():
        width = max(w for _, _, w in decls)
        times, values = vcd.changes.get(code, ([], []))
        toggles, hashes = _bit_stats(times, values, width)
        for bit in range(width):
            t = int(toggles[bit])
            # Bits that toggle at the same times are one net (an alias, a sign extension,
            # a replicated bus); bits with only a few toggles may coincide by chance.
            key = (t, int(hashes[bit])) if t >= _SAME_NET_TOGGLES else (code, bit)
            g = groups[key]
            g["toggles"] = t
            g["decls"].extend((scope, name) for scope, name, w in decls if bit < w)

    def rank(decl):
        scope, name = decl
        inside = scope[:n] == engine_scope
        below = scope[n:] if inside else ()
        rules = net_rules("array" if below == ("array",) else "engine" if not below else "")
        ruled = inside and any(rx.match(name) for rx, _ in rules)
        return (inside, len(below), ruled, not name.startswith("$"))

    toggles = dict.fromkeys((*COMPONENTS, "harness"), 0)
    bits = dict.fromkeys((*COMPONENTS, "harness"), 0)
    for g in groups.values():
        scope, name = max(g["decls"], key=rank)
        if scope[:n] != engine_scope:
            comp = "harness"
        else:
            comp = scope_component(scope[n:], name, dataflow)
        toggles[comp] += g["toggles"]
        bits[comp] += 1
    return {"toggles": toggles, "net_bits": bits, "end_time": vcd.end_time}


def mult_weights(codes: np.ndarray, weight_bits: int, mult_bits: int) -> np.ndarray:
    """The layer's shift weights as ``mult_bits``-bit integers (symmetric, per layer).

    Scale so that the largest magnitude in the layer becomes ``2**(mult_bits-1) - 1``, then
    round: the usual per-tensor integer quantisation of the same weights.
    """
    sign, shift = nx.decode_weight(np.asarray(codes), weight_bits)
    live = sign != 0
    if not live.any():
        return np.zeros(np.shape(codes), dtype=np.int64)
    top = (1 << (mult_bits - 1)) - 1
    smin = int(shift[live].min())
    mag = np.where(live, np.floor(top * np.exp2(smin - shift.astype(np.float64)) + 0.5), 0)
    return (sign * mag).astype(np.int64)


def shift_jobs(program: Program, cfg: EngineConfig, xq) -> list:
    """``[(LayerJob, rows)]``: every shift layer of ``program`` as a job for the shift engine
    ``cfg``, on the images ``xq``, each layer on the golden model's input to it."""
    ref = golden_program(program, cfg, xq)
    inputs = [ref.input] + ref.outputs[:-1]
    return [(layer_job(program, step, cfg), layer_rows(step, x)[0])
            for step, x in zip(program.steps, inputs) if isinstance(step, ShiftLayer)]


def mult_jobs(program: Program, cfg: EngineConfig, mult_cfg: EngineConfig, xq) -> list:
    """``[(LayerJob, rows)]``: every shift layer as a multiplier job, on the same inputs.

    Each layer's input is the golden model's input to it (what the shift engine computes),
    its weights :func:`mult_weights`, its bias and output shift rescaled to the integer
    weights' scale, so that the multiplier engine sees the same data.
    """
    jobs = []
    layers = [step for step in program.steps if isinstance(step, ShiftLayer)]
    for step, (sj, rows) in zip(layers, shift_jobs(program, cfg, xq)):
        w = mult_weights(step.codes, program.weight_bits, mult_cfg.weight_bits)
        sign, shift = nx.decode_weight(step.codes, program.weight_bits)
        smin = int(shift[sign != 0].min()) if (sign != 0).any() else 0
        # shift terms are x * 2**(G - p); integer products x * top * 2**(smin - p)
        ratio = ((1 << (mult_cfg.weight_bits - 1)) - 1) * 2.0 ** (smin - cfg.guard_bits)
        lim = nx.bias_limit(mult_cfg.acc_bits)
        bias = np.clip(np.floor(sj.bias * ratio), -lim - 1, lim).astype(np.int64)
        out_shift = sj.out_shift + int(round(math.log2(ratio)))
        jobs.append((LayerJob(weights=w, bias=bias, out_shift=out_shift, relu=sj.relu,
                              round_half_up=sj.round_half_up, name=f"{step.name} (mult)"),
                     rows))
    return jobs


def _run_mult(program, cfg, mult_cfg, xq, folder: Path) -> dict:
    from ..sim.verify import build_engine, simulate_jobs

    res = simulate_jobs(mult_jobs(program, cfg, mult_cfg, xq), mult_cfg, folder,
                        sim=build_engine(mult_cfg, waves=True))
    res["total_cycles"] = sum(lay["cycles"] for lay in res["layers"])
    return res


def measure_activity(program: Program, cfg: EngineConfig, xq, *,
                     mult_cfg: EngineConfig | None = None, work_dir=None,
                     keep_vcd: bool = False) -> dict:
    """Toggles per component of ``xq`` (B images) through the shift engine ``cfg``, or through
    the multiplier engine ``mult_cfg`` (the same layers as :func:`mult_jobs`).

    Returns ``toggles`` and ``net_bits`` per component (whole run), ``images``,
    ``cycles`` (harness cycles of all layers), ``mismatches`` (outputs that differ from
    golden: must be 0), ``vcd_bytes``, ``sim_seconds`` and ``parse_seconds``.
    """
    from ..sim.harness import HARNESS_TOP
    from ..sim.verify import engine_verilog, simulate_program

    xq = np.asarray(xq, dtype=np.int64)
    owned = work_dir is None
    folder = Path(tempfile.mkdtemp(prefix="shifthw-activity-")) if owned else Path(work_dir)
    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    try:
        if mult_cfg is None:
            res = simulate_program(program, cfg, xq, waves=True, work_dir=folder)
            design = cfg
        else:
            res = _run_mult(program, cfg, mult_cfg, xq, folder)
            design = mult_cfg
        t1 = time.perf_counter()
        vcds = sorted(folder.glob("dump.*"))
        if not vcds:
            raise RuntimeError(f"the simulation in {folder} wrote no waveform")
        if vcds[0].suffix != ".vcd":
            raise RuntimeError(f"{vcds[0]}: only VCD waveforms can be read (Verilator wrote "
                               f"FST because lz4.h is installed); activity needs VCD")
        size = vcds[0].stat().st_size
        counts = net_toggles(read_vcd(vcds[0]), engine_verilog(design), (HARNESS_TOP, "dut"))
        if not keep_vcd:
            vcds[0].unlink()
    finally:
        if owned:
            shutil.rmtree(folder, ignore_errors=True)
    return {"toggles": counts["toggles"], "net_bits": counts["net_bits"],
            "images": int(len(xq)), "cycles": int(res["total_cycles"]),
            "mismatches": int(sum(lay["mismatches"] for lay in res["layers"])),
            "vcd_bytes": size, "sim_seconds": t1 - t0,
            "parse_seconds": time.perf_counter() - t1}
