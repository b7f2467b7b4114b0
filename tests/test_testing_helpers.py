"""Test harnesses live in aigiqa.testing, outside the runtime packages, and no runtime module
imports them."""

from __future__ import annotations

import ast
import importlib.util
from pathlib import Path

import aigiqa

PACKAGE = Path(aigiqa.__file__).parent


def test_harnesses_are_in_aigiqa_testing_only():
    for gone in ("aigiqa.store.pgtemp", "aigiqa.serve.live", "aigiqa.study.server"):
        assert importlib.util.find_spec(gone) is None, gone
    for helper in ("aigiqa.testing.postgres", "aigiqa.testing.servers"):
        assert importlib.util.find_spec(helper) is not None, helper


def test_no_runtime_module_imports_the_test_helpers():
    importers = []
    for path in PACKAGE.rglob("*.py"):
        if path.is_relative_to(PACKAGE / "testing"):
            continue
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            if any(n == "aigiqa.testing" or n.startswith("aigiqa.testing.") for n in names):
                importers.append(str(path.relative_to(PACKAGE)))
    assert importers == []
