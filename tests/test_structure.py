"""The structure bars of the package, as a test, so that later work keeps them.

Every rule reads the source (`ast` for spans and names, `tokenize` for comments);
only two checks import the package (the config classes' own field counts, the package
docstring) and nothing compiles, so the file runs in seconds. Each failure names the
file, the line and the rule it breaks.
"""

from __future__ import annotations

import ast
import dataclasses
import functools
import io
import pathlib
import re
import tokenize

ROOT = pathlib.Path(__file__).resolve().parent.parent
PACKAGE = ROOT / "muzero_jax"
THIS_FILE = pathlib.Path(__file__).resolve()

MAX_FUNCTION_LINES = 60  # lines of code in a function's body (docstrings, comments out)
MAX_CONFIG_FIELDS = 20  # fields of one config dataclass
# The one function outside muzero_jax/envs/ that may ask which kind of env it was given:
# the actor factory, whose choice (a compiled JAX actor or a host one) picks the backend
# the run driver uses (`Agent.host`).
BACKEND_CHOICE = ("muzero_jax/selfplay.py", "make_actor")
# Names of the env protocol (`muzero_jax.envs.base`) an isinstance may not test.
ENV_BASES = frozenset({"JaxEnv", "HostEnv", "HostEnvs", "Env"})
# Text that tells a file's history instead of why it is as it is, or points at a
# document the repository does not hold.
HISTORY = (
    (re.compile(r"\bstops?[ -]\d+", re.IGNORECASE), "a history reference ('stop N')"),
    (re.compile(r"\bissues?[ -]#?\d+", re.IGNORECASE), "a history reference ('issue N')"),
    (re.compile(r"\bbefore this (stop|change|issue)", re.IGNORECASE),
     "a history reference ('before this ...')"),
    (re.compile(r"SPEC\.md"), "a pointer to SPEC.md, which the repository does not hold"),
)
# Underscore names that are public API (namedtuple's methods, os._exit).
PUBLIC_UNDERSCORE = frozenset({"_replace", "_asdict", "_make", "_fields", "_exit"})


def _relative(path: pathlib.Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _python_files(*folders: str) -> list[pathlib.Path]:
    files = []
    for folder in folders:
        files.extend(sorted((ROOT / folder).rglob("*.py")))
    return [f for f in files if f.resolve() != THIS_FILE]


@functools.cache
def _source(path: pathlib.Path) -> str:
    return path.read_text(encoding="utf-8")


@functools.cache
def _tree(path: pathlib.Path) -> ast.Module:
    return ast.parse(_source(path), filename=str(path))


_NOT_CODE = frozenset({tokenize.COMMENT, tokenize.NL, tokenize.NEWLINE, tokenize.INDENT,
                       tokenize.DEDENT, tokenize.ENCODING, tokenize.ENDMARKER})


@functools.cache
def _code_lines(path: pathlib.Path) -> frozenset[int]:
    """Lines holding a token other than a comment or layout (strings spanning lines
    count on every line they cover)."""
    lines: set[int] = set()
    for token in tokenize.generate_tokens(io.StringIO(_source(path)).readline):
        if token.type not in _NOT_CODE:
            lines.update(range(token.start[0], token.end[0] + 1))
    return frozenset(lines)


def _docstring_lines(node: ast.AST) -> set[int]:
    body = getattr(node, "body", None)
    if (body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant)
            and isinstance(body[0].value.value, str)):
        return set(range(body[0].lineno, body[0].end_lineno + 1))
    return set()


_FUNCTIONS = (ast.FunctionDef, ast.AsyncFunctionDef)


def function_length(path: pathlib.Path, node: ast.FunctionDef) -> int:
    """Lines of code in `node`'s body: from its first statement to its end (nested
    functions included), less blank lines, comment lines and every docstring in it."""
    lines = set(range(node.body[0].lineno, node.end_lineno + 1)) & _code_lines(path)
    for inner in ast.walk(node):
        if isinstance(inner, (*_FUNCTIONS, ast.ClassDef, ast.Module)):
            lines -= _docstring_lines(inner)
    return len(lines)


def _fail(violations: list[str], rule: str) -> None:
    assert not violations, (f"{len(violations)} violation(s) of '{rule}':\n  "
                            + "\n  ".join(violations))


