"""Verilog generation: files, manifest, atomic writes, lint, and the netlist's multipliers."""

import argparse
import json
import os

import pytest

from shifthw import numerics as nx
from shifthw import toolchain
from shifthw.rtl_gen import generate as gen
from shifthw.rtl_gen.config import EngineConfig
from shifthw.rtl_gen.generate import (LINT_WAIVERS, add_generate_arguments, config_from_args,
                                      generate)
from shifthw.rtl_gen.synth import cell_counts

SMALL = dict(rows=3, cols=2, k_depth=4, weight_depth=8, bias_depth=4)


def test_writes_verilog_and_manifest(tmp_path):
    out = tmp_path / "eng"
    cfg = EngineConfig(guard_bits=4, **SMALL)
    manifest = generate(cfg, out)
    assert sorted(p.name for p in out.iterdir()) == [
        "manifest.json", "shifthw_engine.v", "verilator_waivers.vlt"]
    assert json.loads((out / "manifest.json").read_text()) == manifest
    text = (out / "shifthw_engine.v").read_text()
    assert "module shifthw_engine(" in text
    for port in manifest["ports"]:
        assert port["name"] in text
    assert manifest["parameters"]["guard_bits"] == 4
    assert manifest["accumulator"]["bits"] == cfg.acc_bits == nx.acc_bits_for(8, 4, 12)
    assert manifest["limits"]["max_k"] == 12
    assert set(manifest["streams"]) == {"desc", "params", "act", "out"}
    assert manifest["streams"]["act"]["bits"] == 3 * 8
    assert manifest["buffers"]["weight_entry"]["bits"] == 3 * 2 * 5
    assert [p["name"] for p in manifest["ports"][:3]] == ["clk", "rst", "desc__payload"]


def test_replaces_only_its_own_output(tmp_path):
    out = tmp_path / "eng"
    generate(EngineConfig(**SMALL), out)
    generate(EngineConfig(pe="mult", **SMALL), out)            # earlier output: replaced
    assert json.loads((out / "manifest.json").read_text())["parameters"]["pe"] == "mult"
    other = tmp_path / "other"
    other.mkdir()
    (other / "notes.txt").write_text("mine")
    with pytest.raises(FileExistsError):
        generate(EngineConfig(**SMALL), other)
    assert (other / "notes.txt").read_text() == "mine"
    # A manifest.json that is not shifthw's does not make a folder an earlier output (a
    # project of the user's own with a manifest.json was replaced as a whole).
    for text in ('{"name": "web app"}', "not json"):
        (other / "manifest.json").write_text(text)
        with pytest.raises(FileExistsError, match="holds no shifthw manifest.json"):
            generate(EngineConfig(**SMALL), other)
    assert sorted(p.name for p in other.iterdir()) == ["manifest.json", "notes.txt"]
    # An earlier output with a file of the user's own added: refused, nothing deleted.
    (out / "tb.sv").write_text("mine")
    with pytest.raises(FileExistsError, match=r"holds 1 entry that its manifest does not "
                                              r"list \(tb.sv\)"):
        generate(EngineConfig(**SMALL), out)
    assert (out / "tb.sv").read_text() == "mine"
    (out / "tb.sv").unlink()
    generate(EngineConfig(**SMALL), out, board="icebreaker")     # board/ is listed
    generate(EngineConfig(**SMALL), out)
    assert not (out / "board").exists()


def test_module_names_and_failed_runs_leave_no_folders(tmp_path):
    # The name is a file name too (<name>.v): a limit with one clear error, before any
    # folder is made; a run that fails removes the parents it made.
    with pytest.raises(ValueError, match="name must be at most 128 characters, not 300"):
        generate(EngineConfig(**SMALL), tmp_path / "new" / "x" / "y", name="a" * 300)
    generate(EngineConfig(**SMALL), tmp_path / "ok", name="a" * 128)
    with pytest.raises(ValueError, match="board must be one of"):
        generate(EngineConfig(**SMALL), tmp_path / "new" / "x" / "y", board="nope")
    with pytest.raises(TypeError):
        generate(EngineConfig(**SMALL), tmp_path / "new" / "x" / "y", extra_files={"a": 1})
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ok"]


def test_output_folder_mode_links_and_the_current_folder(tmp_path, monkeypatch):
    # The folder gets the mode a plain mkdir gives (the temporary folder it was made as is
    # private), a link to a folder is kept and its folder replaced, and the current folder
    # (which would be renamed away under the shell) is refused.
    umask = os.umask(0o022)
    try:
        out = tmp_path / "eng"
        generate(EngineConfig(**SMALL), out)
        assert out.stat().st_mode & 0o777 == 0o755
    finally:
        os.umask(umask)
    link = tmp_path / "link"
    link.symlink_to(out)
    generate(EngineConfig(pe="mult", **SMALL), link)
    assert link.is_symlink()
    assert json.loads((out / "manifest.json").read_text())["parameters"]["pe"] == "mult"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["eng", "link"]
    monkeypatch.chdir(out)
    for here in (".", str(out), ".."):
        with pytest.raises(ValueError, match="the current folder or holds it"):
            generate(EngineConfig(**SMALL), here)
    assert json.loads((out / "manifest.json").read_text())["parameters"]["pe"] == "mult"


