"""The layout rules of the code base: no import cycles inside compare/, no import up the layers, short
files and functions, docstrings that name modules that exist, and one place for each fact (the exit codes,
the run directory's name, the optimizer registry, the CLI's optimizer flags, an optimizer's name)."""

import ast
import dataclasses
import importlib
import re
from pathlib import Path

import pytest

from compare import exits
from compare.cli.main import build_parser
from compare.cli.optimizer_flags import hyperparameter_fields
from manual.optim import REGISTRY
from manual.optim.variants import VARIANTS

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("manual", "torch_ref", "compare")
MAX_FILE_LINES, MAX_FUNCTION_LINES = 400, 60


def sources(*packages: str) -> list[Path]:
    return sorted(path for package in packages for path in (ROOT / package).rglob("*.py"))


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_at_load(path: Path, modules: set[str], anywhere: bool = False) -> set[str]:
    """The modules a file imports when it is loaded: module level, ``TYPE_CHECKING`` blocks left out
    (imports inside functions run later, when every module is loaded); with ``anywhere``, every import it
    holds, those inside functions and ``TYPE_CHECKING`` blocks too. ``from package import module``
    depends on the module (the package is its parent, loaded first in any case)."""
    found = set()
    for node in ast.parse(path.read_text()).body:
        if not anywhere and isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node) if anywhere or not isinstance(node, ast.FunctionDef | ast.ClassDef) else ():
            if isinstance(inner, ast.Import):
                found |= {alias.name for alias in inner.names}
            elif isinstance(inner, ast.ImportFrom) and inner.module and inner.level == 0:
                submodules = {f"{inner.module}.{alias.name}" for alias in inner.names} & modules
                found |= submodules if submodules else {inner.module}
    return found


def import_graph(anywhere: bool = False) -> dict[str, set[str]]:
    """Who imports whom inside compare/: at load (what a cycle is made of), or ``anywhere`` (what the layers rule)."""
    modules = {module_name(path): path for path in sources("compare")}
    names = set(modules)
    return {
        name: {m for m in imports_at_load(path, names, anywhere) if m in names and m != name}
        for name, path in modules.items()
    }


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """A cycle of imports, as the modules along it, or None (depth-first search, three colours)."""
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    path: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for target in sorted(graph[node]):
            if state.get(target) == 1:
                return [*path[path.index(target) :], target]
            if target not in state and (cycle := visit(target)):
                return cycle
        state[node] = 2
        path.pop()
        return None

    for node in sorted(graph):
        if node not in state and (cycle := visit(node)):
            return cycle
    return None


def test_no_import_cycles_inside_compare():
    assert find_cycle(import_graph()) is None


# The layers of compare/, lowest first: a module may import its own layer and those below, never above (not even
# inside a function, where the import runs later: the arrow runs up all the same).
# (manual/ and torch_ref/ lie below all of compare/; tests/test_lint.py keeps manual/ NumPy-only.)
LAYERS = (
    ("compare.errors", "compare.exits", "compare.i18n"),
    ("compare.inputs",),
    ("compare.core",),
    ("compare.faults",),
    ("compare.output",),
    ("compare.check", "compare.experiments"),
    ("compare.bench", "compare.pipeline"),
    ("compare",),  # the package's own API (compare/__init__.py)
    ("compare.cli",),
    ("compare.__main__",),
)
# Known upward imports, each with the reason it is still there (an entry here is a debt, not a rule).
UPWARD_DEBTS: dict[tuple[str, str], str] = {}  # none now; an entry needs its reason


def layer(module: str) -> int:
    """The rank of the most specific entry of ``LAYERS`` that holds the module."""
    matches = [
        (len(name), rank)
        for rank, names in enumerate(LAYERS)
        for name in names
        if module == name or module.startswith(name + ".")
    ]
    assert matches, f"{module}: in no layer of LAYERS"
    return max(matches)[1]


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted(
        (module, target)
        for module, targets in graph.items()
        for target in targets
        if layer(target) > layer(module) and (module, target) not in UPWARD_DEBTS
    )