def test_no_function_over_60_lines_of_code():
    violations = []
    for path in _python_files("muzero_jax"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, _FUNCTIONS):
                length = function_length(path, node)
                if length > MAX_FUNCTION_LINES:
                    violations.append(
                        f"{_relative(path)}:{node.lineno}: function length: {node.name} has "
                        f"{length} lines of code; expected at most {MAX_FUNCTION_LINES}")
    _fail(violations, f"no function over {MAX_FUNCTION_LINES} lines of code")


def test_function_length_counts_code_only(tmp_path):
    """The counter skips the signature, docstrings, comments and blank lines, and
    counts a nested function's code in its outer function."""
    path = tmp_path / "sample.py"
    path.write_text(
        "def outer(a,\n"
        "          b):\n"
        '    """Doc\n'
        '    string."""\n'
        "    # a comment\n"
        "\n"
        "    x = (a +\n"
        "         b)\n"
        "    def inner():\n"
        '        """Inner doc."""\n'
        "        return x  # trailing comment\n"
        '    s = """two\n'
        '    lines"""\n'
        "    return inner()\n")
    outer, inner = [n for n in ast.walk(ast.parse(path.read_text()))
                    if isinstance(n, ast.FunctionDef)]
    assert function_length(path, outer) == 7
    assert function_length(path, inner) == 1


def test_no_config_dataclass_over_20_fields():
    path = PACKAGE / "config.py"
    violations = []
    for node in ast.walk(_tree(path)):
        if isinstance(node, ast.ClassDef) and any(
                "dataclass" in ast.unparse(d) for d in node.decorator_list):
            fields = [s for s in node.body if isinstance(s, ast.AnnAssign)
                      and "ClassVar" not in ast.unparse(s.annotation)]
            if len(fields) > MAX_CONFIG_FIELDS:
                violations.append(
                    f"{_relative(path)}:{node.lineno}: config size: {node.name} has "
                    f"{len(fields)} fields; expected at most {MAX_CONFIG_FIELDS}")
    _fail(violations, f"no config dataclass over {MAX_CONFIG_FIELDS} fields")


def test_config_field_count_matches_the_dataclasses():
    """The source count above is the dataclasses' own count (no field hidden from it)."""
    from muzero_jax import config

    counted = {}
    for node in ast.walk(_tree(PACKAGE / "config.py")):
        if isinstance(node, ast.ClassDef):
            cls = getattr(config, node.name, None)
            if isinstance(cls, type) and dataclasses.is_dataclass(cls):
                counted[node.name] = len(dataclasses.fields(cls))
    assert counted and all(n <= MAX_CONFIG_FIELDS for n in counted.values()), counted


def test_no_private_mctx():
    violations = []
    for path in _python_files("muzero_jax", "benchmarks", "experiments", "tests", "examples"):
        for node in ast.walk(_tree(path)):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            elif isinstance(node, ast.Attribute):
                names = [ast.unparse(node)]
            if any(n == "mctx._src" or n.startswith("mctx._src.") for n in names):
                violations.append(f"{_relative(path)}:{node.lineno}: private mctx: uses "
                                  "mctx._src; expected mctx's public API")
    _fail(violations, "no mctx._src")


@functools.cache
def env_classes() -> frozenset[str]:
    """The env protocol's names and every class of muzero_jax/envs/ that realises it:
    a subclass of one of them, or a batch of host envs (`reset`, `step` and `close`)."""
    classes = {}
    for path in _python_files("muzero_jax/envs"):
        for node in ast.walk(_tree(path)):
            if isinstance(node, ast.ClassDef):
                bases = {ast.unparse(b).split(".")[-1] for b in node.bases}
                methods = {s.name for s in node.body if isinstance(s, _FUNCTIONS)}
                classes[node.name] = (bases, methods)
    found = set(ENV_BASES)
    changed = True
    while changed:
        changed = False
        for name, (bases, methods) in classes.items():
            if name not in found and (bases & found or {"reset", "step", "close"} <= methods):
                found.add(name)
                changed = True
    return frozenset(found)


def test_env_classes_are_found():
    assert {"JaxEnv", "HostEnv", "GymnaxEnv", "PgxEnv", "FuncJaxEnv", "GymnasiumEnv",
            "Atari"} <= env_classes()
    assert not {"EnvSpec", "EnvState", "StepOutput", "EpisodeStats"} & env_classes()


