"""The error contract (minirun/errors.py): its table is what the code does, and both
executables keep it: one prefixed line, the front end's exit code, no traceback."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from minirun import errors
from minirun.errors import (CgroupError, CommandNotExecutable, CommandNotFound, HostError, SetupError, SpecError,
                            UsageError)
from minirun.oci import log as oci_log
from minirun.vm.errors import VMTimeout

BIN = os.path.dirname(sys.executable)

# One example of each kind the table names, by its "raised as" column
EXAMPLES = {
    "UsageError": UsageError("unknown option --x"),
    "SpecError": SpecError("--memory 1k is below the minimum of 6m"),
    "HostError": HostError("minirun must run as root"),
    "SetupError": SetupError("pivot_root", 22),
    "CgroupError": CgroupError("/sys/fs/cgroup/x/memory.max: Permission denied"),
    "CommandNotFound": CommandNotFound("nope: command not found"),
    "CommandNotExecutable": CommandNotExecutable("/etc/passwd: permission denied"),
    "OSError": FileNotFoundError(2, "No such file or directory", "/nowhere"),
    "any other Exception": ZeroDivisionError("division by zero"),
    "KeyboardInterrupt": KeyboardInterrupt(),
    "VMTimeout": VMTimeout("COMMAND did not finish within 5 s"),
}


def _table() -> dict[str, tuple[str, str]]:
    """The docstring's table: "raised as" -> (minirun's cell, minirun-oci's cell)."""
    lines = errors.__doc__.split("-------------------------  ")[1].split("\n\n")[0].splitlines()[1:]
    rows = {}
    for line in lines:
        cells = re.split(r"\s{2,}", line.strip())
        assert len(cells) == 4, line
        rows[cells[1]] = (cells[2], cells[3])
    return rows


def test_the_table_names_every_kind():
    assert set(_table()) == set(EXAMPLES)


@pytest.mark.parametrize("kind", list(EXAMPLES))
def test_the_table_is_what_the_code_does(kind):
    err = EXAMPLES[kind]
    minirun_cell, oci_cell = _table()[kind]
    assert errors.exit_code(err, "minirun") == int(minirun_cell)
    if oci_cell == "-":  # minirun only (the VM companion)
        return
    plain = int(oci_cell.split()[0])
    assert errors.exit_code(err, "minirun-oci", "create") == plain
    exec_code = re.search(r"\(exec: (\d+)\)", oci_cell)
    assert errors.exit_code(err, "minirun-oci", "exec") == (int(exec_code.group(1)) if exec_code else plain)


def test_a_code_the_detached_supervisor_passed_on_is_kept():
    err = errors.MiniRunError("the container failed")
    err.exit_code = 127  # lifecycle.run_detached: the supervisor's report
    assert errors.exit_code(err, "minirun") == 127


def test_messages_are_one_line():
    assert errors.message(SpecError("a\nb")) == "a b"
    assert errors.message(EXAMPLES["OSError"]) == "/nowhere: No such file or directory"
    assert errors.message(EXAMPLES["any other Exception"]).startswith("internal error: ZeroDivisionError: ")
    assert errors.error_line("boom", "minirun-oci") == "minirun-oci: boom"
    assert errors.warning_line("careful", "minirun") == "minirun: warning: careful"


def test_warn_goes_to_the_front_ends_sink(capsys):
    seen = []
    errors.set_front_end("minirun-oci", seen.append)
    try:
        errors.warn("no sealed copy")
    finally:
        errors.set_front_end("minirun")
    errors.warn("to stderr")
    assert seen == ["no sealed copy"]
    assert capsys.readouterr().err == "minirun: warning: to stderr\n"


@pytest.mark.parametrize("text, quoted", [
    ("plain", "plain"),
    ("a/b.c-d_e@f^g+h", "a/b.c-d_e@f^g+h"),
    ("", ""),  # logrus leaves an empty value bare
    ("two words", '"two words"'),
    ('say "hi"', r'"say \"hi\""'),
    ("line\nbreak\ttab\\", r'"line\nbreak\ttab\\"'),
    ("bell\x07 del\x7f nul\x00", r'"bell\a del\x7f nul\x00"'),
    ("caf\u00e9 \u2028", '"caf\u00e9 \\u2028"'),
    ("bad byte \udcff", r'"bad byte \xff"'),
])
def test_log_text_values_are_quoted_as_logrus_quotes_them(text, quoted):
    """logrus's TextFormatter: bare if only [A-Za-z0-9-._/@^+], else Go's strconv.Quote."""
    assert oci_log.text_value(text) == quoted


def _run(argv, **kw):
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, **kw)


def _one_line(out, program: str, code: int, fragment: str) -> None:
    assert out.returncode == code, (out.returncode, out.stderr)
    assert "Traceback" not in out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"{program}: ") and fragment in lines[0], out.stderr


@pytest.mark.parametrize("args, code, fragment", [
    (["frobnicate", "x"], 1, "unknown command"),                    # runc: fatal -> 1
    (["create", "--bogus-flag", "x"], 1, "unknown option --bogus-flag"),
    (["--log-format", "yaml", "list"], 1, "--log-format 'yaml'"),
    (["state", "ghost"], 1, "container 'ghost' does not exist"),
    (["delete", "a/b"], 1, "invalid container id"),
    (["exec", "ghost", "/bin/true"], 255, "container 'ghost' does not exist"),  # runc exec.go: 255
    (["exec"], 1, "exec: expects ID"),                                # checkArgs: 1, as runc
])
def test_minirun_oci_bad_input(args, code, fragment, tmp_path):
    log = tmp_path / "log.json"
    out = _run([os.path.join(BIN, "minirun-oci"), "--root", str(tmp_path / "root"), "--log", str(log),
                "--log-format", "json", *args])
    _one_line(out, "minirun-oci", code, fragment)
    if log.exists():  # written once the global options parsed
        records = [json.loads(line) for line in log.read_text().splitlines()]
        assert records[-1]["level"] == "error" and fragment in records[-1]["msg"]


def test_minirun_oci_text_log_escapes_the_message(tmp_path):
    """A message holding a quote and a newline stays one logrus line: msg="...\\"...\\n..." ."""
    log = tmp_path / "log"
    bundle = tmp_path / 'say "no"\nplease'
    out = _run([os.path.join(BIN, "minirun-oci"), "--root", str(tmp_path / "root"), "--log", str(log),
                "create", "--bundle", str(bundle), "x"])
    _one_line(out, "minirun-oci", 1, "no such directory")
    lines = log.read_text().splitlines()
    assert len(lines) == 1, lines
    match = re.fullmatch(r'time="[^"]+" level=error msg=("(?:[^"\\]|\\.)*")', lines[0])
    assert match, lines[0]
    assert json.loads(match.group(1)) == out.stderr.strip().removeprefix("minirun-oci: ")


@pytest.mark.parametrize("args, fragment", [
    (["--no-such-option"], "No such option"),
    (["run", "--memory", "1k", "/tmp", "/bin/true"], "--memory 1k is below the minimum"),
    (["run", "/nonexistent", "/bin/true"], "rootfs /nonexistent: no such directory"),
    (["inspect", "ghost-of-errors-test"], "no such container"),
])
def test_minirun_bad_input(args, fragment):
    _one_line(_run([os.path.join(BIN, "minirun"), *args]), "minirun", 125, fragment)
