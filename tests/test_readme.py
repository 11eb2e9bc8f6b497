"""README.md: its Python snippets run (in order, one namespace), its shell commands parse with the
real CLI, its install commands are the project's, and its catalogue table lists every entry."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
README = (ROOT / "README.md").read_text()


def _blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README, flags=re.S)


def test_install_commands():
    bash = _blocks("bash")
    assert "pip install -c constraints.txt -e . && unfold verify\n" in bash
    assert "pip install -c constraints.txt -e '.[test]' && pytest\n" in bash


def test_python_snippets_run():
    snippets = _blocks("python")
    assert len(snippets) >= 4
    ns: dict = {"__name__": "readme"}
    for i, code in enumerate(snippets):
        try:
            exec(compile(code, f"README.md snippet {i + 1}", "exec"), ns)  # safe: our own README's code
        except Exception as exc:  # pragma: no cover - the message names the snippet
            pytest.fail(f"README snippet {i + 1} raised {type(exc).__name__}: {exc}\n{code}")


def test_shell_commands_parse_with_the_cli():
    from unfold.cli import build_parser

    parser = build_parser()
    lines = [line.split("  #")[0].strip() for b in _blocks("bash") for line in b.splitlines()]
    cmds = [line for line in lines if line.startswith("unfold ")]
    assert len(cmds) >= 5
    for c in cmds:
        argv = shlex.split(c)[1:]
        if argv[0] == "bench":  # as in unfold.cli.main: everything after `bench` is the bench's
            from benchmarks.bench import _parser

            _parser().parse_args(argv[1:])
            continue
        args = parser.parse_args(argv)
        assert args.command in ("list", "derive", "verify", "reproduce", "audit"), c


def test_catalogue_table_lists_every_entry():
    from unfold.catalogue import entries as load_entries

    table = README.split("## The catalogue", 1)[1].split("\n## ", 1)[0]
    names = [e.name for e in load_entries()]
    for name in names:
        assert f"| `{name}` |" in table, f"README catalogue table misses entry {name!r}"
    for listed in re.findall(r"^\| `([a-z_0-9]+)` \|", table, flags=re.M):
        assert listed in names, f"README catalogue table lists {listed!r}, which is not a catalogue entry"