def test_no_import_runs_up_the_layers():
    graph = import_graph(anywhere=True)
    assert upward_imports(graph) == []
    assert set(UPWARD_DEBTS) <= {(m, t) for m, targets in graph.items() for t in targets}  # no stale debt


def test_the_layer_check_fails_on_an_upward_import():
    assert upward_imports({"compare.core.engine": {"compare.output.report"}}) == [
        ("compare.core.engine", "compare.output.report")
    ]
    assert upward_imports({"compare.output.report": {"compare.core.engine"}}) == []


def test_the_layer_check_sees_an_import_inside_a_function(tmp_path):
    module = tmp_path / "late.py"
    module.write_text("def build():\n    from compare.cli.main import main\n\n    return main\n")
    assert imports_at_load(module, {"compare.cli.main"}) == set()  # not a load-time dependency (no cycle)
    assert imports_at_load(module, {"compare.cli.main"}, anywhere=True) == {"compare.cli.main"}


DOTTED = re.compile(r"``((?:compare|manual|torch_ref)(?:\.\w+)+)``")


def named_in_docstrings(path: Path) -> set[str]:
    """Every ``compare.x.y``-style name in the file's docstrings."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            names |= set(DOTTED.findall(ast.get_docstring(node) or ""))
    return names


def resolves(name: str) -> bool:
    """A module, or an attribute (a class, a function, a method) reached from the longest module prefix."""
    parts = name.split(".")
    for cut in range(len(parts), 0, -1):
        try:
            obj = importlib.import_module(".".join(parts[:cut]))
        except ImportError:
            continue
        for attribute in parts[cut:]:
            if not hasattr(obj, attribute):
                return False
            obj = getattr(obj, attribute)
        return True
    return False


def test_every_module_path_a_docstring_names_exists():
    stale = sorted(
        f"{path.relative_to(ROOT)}: {name}"
        for path in sources(*PACKAGES)
        for name in named_in_docstrings(path)
        if not resolves(name)
    )
    assert stale == []


def test_the_docstring_check_fails_on_a_stale_path():
    assert resolves("compare.core.override.Override") and not resolves("compare.faults.override")


def test_the_cycle_finder_finds_a_cycle():
    assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert find_cycle({"a": {"b"}, "b": set()}) is None


def test_the_configuration_does_not_know_the_command_line_or_the_engine():
    """Data-parallel ranks and Python users get a resolved configuration, never an argparse namespace."""
    graph = import_graph()
    for module in ("compare.inputs.config", "compare.inputs.prepare"):
        reached, frontier = set(), [module]
        while frontier:
            for target in graph[frontier.pop()] - reached:
                reached.add(target)
                frontier.append(target)
        assert not {m for m in reached if m.startswith(("compare.cli", "compare.core"))}, module
    assert "argparse" not in (ROOT / "compare/core/distributed.py").read_text()


@pytest.mark.parametrize("path", sources(*PACKAGES), ids=lambda p: str(p.relative_to(ROOT)))
def test_files_and_functions_are_short(path: Path):
    text = path.read_text()
    assert text.count("\n") <= MAX_FILE_LINES
    long = [
        f"{node.name}: {node.end_lineno - node.lineno + 1} lines"
        for node in ast.walk(ast.parse(text))
        if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef)
        and node.end_lineno - node.lineno >= MAX_FUNCTION_LINES
    ]
    assert long == []


def test_one_table_of_exit_codes():
    """No module but compare/exits.py names an exit status or exits with a number of its own."""
    offenders = []
    for path in sources("compare"):
        if path == ROOT / "compare/exits.py":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Name) and node.id.startswith("EXIT_"):
                offenders.append(f"{path.name}: {node.id}")
            if isinstance(node, ast.Call) and ast.unparse(node.func) == "sys.exit" and node.args:
                if isinstance(node.args[0], ast.Constant):
                    offenders.append(f"{path.name}: {ast.unparse(node)}")
    assert offenders == []
    assert set(exits.TABLE) == {exits.PASS, exits.FAIL, exits.USAGE, exits.ABORTED, exits.DIVERGED, exits.INTERRUPTED}


def test_run_directories_are_named_in_one_place():
    """The time stamp of a run directory's name is written by compare/output/rundir.py alone."""
    writers = [path.name for path in sources("compare") if "%Y%m%d-%H%M%S" in path.read_text()]
    assert writers == ["rundir.py"]


