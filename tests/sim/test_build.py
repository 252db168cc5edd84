"""The build cache's bound: least recently used builds go first, never one in use."""

import fcntl
import os

import pytest

from shifthw.sim import build as b


def _fake_build(root, key, size, used, done=True):
    folder = root / key / "sim_build"
    folder.mkdir(parents=True)
    (folder / "Vtop").write_bytes(b"\0" * size)
    if done:
        marker = root / key / b._DONE
        marker.write_text("{}")
        os.utime(marker, (used, used))


def _keys(root):
    return sorted(p.name for p in root.iterdir() if p.is_dir())


def test_prune_removes_least_recently_used_until_under_the_limit(tmp_path):
    for k, used in [("old", 100), ("mid", 200), ("new", 300), ("newest", 400)]:
        _fake_build(tmp_path, k, 1000, used)
    _fake_build(tmp_path, "building", 5000, 0, done=False)   # another process's build
    # 4000 bytes of finished builds, limit 2500: the two oldest go.
    assert b.prune_cache(tmp_path, 2500) == ["old", "mid"]
    assert _keys(tmp_path) == ["building", "new", "newest"]
    assert b.prune_cache(tmp_path, 2500) == []                 # already under the bound
    assert b.prune_cache(tmp_path, None) == []                 # no bound: nothing goes


def test_prune_keeps_the_new_build_and_builds_in_use(tmp_path):
    for k, used in [("a", 100), ("b", 200), ("c", 300)]:
        _fake_build(tmp_path, k, 1000, used)
    with open(tmp_path / "b.lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX)                       # another process uses "b"
        assert b.prune_cache(tmp_path, 0, keep="a") == ["c"]
    assert _keys(tmp_path) == ["a", "b"]


def test_cache_limit_comes_from_the_environment(monkeypatch):
    monkeypatch.delenv("SHIFTHW_CACHE_MAX_GB", raising=False)
    assert b.cache_limit_bytes() == int(b.DEFAULT_CACHE_MAX_GB * 1e9)
    monkeypatch.setenv("SHIFTHW_CACHE_MAX_GB", "0.5")
    assert b.cache_limit_bytes() == 500_000_000
    monkeypatch.setenv("SHIFTHW_CACHE_MAX_GB", "0")
    assert b.cache_limit_bytes() is None
    for bad in ("lots", "-1", "nan", "inf"):
        monkeypatch.setenv("SHIFTHW_CACHE_MAX_GB", bad)
        with pytest.raises(ValueError, match="SHIFTHW_CACHE_MAX_GB must be a number"):
            b.cache_limit_bytes()


def test_a_path_with_a_space_is_one_clear_error(tmp_path, monkeypatch, capsys):
    # GNU Make cannot build there: said before Verilator runs, naming SHIFTHW_CACHE; the
    # command line prints it as one error (exit code 2), no traceback.
    with pytest.raises(b.BuildError, match="Verilator cannot build in a path with a space"):
        b.build({"t.v": "module t; endmodule\n"}, "t", root=tmp_path / "a b")
    from shifthw.cli import main

    monkeypatch.setenv("SHIFTHW_CACHE", str(tmp_path / "c d"))
    assert main(["verify", "mlp", "--rows", "2", "--cols", "2", "--images", "1"]) == 2
    err = capsys.readouterr().err
    assert "(SHIFTHW_CACHE, or the home folder's .cache): Verilator cannot build" in err
    assert "Traceback" not in err
    assert not (tmp_path / "c d").exists()
