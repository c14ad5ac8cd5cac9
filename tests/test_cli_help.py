"""The `mepkg` command explains itself: descriptions, examples, defaults, options.

Fast (no pipeline work): the parser and the help text only. The commands'
behaviour end to end is in tests/test_cli.py.
"""

from __future__ import annotations

import argparse
import io
import re

import pytest

from mepkg import cli

PARSER = cli.build_parser()
COMMANDS = next(a for a in PARSER._actions if isinstance(a, argparse._SubParsersAction)).choices
SPOT = ["spot", "clip.mp4", "--model", "model.pt"]


def help_text(*argv: str, capsys) -> str:
    with pytest.raises(SystemExit) as stop:
        cli.main([*argv, "--help"])
    assert stop.value.code == 0
    return capsys.readouterr().out


def test_top_level_help_is_plain_text_listing_every_command(capsys):
    text = help_text(capsys=capsys)
    assert "``" not in text and ":func:" not in text and ".. " not in text
    for name in COMMANDS:
        assert re.search(rf"^    {re.escape(name)}\b", text, re.M), f"{name} not listed"
    assert "mepkg spot my_video.mp4" in text                      # an example


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_has_a_description_an_example_and_help_on_every_option(name, capsys):
    parser = COMMANDS[name]
    assert parser.description and len(parser.description) > 40
    text = help_text(name, capsys=capsys)
    example = text.split("example:\n", 1)
    assert len(example) == 2 and example[1].strip().startswith(f"mepkg {name} ")
    undocumented = [a.option_strings or a.dest for a in parser._actions if not a.help]
    assert not undocumented, f"mepkg {name}: options without help {undocumented}"


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_command_help_lists_its_defaults(name, capsys):
    text = " ".join(help_text(name, capsys=capsys).split())       # unwrap the columns
    defaults = {a.option_strings[-1]: a.default for a in COMMANDS[name]._actions
                if a.option_strings and a.default not in (None, False, argparse.SUPPRESS)}
    for option, value in defaults.items():
        assert f"(default: {value})" in text, f"mepkg {name} --help: {option}'s default {value}"


def test_the_issue_defaults_are_shown(capsys):
    features = " ".join(help_text("features", capsys=capsys).split())
    assert "(default: 30)" in features and "(default: 7)" in features
    spot = " ".join(help_text("spot", capsys=capsys).split())
    assert "(default: spot_out)" in spot and "(default: auto)" in spot
    assert "(default: tiny)" in " ".join(help_text("synth", capsys=capsys).split())
    assert "(default: 1)" in " ".join(help_text("train-fold", capsys=capsys).split())


@pytest.mark.parametrize("argv, verbose, quiet", [
    (["-v", *SPOT], True, False),
    ([*SPOT, "-v"], True, False),              # after the sub-command too
    (["spot", "-v", "clip.mp4", "--model", "model.pt"], True, False),
    ([*SPOT, "-q"], False, True),
    (["-q", *SPOT], False, True),
    (SPOT, False, False),
])
def test_verbose_and_quiet_before_or_after_the_command(argv, verbose, quiet):
    import logging

    args = PARSER.parse_args(argv)
    assert (args.verbose, args.quiet) == (verbose, quiet)
    assert cli.log_level(args) == (logging.DEBUG if verbose else
                                   logging.WARNING if quiet else logging.INFO)


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.mark.parametrize("terminal", [True, False])
@pytest.mark.parametrize("option, expected", [([], None), (["--progress"], True),
                                              (["--no-progress"], False)])
def test_progress_bars_only_on_a_terminal_unless_asked(monkeypatch, terminal, option, expected):
    monkeypatch.setattr("sys.stderr", _Terminal() if terminal else io.StringIO())
    for argv in ([*option, *SPOT], [*SPOT, *option]):
        args = PARSER.parse_args(argv)
        assert cli.show_progress(args) is (terminal if expected is None else expected)