def test_one_registry_names_every_optimizer():
    """Each registered optimizer's rule, torch class and squared state come from REGISTRY; the CLI's
    --optimizer choices are its keys."""
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    choices = next(action.choices for action in run._actions if action.dest == "optimizer")
    assert list(choices) == list(REGISTRY)


def test_optimizer_flags_are_derived_from_the_optimizer_dataclasses():
    run = build_parser()._subparsers._group_actions[0].choices["run"]
    flags = {action.dest for action in run._actions}
    rules = [entry.rule for entry in REGISTRY.values()] + [variant.optimizer for variant in VARIANTS.values()]
    keywords = {field.name for rule in rules for field in dataclasses.fields(rule)}
    assert keywords <= flags


def test_one_path_writes_event_files():
    """Runs, experiments and checks write TensorBoard events through compare/output/events.py alone."""
    writers = [
        path.name
        for path in sources("compare")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Name | ast.Attribute)
        and (node.id if isinstance(node, ast.Name) else node.attr) in ("SummaryWriter", "FileWriter", "EventFileWriter")
    ]
    assert writers == []
    assert "class EventWriter" in (ROOT / "compare/output/events.py").read_text()


# Where an optimizer may be named: its own file, the registry, the textbook variants, the catalog's faults and the
# optimizers experiment; everything else (CLI choices and flags, the torch twin, the sweep, the tests' tables, the
# README's rows) is derived from the registry. The first seven rules are also named as defaults and examples
# across the code (``run``'s default is adam, ``check``'s sgd), so the rule is proven on the later ones.
NAMED_AS_EXAMPLES = frozenset({"sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad"})
MAY_NAME_AN_OPTIMIZER = (
    "manual/optim/__init__.py",
    "manual/optim/variants.py",
    "compare/faults/optimizers.py",
    "compare/faults/optimizer_catalog.py",
    "compare/experiments/optimizers.py",
)


def files_naming(name: str) -> list[str]:
    pattern = re.compile(rf"\b{re.escape(name)}\b", re.IGNORECASE)
    return sorted(str(path.relative_to(ROOT)) for path in sources(*PACKAGES) if pattern.search(path.read_text()))


def test_an_optimizer_is_named_in_its_own_file_and_the_registry_alone():
    for name, entry in REGISTRY.items():
        if name in NAMED_AS_EXAMPLES:
            continue
        own = str(Path(importlib.import_module(entry.rule.__module__).__file__).relative_to(ROOT))
        assert set(files_naming(name)) - {own, *MAY_NAME_AN_OPTIMIZER} == set(), name


def test_the_name_check_fails_on_an_optimizer_named_elsewhere():
    # adam, run's default, is named outside its own files: the check would fail for it
    assert set(files_naming("adam")) - {"manual/optim/adam.py", *MAY_NAME_AN_OPTIMIZER}


def readme_row(flag: str) -> str:
    lines = (ROOT / "docs" / "cli.md").read_text().splitlines()
    rows = [line for line in lines if re.match(rf"\| `{re.escape(flag)}[ `]", line)]
    assert len(rows) == 1, f"the CLI reference (docs/cli.md): {len(rows)} rows for {flag}"
    return rows[0]


