"""The docs run: every ```python and ```bash block of README.md and docs/**/*.md, and the site.

Each block is one test case, named by its page and line (`docs/long-runs.md:42`):

- `test_block_checks` (every block, the default suite): a python block compiles and
  every name it uses exists (imported names resolved by importing them, bare names
  bound by the page's blocks so far or builtins); a bash block's python commands name
  a script or module that exists, and an experiment script's flags parse and
  validate, its run directory and env are checked (the script runs up to the point
  where it would train, in this process: nothing compiles).
- `test_block_runs` (every block; in the default suite only `REAL_IN_DEFAULT`'s, the
  rest with --runslow): the python blocks of a page run in order in one process
  sharing a namespace, as in a notebook; its bash blocks run in order with `bash -e`.
  Both with `MUZERO_JAX_SMOKE=1` (training runs shrink to a budget of seconds) in a
  temporary working directory holding links to the repository's top-level entries,
  so that commands read as typed from the repository root (`python
  experiments/train.py ...`) while run directories (`runs/...`) land in the
  temporary directory.

A block is left out only with the line `<!-- docs-test: skip: <reason> -->` right above
its fence; a skip without a reason fails. `test_mkdocs_build_strict` builds the site
with `mkdocs build --strict` (a broken link, reference or docstring cross-reference
fails), and the last tests keep README.md short and every tracked text file free of
history references and pointers to a specification outside the repository.
"""

from __future__ import annotations

import ast
import builtins
import dataclasses
import functools
import importlib
import importlib.util
import os
import pathlib
import re
import runpy
import shutil
import subprocess
import sys
import textwrap

import pytest
from test_structure import HISTORY

ROOT = pathlib.Path(__file__).resolve().parent.parent
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
LANGUAGES = ("python", "bash")
SKIP = re.compile(r"^\s*<!--\s*docs-test:\s*skip:?(?P<reason>.*?)-->\s*$")
FENCE = re.compile(r"^(?P<indent>\s*)(?P<fence>`{3,}|~{3,})\s*(?P<info>[^`\s]*)")
# Pages whose blocks also run for real in the default suite (the rest run with --runslow):
# cheap ones, so that the default suite runs the whole machinery (a python page in a
# subprocess, a bash page through an experiment script in smoke mode) on every change.
REAL_IN_DEFAULT = {("docs/configuration.md", "python"), ("docs/configuration.md", "bash")}
README_MAX_LINES = 200
BLOCK_TIMEOUT_S = 600  # one page's blocks together


@dataclasses.dataclass(frozen=True)
class Block:
    page: str  # path relative to the repository root
    line: int  # line of the opening fence, 1-based
    language: str
    code: str
    skip: str | None  # the stated reason, "" for a skip without one, None if not skipped

    @property
    def name(self) -> str:
        return f"{self.page}:{self.line}"


def extract_blocks(text: str, page: str) -> list[Block]:
    """The fenced python and bash blocks of a Markdown text, in order (fences inside a
    longer fence are its content; an indented fence's content is dedented)."""
    lines = text.split("\n")
    blocks, i = [], 0
    while i < len(lines):
        match = FENCE.match(lines[i])
        if not match:
            i += 1
            continue
        fence, indent = match["fence"], len(match["indent"])
        body, j = [], i + 1
        while j < len(lines) and not re.match(rf"^\s*{re.escape(fence[0])}{{{len(fence)},}}\s*$",
                                              lines[j]):
            body.append(lines[j][indent:] if lines[j][:indent].isspace() else lines[j])
            j += 1
        language = match["info"].lower()
        if language in LANGUAGES:
            previous = next((lines[k] for k in range(i - 1, -1, -1) if lines[k].strip()), "")
            skip = SKIP.match(previous)
            blocks.append(Block(page, i + 1, language, textwrap.dedent("\n".join(body)) + "\n",
                                skip["reason"].strip() if skip else None))
        i = j + 1
    return blocks


def page_blocks() -> list[Block]:
    blocks = []
    for path in PAGES:
        if "hooks" in path.relative_to(ROOT).parts:
            continue
        blocks += extract_blocks(path.read_text(encoding="utf-8"),
                                 path.relative_to(ROOT).as_posix())
    return blocks


BLOCKS = page_blocks()


# Commands no test may run: they change the machine (installs) or nest the suite.
NEVER_RUN = re.compile(r"\b(pip3?|apt-get|apt|brew|conda)\s+(.*\s)?install\b|-m\s+pytest\b")


