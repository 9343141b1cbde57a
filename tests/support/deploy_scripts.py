"""The scripts under deploy/ (not a package), loaded as modules for tests that call into them."""

from __future__ import annotations

import importlib.util
import sys
from types import ModuleType

from app.config import PROJECT_ROOT

RENAME = PROJECT_ROOT / "deploy" / "rename.py"


def load_rename() -> ModuleType:
    """deploy/rename.py as a module (deploy/ is not a package)."""
    spec = importlib.util.spec_from_file_location("deploy_rename", RENAME)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("deploy_rename", module)  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module
