"""docs/DECISIONS.md states every decision of the default path: each numeric module constant that
scripts/count_decisions.py counts, and each key the `fast` preset sets, with a kind."""
from __future__ import annotations

import importlib.util
import re
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
KINDS = {"bound", "test", "numerics", "choice", "development"}


def _count_decisions():
    spec = importlib.util.spec_from_file_location("count_decisions", ROOT / "scripts" / "count_decisions.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _rows(prefix: str) -> dict[str, str]:
    """The register's table rows whose first cell is `prefix…`: name → kind."""
    rows = {}
    for line in (ROOT / "docs" / "DECISIONS.md").read_text().splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        match = re.fullmatch(r"`(" + re.escape(prefix) + r"[\w.]+)`", cells[0]) if cells else None
        if match:
            rows[match.group(1)] = cells[2] if prefix == "hidd." else cells[1]
    return rows


def test_every_default_path_constant_is_registered_with_a_kind():
    cd = _count_decisions()
    counted = {f"{name}.{const}" for name, tree in cd.default_path(ROOT).items() for const in cd.constants(tree)}
    rows = _rows("hidd.")
    assert counted - set(rows) == set(), "constants on the default path missing from docs/DECISIONS.md"
    assert set(rows) - counted == set(), "docs/DECISIONS.md lists constants no longer on the default path"
    assert {kind for kind in rows.values()} <= KINDS


def test_every_key_of_the_fast_preset_is_registered_with_a_kind():
    preset = yaml.safe_load((ROOT / "configs" / "presets" / "fast.yaml").read_text())["sampler"]
    rows = _rows("sampler.")
    assert {f"sampler.{key}" for key in preset} - set(rows) == set()
    assert {kind for kind in rows.values()} <= KINDS


def test_executed_constants_are_those_named_in_the_code_that_ran(tmp_path):
    cd = _count_decisions()
    (tmp_path / "hidd").mkdir()
    (tmp_path / "hidd" / "base.py").write_text("LIMIT = 2.0\nUNUSED = 3\nSCALE = 5\nINNER = 6\n")
    (tmp_path / "hidd" / "top.py").write_text(
        "from hidd import base\nfrom hidd.base import LIMIT, UNUSED, INNER\nSTEP = 0.5\nWIDTH = 4\nDEPTH = 7\n\n"
        "def ran(x, width=WIDTH):\n    def inner(k=STEP):\n        return INNER\n    return x * base.SCALE < LIMIT\n\n"
        "def never():\n    return DEPTH + UNUSED\n")
    modules = cd.default_path(tmp_path, "hidd.top")
    assert set(modules) == {"hidd.top", "hidd.base"}
    executed = {(str((tmp_path / "hidd" / "top.py").resolve()), 7, "ran")}  # inner defined, never called
    assert cd.executed_constants(tmp_path, modules, executed) == {"hidd.top.STEP", "hidd.top.WIDTH", "hidd.base.LIMIT",
                                                                 "hidd.base.SCALE"}