def _skip_or_fail(block: Block) -> None:
    if block.skip == "":
        pytest.fail(f"{block.name}: a docs-test skip needs a reason "
                    "(<!-- docs-test: skip: <reason> -->)")
    if block.skip is not None:
        pytest.skip(f"{block.name}: {block.skip}")
    if block.language == "bash" and NEVER_RUN.search(block.code):
        pytest.fail(f"{block.name}: installs packages or runs the test suite; expected a "
                    "<!-- docs-test: skip: <reason> --> line above it")


# --- the temporary working directory ----------------------------------------------

def make_workdir(path: pathlib.Path) -> pathlib.Path:
    """A directory that reads as the repository root (a link to each top-level entry
    but runs/) and keeps what commands write at its top level."""
    path.mkdir(parents=True, exist_ok=True)
    for entry in ROOT.iterdir():
        if entry.name not in (".git", "runs") and not (path / entry.name).exists():
            (path / entry.name).symlink_to(entry)
    return path


def block_env() -> dict:
    env = dict(os.environ, MUZERO_JAX_SMOKE="1", MPLBACKEND="Agg",
               NO_MKDOCS_2_WARNING="1")
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


# --- running blocks for real --------------------------------------------------------

PYTHON_RUNNER = """
import sys, traceback
blocks = {blocks!r}
namespace = {{"__name__": "__main__"}}
for line, code in blocks:
    print(f"@@ block {{line}} starts", flush=True)
    try:
        exec(compile(code, f"{page}:{{line}}", "exec"), namespace)
    except BaseException:
        traceback.print_exc()
        print(f"@@ block {{line}} failed", flush=True)
        sys.exit(1)
    print(f"@@ block {{line}} passed", flush=True)
"""


def run_python_blocks(blocks: list[Block], cwd: pathlib.Path) -> dict[int, tuple[bool, str]]:
    """Runs the blocks in order in one subprocess, sharing a namespace; {line: (passed,
    output)} for each block that ran (the first failure ends the page)."""
    page = blocks[0].page
    script = PYTHON_RUNNER.format(blocks=[(b.line, b.code) for b in blocks], page=page)
    proc = subprocess.run([sys.executable, "-c", script], cwd=cwd, env=block_env(),
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    output = proc.stdout + proc.stderr
    results: dict[int, tuple[bool, str]] = {}
    for part in re.split(r"^@@ block (?=\d+ starts$)", proc.stdout, flags=re.M)[1:]:
        line = int(part.split()[0])
        passed = f"@@ block {line} passed" in part
        results[line] = (passed, part if passed else part + proc.stderr)
    if not results:  # the runner itself failed
        results[blocks[0].line] = (False, output)
    return results


def run_bash_block(block: Block, cwd: pathlib.Path) -> tuple[bool, str]:
    proc = subprocess.run(["bash", "-e", "-c", block.code], cwd=cwd, env=block_env(),
                          capture_output=True, text=True, timeout=BLOCK_TIMEOUT_S)
    return proc.returncode == 0, f"exit {proc.returncode}\n{proc.stdout}{proc.stderr}"


@functools.cache
def _page_run(page: str, language: str, workdir: str) -> dict[int, tuple[bool, str]]:
    """Each runnable block of a page in one language, run in order once per session."""
    blocks = [b for b in BLOCKS if b.page == page and b.language == language
              and b.skip is None]
    cwd = make_workdir(pathlib.Path(workdir) / re.sub(r"\W", "_", f"{page}-{language}"))
    if language == "python":
        return run_python_blocks(blocks, cwd)
    results = {}
    for block in blocks:
        results[block.line] = run_bash_block(block, cwd)
        if not results[block.line][0]:
            break  # later blocks may build on this one
    return results


@pytest.fixture(scope="session")
def docs_workdir(tmp_path_factory) -> str:
    return str(tmp_path_factory.mktemp("docs-run"))


def _run_params():
    params = []
    for block in BLOCKS:
        marks = () if (block.page, block.language) in REAL_IN_DEFAULT else pytest.mark.slow
        params.append(pytest.param(block, id=block.name, marks=marks))
    return params


@pytest.mark.parametrize("block", _run_params())
def test_block_runs(block: Block, docs_workdir):
    _skip_or_fail(block)
    results = _page_run(block.page, block.language, docs_workdir)
    if block.line not in results:
        failed = next(line for line, (passed, _) in results.items() if not passed)
        pytest.fail(f"{block.name}: not run, the page's block at line {failed} failed")
    passed, output = results[block.line]
    assert passed, f"{block.name} ({block.language}) failed:\n{output[-6000:]}"


# --- checking blocks without running them -----------------------------------------

def _bound_names(tree: ast.AST) -> set[str]:
    """Names a piece of code binds anywhere (assignments, imports, defs, arguments...)."""
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and isinstance(node.ctx, (ast.Store, ast.Del)):
            names.add(node.id)
        elif isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
            names.add(node.name)
        elif isinstance(node, ast.arg):
            names.add(node.arg)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in node.names)
        elif isinstance(node, ast.ExceptHandler) and node.name:
            names.add(node.name)
        elif isinstance(node, (ast.Global, ast.Nonlocal)):
            names.update(node.names)
    return names


