"""Pack flip-flops that register block-RAM read data into the ECP5 DP16KD output register.

Yosys 0.70 maps the engine's buffers to DP16KD blocks in ``REGMODE = "NOREG"``: the read data
leaves the block RAM straight from its array, 5.83 ns after the clock in nextpnr's ECP5 model,
the slowest start of a path the engine has.  The generator already registers that data before
any logic (the PE array's input register), so the register can move *into* the block RAM, as
vendor tools do: with ``REGMODE = "OUTREG"`` the DP16KD's output register loads the data the
array read in the previous cycle, when its ``OCE`` is high; clock-to-out is then 0.96 ns.

A DP16KD is packed only when that is exactly equivalent: every read-data bit that has a load
drives a single ``TRELLIS_FF`` data input and nothing else, every such flip-flop is clocked
by the block RAM's read clock, has no set/reset and no inversion, and all of them share one
clock enable (or none), which becomes ``OCEA``/``OCEB``.  (In the 36-bit mode Yosys uses, the
read data comes out on both the A and B data pins, so both ports get the output register.)
The flip-flops are removed and their outputs driven by the block RAM.  Nothing else changes;
the pass works on Yosys' JSON netlist before nextpnr reads it.
"""

from __future__ import annotations

from collections import defaultdict

__all__ = ["pack_output_registers"]


def _top(netlist: dict) -> dict:
    mods = netlist.get("modules", {})
    tops = [m for m, d in mods.items() if str(d.get("attributes", {}).get("top", "0")) not in
            ("0", "00000000000000000000000000000000")]
    if len(tops) != 1:
        raise ValueError(f"netlist: expected one top module, found {len(tops)}")
    return mods[tops[0]]


def _loads(module: dict) -> dict[int, list[tuple[str, str]]]:
    """Net bit -> the (cell, port) inputs it drives; module outputs count as loads too."""
    loads: dict[int, list[tuple[str, str]]] = defaultdict(list)
    for name, cell in module.get("cells", {}).items():
        dirs = cell.get("port_directions", {})
        for port, bits in cell.get("connections", {}).items():
            if dirs.get(port, "input") != "output":
                for b in bits:
                    if isinstance(b, int):
                        loads[b].append((name, port))
    for name, port in module.get("ports", {}).items():
        if port.get("direction") != "input":
            for b in port.get("bits", []):
                if isinstance(b, int):
                    loads[b].append(("<port>", name))
    return loads


def _plain_ff(cell: dict, clock) -> tuple[bool, object]:
    """(whether ``cell`` is a TRELLIS_FF that may become an output register, its enable)."""
    if cell.get("type") != "TRELLIS_FF":
        return False, None
    p, c = cell.get("parameters", {}), cell.get("connections", {})
    if str(p.get("CLKMUX", "CLK")).strip() != "CLK" or c.get("CLK") != clock:
        return False, None
    lsr = c.get("LSR", ["0"])
    if lsr not in (["0"], [0]) and str(p.get("LSRMUX", "LSR")).strip() != "0":
        return False, None
    cemux = str(p.get("CEMUX", "1")).strip()
    if cemux == "1":
        return True, "1"
    if cemux == "CE":
        return True, c.get("CE", ["1"])[0]
    return False, None          # an inverted enable


def pack_output_registers(netlist: dict) -> int:
    """Pack eligible read-data flip-flops into DP16KD output registers, in place.

    Returns the number of flip-flops packed (0 when no block RAM qualifies).
    """
    module = _top(netlist)
    cells = module.get("cells", {})
    loads = _loads(module)
    packed = 0
    for ram in list(cells.values()):
        if ram.get("type") != "DP16KD":
            continue
        params, conns = ram.get("parameters", {}), ram.get("connections", {})
        if any(str(params.get(k, "NOREG")) != "NOREG" for k in ("REGMODE_A", "REGMODE_B")):
            continue
        if (str(params.get("CLKAMUX", "CLKA")).strip() != "CLKA"
                or str(params.get("CLKBMUX", "CLKB")).strip() != "CLKB"
                or conns.get("CLKA") != conns.get("CLKB")):
            continue           # inverted or two clocks: leave it alone
        clock = conns.get("CLKB")
        moves, enables, ok = [], set(), True
        for port, bits in conns.items():
            if not port.startswith("DO") or not bits or not isinstance(bits[0], int):
                continue
            users = loads.get(bits[0], [])
            if not users:
                continue
            if len(users) != 1 or users[0][1] != "DI":
                ok = False
                break
            ff_name = users[0][0]
            plain, enable = _plain_ff(cells.get(ff_name, {}), clock)
            if not plain:
                ok = False
                break
            moves.append((port, ff_name))
            enables.add(enable)        # a net number, or the constant "1"
        if not ok or not moves or len(enables) != 1:
            continue
        bit = enables.pop()
        for reg in ("REGMODE_A", "REGMODE_B"):
            params[reg] = "OUTREG"
        conns["OCEA"] = [bit]
        conns["OCEB"] = [bit]
        for port, ff_name in moves:
            conns[port] = list(cells[ff_name]["connections"]["Q"])
            del cells[ff_name]
            packed += 1
    return packed