def test_the_readmes_optimizer_rows_match_the_parser():
    """The CLI reference names every registered optimizer, its default lr, every optimizer flag with each
    rule that takes it, and every textbook variant: what ``run``'s parser derives from the registry."""
    assert f"`--optimizer {{{','.join(REGISTRY)}}}`" in readme_row("--optimizer")
    lr = readme_row("--lr")
    assert all(f"{name} {entry.default_lr}" in lr for name, entry in REGISTRY.items())
    for key, defaults in hyperparameter_fields().items():
        if key == "lr":
            continue
        row = readme_row("--" + key.replace("_", "-")).lower()
        takers = [name for name in defaults if name in REGISTRY]
        assert all(re.search(rf"\b{name}\b", row) for name in takers), (key, takers)
    variant = readme_row("--variant")
    assert all(f"`{name}`" in variant for name in VARIANTS)


def test_runs_flags_are_derived_from_the_run_configuration():
    """Every field of RunConfig but the optimizer's keywords is a flag of ``run``, whose help is the field's own."""
    from compare.inputs.config import RunConfig

    run = build_parser()._subparsers._group_actions[0].choices["run"]
    actions = {action.dest: action for action in run._actions}
    for field in dataclasses.fields(RunConfig):
        if field.name == "hyperparameters":
            continue
        assert actions[field.name].help == field.metadata["help"], field.name


def test_the_engine_computes_the_stages_in_the_order_of_the_one_list(monkeypatch):
    """The engine runs the stages of ``stages.STEPS``, in that order, each under its own name (the stage a
    side that raises is named by), and a step's checks come in that order. Each stage is the real one, wrapped
    to note when it runs: an engine that called the stages by hand would note none."""
    from compare.core import stages
    from compare.core.stages import STAGE_RANK, STAGES
    from conftest import lockstep_run
    from manual import MLPSpec

    ran: list[tuple[str, str]] = []

    def noted(stage: stages.Stage) -> stages.Stage:
        def compute(engine, work) -> None:
            ran.append((stage.name, engine._stage))
            stage.compute(engine, work)

        return stages.Stage(stage.name, compute)

    monkeypatch.setattr(stages, "STEPS", tuple(noted(stage) for stage in stages.STEPS))
    spec = MLPSpec((3, 4, 2), "relu", "cross_entropy", 0.3, True)  # dropout and BatchNorm: every stage
    result = lockstep_run(spec, "adam", {"lr": 0.01}, steps=2)
    assert ran == [(name, name) for name in STAGES] * 2
    for record in result.records:
        ranks = [STAGE_RANK[check.stage] for check in record.checks]
        assert ranks == sorted(ranks) and set(ranks) == set(range(len(STAGES)))


# compare/check/ by role (issue 28): the entry points directly in it, one module per ``check_*`` named after
# it; what reads, runs and diagnoses the user's code in subpackages, each saying in its docstring what it holds.
CHECK = ROOT / "compare" / "check"
CHECK_ENTRY_POINTS = ("check_layer", "check_loss", "check_optimizer", "check_model", "check_function", "check_engine")
MAX_MODULES_DIRECTLY_IN_CHECK = 12


def test_check_holds_its_entry_points_and_subpackages_by_role():
    import compare.check

    modules = sorted(path.stem for path in CHECK.glob("*.py"))
    assert len(modules) <= MAX_MODULES_DIRECTLY_IN_CHECK, modules
    for name in CHECK_ENTRY_POINTS:
        assert name in modules, f"{name} is not compare/check/{name}.py"
        module = importlib.import_module(f"compare.check.{name}")
        assert getattr(compare.check, name) is getattr(module, name)
    subpackages = sorted(path.parent.name for path in CHECK.glob("*/__init__.py"))
    assert {"forms", "sandbox", "diagnosis"} <= set(subpackages), subpackages
    assert "engine" not in subpackages  # "engine" is the lockstep, compare.core.engine
    for name in subpackages:
        docstring = ast.get_docstring(ast.parse((CHECK / name / "__init__.py").read_text()))
        assert docstring and len(docstring) > 40, f"compare/check/{name}/__init__.py says nothing of what it holds"