def _resolve(obj, attributes: list[str], dotted: str) -> list[str]:
    problems = []
    for i, attribute in enumerate(attributes):
        if isinstance(obj, type) and dataclasses.is_dataclass(obj) and attribute in {
                f.name for f in dataclasses.fields(obj)}:
            break  # a field without a default: an attribute of instances only
        if not hasattr(obj, attribute):
            try:  # a submodule not imported by its package yet
                obj = importlib.import_module(f"{obj.__name__}.{attribute}")
                continue
            except (ImportError, AttributeError, TypeError):
                problems.append(f"{'.'.join([dotted, *attributes[:i + 1]])}: no such name")
                break
        obj = getattr(obj, attribute)
    return problems


def _attribute_chain(node: ast.Attribute) -> tuple[str, list[str]] | None:
    chain = []
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    return (node.id, chain[::-1]) if isinstance(node, ast.Name) else None


def check_python(code: str, earlier: str = "", where: str = "<block>") -> list[str]:
    """What is wrong with a python block, without running it: a syntax error, an import
    that fails, an attribute of an imported module or of a name imported from one that
    does not exist, a bare name no block of the page so far binds. [] if nothing."""
    try:
        tree = ast.parse(code, where)
    except SyntaxError as e:
        return [f"syntax error at line {e.lineno}: {e.msg}"]
    context = ast.parse(earlier) if earlier else ast.Module(body=[], type_ignores=[])
    imported: dict[str, object] = {}  # local name -> the module or object it stands for
    problems = []
    for node in [*ast.walk(context), *ast.walk(tree)]:
        try:
            if isinstance(node, ast.Import):
                for alias in node.names:
                    module = importlib.import_module(alias.name)
                    if alias.asname:
                        imported[alias.asname] = module
                    else:
                        imported[alias.name.split(".")[0]] = importlib.import_module(
                            alias.name.split(".")[0])
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                module = importlib.import_module(node.module)
                for alias in node.names:
                    if alias.name == "*":
                        continue
                    found = _resolve(module, [alias.name], node.module)
                    problems += found
                    if not found:
                        imported[alias.asname or alias.name] = getattr(module, alias.name)
        except ImportError as e:
            problems.append(f"import fails: {e}")
    bound = _bound_names(context) | _bound_names(tree) | set(dir(builtins))
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and isinstance(node.ctx, ast.Load):
            chain = _attribute_chain(node)
            if chain and chain[0] in imported:
                problems += _resolve(imported[chain[0]], chain[1], chain[0])
        elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Load):
            if node.id not in bound:
                problems.append(f"{node.id}: not defined by this page's blocks")
    return sorted(set(problems))


# Shadows `python` in a bash block: records each call's line, XLA_FLAGS and arguments
# (NUL-separated, one call a line) instead of running it.
CAPTURE = """
python() {
    printf '%s\\0' "${BASH_LINENO[0]}" "XLA_FLAGS=${XLA_FLAGS-}" "$@" >> "$DOCS_TEST_CALLS"
    printf '\\n' >> "$DOCS_TEST_CALLS"
}
python3() { python "$@"; }
"""
# The only programs a bash block may run while its python commands are collected (on
# a PATH of their own): what commands' arguments are built with. Anything else (pip,
# apt-get, tensorboard) is "command not found" there.
HARMLESS = ("mktemp", "mkdir", "ls", "cat", "head", "tail", "touch", "dirname",
            "basename", "date", "seq", "true", "false", "env")