def test_nothing_half_written_on_error(tmp_path, monkeypatch):
    out = tmp_path / "eng"
    generate(EngineConfig(**SMALL), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}

    def boom(*args, **kwargs):
        raise RuntimeError("manifest failed")

    monkeypatch.setattr(gen, "build_manifest", boom)
    with pytest.raises(RuntimeError):
        generate(EngineConfig(guard_bits=0, **SMALL), out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    assert [p.name for p in tmp_path.iterdir()] == ["eng"]      # no temporary folder left
    with pytest.raises(RuntimeError):
        generate(EngineConfig(**SMALL), tmp_path / "fresh")
    assert not (tmp_path / "fresh").exists()


def test_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="board"):
        generate(EngineConfig(**SMALL), tmp_path / "x", board="nexys")
    with pytest.raises(ValueError, match="name"):
        generate(EngineConfig(**SMALL), tmp_path / "x", name="2bad")
    # Yosys would write a keyword as an escaped identifier (``\\module``) that no one can
    # instantiate by its name; a non-ASCII letter passes str.isidentifier but not Verilog.
    with pytest.raises(ValueError, match="name 'module' is a Verilog / SystemVerilog keyword"):
        generate(EngineConfig(**SMALL), tmp_path / "x", name="module")
    with pytest.raises(ValueError, match="name must be a Verilog identifier"):
        generate(EngineConfig(**SMALL), tmp_path / "x", name="engine_\u00e9")
    # The engine cannot share the board top's module name (the plan would not synthesise).
    with pytest.raises(ValueError, match="name 'top' is the board top's module name"):
        generate(EngineConfig(**SMALL), tmp_path / "x", board="icebreaker", name="top")
    assert not (tmp_path / "x").exists()
    with pytest.raises(TypeError, match="config"):
        generate({"rows": 2}, tmp_path / "x")


def test_cli_helpers():
    parser = argparse.ArgumentParser()
    add_generate_arguments(parser)
    args = parser.parse_args(["--rows", "4", "--cols", "2", "--mode", "truncate", "-o", "x"])
    cfg = config_from_args(args)
    assert (cfg.rows, cfg.cols, cfg.guard_bits, cfg.pe) == (4, 2, 0, "shift")
    cfg = config_from_args(parser.parse_args(["--mode", "exact", "--weight-bits", "4",
                                              "-o", "x"]))
    assert cfg.guard_bits == nx.max_shift(4)
    cfg = config_from_args(parser.parse_args(["--pe", "mult", "-o", "x"]))
    assert cfg.weight_bits == 8 and cfg.input_registers == 1
    cfg = config_from_args(parser.parse_args(["--input-registers", "0", "-o", "x"]))
    assert cfg.input_registers == 0 and cfg.array_latency == cfg.pipeline_stages + 1
    cfg = config_from_args(parser.parse_args(["--input-registers", "2", "-o", "x"]))
    assert cfg.array_latency == cfg.pipeline_stages + 3
    cfg = config_from_args(parser.parse_args(["--stall-free", "-o", "x"]))
    assert cfg.stall_free and not cfg.registered_stall
    with pytest.raises(ValueError, match="stall_free .* acc_bits"):
        config_from_args(parser.parse_args(["--stall-free", "--acc-bits", "12", "-o", "x"]))
    with pytest.raises(ValueError, match="--mode"):
        config_from_args(parser.parse_args(["--pe", "mult", "--mode", "exact", "-o", "x"]))
    with pytest.raises(SystemExit):
        parser.parse_args(["--mode", "exact", "--guard-bits", "3", "-o", "x"])


@pytest.mark.parametrize("kw", [
    dict(),                                                     # the default 8x8, G = P
    dict(guard_bits=0, bias_lanes=1, out_depth=0, **SMALL),
    dict(pe="mult", acc_bits=12, **SMALL),
    dict(guard_bits=4, registered_stall=True, stall_free=True, pe_register=True, **SMALL),
    dict(rows=1, cols=1, k_depth=1, weight_depth=1, bias_depth=1, out_depth=1),
])
def test_verilator_lint_with_waivers_only(kw, tmp_path):
    generate(EngineConfig(**kw), tmp_path / "v")
    toolchain.run_verilator(["--lint-only", "-Wall", "verilator_waivers.vlt",
                             "shifthw_engine.v"], cwd=tmp_path / "v", timeout=300)
    waivers = (tmp_path / "v" / "verilator_waivers.vlt").read_text()
    assert all(f"-rule {rule}" in waivers for rule in LINT_WAIVERS)


@pytest.mark.parametrize("guard", [0, 14])
def test_shift_netlist_has_no_multiplier(guard, tmp_path):
    generate(EngineConfig(rows=4, cols=4, guard_bits=guard), tmp_path / "s")
    cells = cell_counts(tmp_path / "s" / "shifthw_engine.v", "shifthw_engine")
    assert cells.get("$mul", 0) == 0
    assert not any("mul" in name.lower() or "macc" in name for name in cells), cells
    assert cells.get("$sshr", 0) == 16                          # one shifter per PE


def test_mult_netlist_has_multipliers(tmp_path):
    generate(EngineConfig(rows=4, cols=4, pe="mult"), tmp_path / "m")
    cells = cell_counts(tmp_path / "m" / "shifthw_engine.v", "shifthw_engine")
    assert cells.get("$mul", 0) == 16