def _allowed_lines(path: pathlib.Path) -> set[int]:
    """The lines of the backend choice, where `path` is its module."""
    module, function = BACKEND_CHOICE
    if _relative(path) != module:
        return set()
    return {line for node in ast.walk(_tree(path))
            if isinstance(node, _FUNCTIONS) and node.name == function
            for line in range(node.lineno, node.end_lineno + 1)}


def test_no_isinstance_on_env_classes_outside_envs_and_the_backend_choice():
    violations = []
    for path in _python_files("muzero_jax"):
        where = _relative(path)
        if where.startswith("muzero_jax/envs/"):
            continue
        allowed = _allowed_lines(path)
        for node in ast.walk(_tree(path)):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Name)
                    and node.func.id in ("isinstance", "issubclass") and len(node.args) == 2
                    and node.lineno not in allowed):
                tested = {n.id if isinstance(n, ast.Name) else n.attr
                          for n in ast.walk(node.args[1])
                          if isinstance(n, (ast.Name, ast.Attribute))}
                hit = sorted(tested & env_classes())
                if hit:
                    violations.append(
                        f"{where}:{node.lineno}: env isinstance: {node.func.id} on {hit}; "
                        f"expected only in muzero_jax/envs/ or {':'.join(BACKEND_CHOICE)} "
                        "(read the env's spec, or the actor's `host`, instead)")
    _fail(violations, "no isinstance on env classes outside envs/ and the backend choice")


def test_no_history_or_spec_pointer_in_python_files():
    violations = []
    for path in _python_files("muzero_jax", "experiments", "benchmarks", "tests"):
        for number, line in enumerate(_source(path).splitlines(), 1):
            for pattern, rule in HISTORY:
                match = pattern.search(line)
                if match:
                    violations.append(f"{_relative(path)}:{number}: {rule}: "
                                      f"{match.group(0)!r}; expected why, not when")
    _fail(violations, "no history reference or SPEC.md pointer in Python files")


def _defined_names(tree: ast.Module) -> set[str]:
    """Functions, methods and attributes (`self._f = ...`) a module defines itself."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, (*_FUNCTIONS, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Store):
            names.add(node.attr)
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
            names.add(node.id)
    return names


def _private(name: str) -> bool:
    return (name.startswith("_") and not name.startswith("__")
            and name not in PUBLIC_UNDERSCORE)


def test_no_module_uses_another_modules_private_names():
    """No module of the package imports another module's `_name` (or a module of
    another package's private `_src`), or reaches for a `_name` it does not define
    itself (`agent._update(...)` from loop.py, `search._f`, a wrapper's `probe._env`)."""
    violations = []
    for path in _python_files("muzero_jax"):
        tree, where = _tree(path), _relative(path)
        defined = _defined_names(tree)
        for node in ast.walk(tree):
            if isinstance(node, (ast.Import, ast.ImportFrom)):
                module = getattr(node, "module", None) or ""
                names = [a.name for a in node.names]
                private = [n for n in [module, *names] if any(
                    _private(part) for part in n.split("."))]
                if private and module != "__future__":
                    violations.append(
                        f"{where}:{node.lineno}: private import: {private[0]}; expected a "
                        "public name")
            elif (isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load)
                    and _private(node.attr) and node.attr not in defined):
                owner = ast.unparse(node.value)
                if owner not in ("self", "cls", "super()"):
                    violations.append(
                        f"{where}:{node.lineno}: private access: {owner}.{node.attr} is "
                        f"private to another module ({where} does not define it); expected "
                        "a public name")
    _fail(violations, "no module uses another module's private function")


def test_the_design_notes_name_files_that_exist():
    """docs/design.md and the package docstring draw the iteration file by file; every
    file or folder they name must be there, so the reader's path cannot drift."""
    import muzero_jax

    texts = {"docs/design.md": (ROOT / "docs" / "design.md").read_text(encoding="utf-8"),
             "muzero_jax/__init__.py": muzero_jax.__doc__}
    # files, and folders spelt from the package root (`jax/` alone is an env id prefix)
    named = re.compile(r"(?<![\w/.])((?:[a-z_]+/)*[a-z_]+\.(?:py|md)|muzero_jax/[a-z_/]+/)"
                       r"(?![\w/])")
    missing = []
    for where, text in texts.items():
        for name in sorted(set(named.findall(text))):
            if not any((base / name).exists() for base in (ROOT, PACKAGE)):
                missing.append(f"{where}: names {name}, which is neither in the repository "
                               "root nor in muzero_jax/")
    _fail(missing, "the design notes name files that exist")