def python_calls(code: str, cwd: pathlib.Path) -> list[list[str]]:
    """The argument lists the block's `python` commands get, with the shell's expansions
    (`$(mktemp -d)`, variables) done; of the other commands only `HARMLESS` run, errors
    ignored."""
    calls, path = cwd / "calls", cwd / "harmless-bin"
    calls.unlink(missing_ok=True)
    calls.touch()
    path.mkdir(exist_ok=True)
    for program in HARMLESS:
        if shutil.which(program) and not (path / program).exists():
            (path / program).symlink_to(shutil.which(program))
    env = dict(block_env(), DOCS_TEST_CALLS=str(calls), PATH=str(path))
    subprocess.run([shutil.which("bash"), "-c", CAPTURE + code], cwd=cwd, env=env,
                   capture_output=True, timeout=60)
    offset = CAPTURE.count("\n")
    recorded = [call.split("\0") for call in calls.read_text().split("\0\n") if call]
    return [[str(int(call[0]) - offset), *call[1:]] for call in recorded]


def _may_fail(code: str, call: list[str]) -> bool:
    """Whether the block's line of a recorded call lets it fail (`cmd || ...`, `if cmd`,
    `! cmd`): a block that shows an error message, run with `bash -e` all the same."""
    line = code.split("\n")[int(call[0]) - 1]
    return bool(re.search(r"\|\||^\s*(if|!)\s", line))


def _devices_of_its_own(call: list[str]) -> bool:
    """Whether a recorded call sets XLA_FLAGS of its own (a host device count, which a
    check in this process cannot take)."""
    return call[1] != f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}"


class _WouldTrain(BaseException):
    """Raised in place of training: everything before it parsed and validated."""


def _would_train(*args, **kwargs):
    raise _WouldTrain


def check_script(path: pathlib.Path, argv: list[str], cwd: pathlib.Path, monkeypatch,
                 any_devices: bool = False) -> str | None:
    """Runs an experiment script in this process up to where it would train (flags,
    preset, config validation, run directory and env checks); a message if it exits
    otherwise than at that point or with --help."""
    from muzero_jax import distributed, experiment

    with monkeypatch.context() as patch:
        patch.setattr(experiment, "train", _would_train)
        # jax.distributed starts before any JAX call, which this process has long made.
        patch.setattr(distributed, "initialize", lambda *args: None)
        if any_devices:
            patch.setattr(distributed, "check_visible", lambda num_devices: None)
        patch.setattr(sys, "argv", [str(path), *argv])
        patch.chdir(cwd)
        patch.setenv("MUZERO_JAX_SMOKE", "1")
        patch.setattr(sys, "path", list(sys.path))  # the scripts put their cwd on it
        try:
            runpy.run_path(str(path), run_name="__main__")
        except _WouldTrain:
            return None
        except SystemExit as e:
            if e.code in (0, None):
                return None
            return f"{path.name} {' '.join(argv)}: exit {e.code}"
    return None  # a script that does not train (it ran to its end)


def check_call(call: list[str], cwd: pathlib.Path, monkeypatch) -> list[str]:
    """What is wrong with one python command of a bash block (`python_calls`'s form),
    without running it."""
    args = [a for a in call[2:] if a not in ("-u", "-O", "-B")]
    if not args:
        return ["python without a script: an interactive session"]
    if args[0] == "-c":
        return check_python(args[1], where="python -c")
    if args[0] == "-m":
        module = args[1]
        if module in ("pip", "pytest"):
            return []  # run for real only (installs, the suite)
        return [] if importlib.util.find_spec(module) else [f"python -m {module}: no such "
                                                          "module"]
    script = cwd / args[0]
    if not script.is_file():
        return [f"{args[0]}: no such script"]
    compile(script.read_text(), str(script), "exec")
    resumed = args[args.index("--resume") + 1] if "--resume" in args[:-1] else None
    if resumed is not None and not (cwd / resumed).is_dir():
        return []  # a run an earlier block trains: checked when the blocks run
    if script.resolve().parent == ROOT / "experiments":
        problem = check_script(script.resolve(), args[1:], cwd, monkeypatch,
                               any_devices=_devices_of_its_own(call))
        return [problem] if problem else []
    return []


