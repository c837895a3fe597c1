"""Issue 33: the house's floors. The core (skinlesion/) imports neither the web app, nor the
training scripts, nor Flask; the web app and the command line never import training/ (which
needs TensorFlow); nothing imports back up into the scripts at the top."""
import ast

import pytest
from conftest import ROOT

UPWARD = {
    "skinlesion": {"webapp", "training", "flask", "werkzeug", "app", "predict", "benchmarks"},
    "webapp": {"training", "app", "predict", "benchmarks"},
    "training": {"webapp", "app", "predict", "benchmarks"},
}


def imported_packages(path):
    """The top-level names a file imports, at module level or inside functions."""
    tree = ast.parse(path.read_text(), str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("floor", sorted(UPWARD))
def test_no_import_runs_back_up(floor):
    found = {str(path.relative_to(ROOT)): sorted(imported_packages(path) & UPWARD[floor])
             for path in (ROOT / floor).rglob("*.py")}
    assert {path: names for path, names in found.items() if names} == {}


def test_the_serving_entry_points_do_not_import_training():
    for name in ("app.py", "predict.py", "gunicorn.conf.py", "heatmap.py"):
        assert "training" not in imported_packages(ROOT / name), name
