"""Generated hardware: the shift PE array, the layer engine around it, and a multiplier baseline.

Modules (see ``docs/hardware.md``): :mod:`.config` (``EngineConfig``), :mod:`.layouts` (every
stream word), :mod:`.pe`, :mod:`.array`, :mod:`.output`, :mod:`.engine` (the Amaranth
components), :mod:`.host` (plain-Python driver and golden functions), :mod:`.simutil`
(amaranth.sim helpers), :mod:`.generate` (Verilog and manifest), :mod:`.board` and
:mod:`.synth` (board tops, Yosys and nextpnr figures).
"""