@pytest.mark.parametrize("block", [pytest.param(b, id=b.name) for b in BLOCKS])
def test_block_checks(block: Block, tmp_path, monkeypatch, capsys):
    _skip_or_fail(block)
    if block.language == "python":
        earlier = "\n".join(b.code for b in BLOCKS if b.page == block.page
                            and b.language == "python" and b.line < block.line
                            and b.skip is None)
        problems = check_python(block.code, earlier, block.name)
    else:
        cwd = make_workdir(tmp_path / "work")
        problems = []
        for call in python_calls(block.code, cwd):
            found = check_call(call, cwd, monkeypatch)
            if found and _may_fail(block.code, call) and all("exit 2" in f for f in found):
                continue  # a refusal the block shows on purpose
            problems += found
    assert not problems, f"{block.name}: " + "; ".join(problems)


# --- the checks themselves fail on what they must catch -----------------------------

def test_the_checks_catch_a_misspelled_name():
    assert check_python("import muzero_jax as mz\nconfig = mz.cartpole()\n") == []
    assert check_python("import muzero_jax as mz\nmz.cartpol()\n") == [
        "mz.cartpol: no such name"]
    assert check_python("from muzero_jax import cartpol\n") == ["muzero_jax.cartpol: no "
                                                               "such name"]
    assert check_python("import muzero_jax as mz\nmz.presets.cartpol()\n") == [
        "mz.presets.cartpol: no such name"]
    assert check_python("print(confg)\n", earlier="config = 1\n") == [
        "confg: not defined by this page's blocks"]
    assert check_python("print(config)\n", earlier="config = 1\n") == []


def test_the_checks_catch_a_misspelled_flag_and_a_missing_script(tmp_path, monkeypatch,
                                                                 capsys):
    cwd = make_workdir(tmp_path / "work")
    calls = python_calls('D=$(mktemp -d)\npython experiments/train.py --env CartPole-v1 \\\n'
                         '    --search.num_simulations 8 --out "$D/x"\n', cwd)
    assert len(calls) == 1 and calls[0][0] == "2" and calls[0][2:5] == [
        "experiments/train.py", "--env", "CartPole-v1"]
    assert check_call(calls[0], cwd, monkeypatch) == []
    flags = f"XLA_FLAGS={os.environ.get('XLA_FLAGS', '')}"
    bad = ["1", flags, "experiments/train.py", "--serch.num_simulations", "8"]
    assert check_call(bad, cwd, monkeypatch) == [
        "train.py --serch.num_simulations 8: exit 2"]
    assert "serch" in capsys.readouterr().err
    code = "python experiments/train.py --serch.num_simulations 8 || echo refused\n"
    shown = python_calls(code, cwd)[0]
    assert _may_fail(code, shown) and not _may_fail(code.replace("||", ";"), shown)
    assert check_call(["1", flags, "experiments/trian.py"], cwd, monkeypatch) == [
        "experiments/trian.py: no such script"]
    assert check_call(["1", flags, "-m", "muzero_jax.evalute"], cwd, monkeypatch) == [
        "python -m muzero_jax.evalute: no such module"]


def test_a_block_calling_a_missing_name_fails_when_run(tmp_path):
    blocks = extract_blocks("# Page\n\n```python\nimport muzero_jax as mz\n```\n\ntext\n\n"
                            "```python\nmz.cartpol()\n```\n", "docs/page.md")
    results = run_python_blocks(blocks, make_workdir(tmp_path / "work"))
    assert results[3][0] and not results[9][0]
    assert "AttributeError" in results[9][1] and "cartpol" in results[9][1]


def test_installs_and_the_suite_are_never_run():
    for code in ("python -m pip install -r requirements.txt\n", "pip install -q x\n",
                 "sudo apt-get install graphviz\n", "python -m pytest -q tests\n"):
        with pytest.raises(pytest.fail.Exception, match="installs packages"):
            _skip_or_fail(Block("p.md", 1, "bash", code, None))
    _skip_or_fail(Block("p.md", 1, "bash", "python experiments/train.py --help\n", None))


def test_extract_blocks_reads_fences_skips_and_indentation():
    text = ("```python\na = 1\n```\n\n<!-- docs-test: skip: GPU only -->\n```bash\nls\n```\n"
            "<!-- docs-test: skip -->\n```python\nb\n```\n- item\n\n    ```bash\n    echo x\n"
            "    ```\n````markdown\n```python\nnot a block\n```\n````\n```text\nno\n```\n")
    blocks = extract_blocks(text, "p.md")
    assert [(b.line, b.language, b.code, b.skip) for b in blocks] == [
        (1, "python", "a = 1\n", None), (6, "bash", "ls\n", "GPU only"),
        (10, "python", "b\n", ""), (15, "bash", "echo x\n", None)]


# --- the site, the README, the repository's text ------------------------------------

def test_mkdocs_build_strict(tmp_path):
    assert shutil.which("mkdocs"), "mkdocs is not installed: pip install -r requirements.txt"
    proc = subprocess.run(["mkdocs", "build", "--strict", "--site-dir", str(tmp_path / "site")],
                          cwd=ROOT, env=block_env(), capture_output=True, text=True,
                          timeout=600)
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-4000:]
    site = tmp_path / "site"
    # The generated parts: every field's flag, every preset, every top-level name, the
    # notebook and the changelog from outside docs/.
    configuration = (site / "configuration" / "index.html").read_text()
    import muzero_jax as mz
    from muzero_jax.config import STAGES

    for stage, cls in STAGES.items():
        for field in dataclasses.fields(cls):
            assert f"--{stage}.{field.name}<" in configuration, field.name
    for name in mz.PRESETS:
        assert f'id="preset-{name}"' in configuration, name
    top_level = (site / "reference" / "muzero_jax" / "index.html").read_text()
    assert all(f"mz.{name}<" in top_level for name in mz.__all__)
    assert "quickstart" in (site / "quickstart" / "index.html").read_text()
    assert (site / "changelog" / "index.html").is_file()


def test_readme_is_short():
    lines = (ROOT / "README.md").read_text(encoding="utf-8").count("\n")
    assert lines <= README_MAX_LINES, f"README.md: {lines} lines; expected at most " \
                                      f"{README_MAX_LINES}"


# Files that state the rule itself (its patterns, its examples).
RULE_FILES = {"tests/test_structure.py", "tests/test_docs.py"}


def _tracked_text_files() -> list[pathlib.Path]:
    if not (ROOT / ".git").exists():
        pytest.skip("not a git checkout: no list of tracked files")
    names = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True,
                           check=True).stdout.decode().split("\0")
    files = []
    for name in filter(None, names):
        path = ROOT / name
        if name in RULE_FILES or not path.is_file():
            continue
        head = path.open("rb").read(8192)
        if b"\0" not in head:
            files.append(path)
    return files


def test_no_history_reference_or_spec_pointer_in_tracked_files():
    violations = []
    for path in _tracked_text_files():
        text = path.read_text(encoding="utf-8", errors="replace")
        for number, line in enumerate(text.split("\n"), 1):
            for pattern, what in HISTORY:
                if pattern.search(line):
                    violations.append(f"{path.relative_to(ROOT)}:{number}: {what}: "
                                      f"{line.strip()[:100]}")
    assert not violations, f"{len(violations)} line(s):\n" + "\n".join(violations[:60])


# --- smoke mode ----------------------------------------------------------------------

def test_smoke_mode_shrinks_a_run_to_seconds_and_only_when_set(monkeypatch, capsys):
    import muzero_jax as mz
    from muzero_jax import config as config_lib
    from muzero_jax import smoke

    config = mz.cartpole()
    for value in (None, "", "0"):
        if value is None:
            monkeypatch.delenv("MUZERO_JAX_SMOKE", raising=False)
        else:
            monkeypatch.setenv("MUZERO_JAX_SMOKE", value)
        assert smoke.shrink(config) is config
    monkeypatch.setenv("MUZERO_JAX_SMOKE", "1")
    small = smoke.shrink(config)
    assert capsys.readouterr().out.startswith("smoke mode (MUZERO_JAX_SMOKE=1): 400 env steps")
    assert (small.acting.num_envs, small.search.num_simulations, small.learner.batch_size,
            small.learner.updates_per_iteration, small.run.final_eval_episodes,
            small.run.eval_episodes, small.replay.min_size, small.run.total_env_steps) == (
        4, 4, 16, 2, 2, 2, 100, 400)
    # Replay is ready at iteration 3 (a window of 56 steps in 25-step rollouts): two of
    # the four iterations learn, and the config is one that trains.
    assert config_lib.first_update_iteration(small) == 3
    config_lib.validate_budget(small)
    mz.validate(small)
    assert small.network == config.network and small.env == config.env
    assert smoke.shrink(small) == small and capsys.readouterr().out == ""  # idempotent
    # Totals split over devices stay multiples of the device count.
    eight = smoke.shrink(config.replace(num_devices=8))
    assert (eight.acting.num_envs, eight.learner.batch_size) == (8, 16)
    # A budget smaller than smoke mode's stays as asked.
    assert smoke.shrink(config.replace(total_env_steps=350)).run.total_env_steps == 350
