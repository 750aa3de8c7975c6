"""`synth make`: writes the video, prints its questions; user errors are one `error:` line, exit 2."""
import json

import click
import pytest
from click.testing import CliRunner

from omnivideo.cli.console import ErrorBoundaryGroup
from omnivideo.synth.command import register


@pytest.fixture
def cli():
    @click.group(cls=ErrorBoundaryGroup)
    def group():
        "test group"
    register(group)
    return group


def test_make_json(cli, tmp_path):
    out = tmp_path / "clip.mp4"
    result = CliRunner().invoke(cli, ["synth", "make", str(out), "--seed", "3", "--seconds", "20",
                                      "--codec", "mp4v", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    assert out.stat().st_size > 0 and report["video"] == str(out) and report["duration_s"] == 20
    assert {q["kind"] for q in report["questions"]} >= {"needle", "count", "grounding"}
    assert all(q["question"] and q["answer"] for q in report["questions"])


def test_make_text(cli, tmp_path):
    result = CliRunner().invoke(cli, ["synth", "make", str(tmp_path / "c.mp4"), "--seed", "1", "--minutes", "0.25",
                                      "--codec", "mp4v"])
    assert result.exit_code == 0 and "[needle] What colour is the" in result.output


@pytest.mark.parametrize("args,message", [
    (["--seed", "-4"], "seed must be"), (["--seed", "1", "--minutes", "61"], "duration must be"),
    (["--seed", "1", "--minutes", "0"], "--minutes must be"), (["--seed", "1", "--minutes", "1", "--seconds", "9"], "not both"),
])
def test_user_errors(cli, tmp_path, args, message):
    result = CliRunner().invoke(cli, ["synth", "make", str(tmp_path / "c.mp4")] + args)
    assert result.exit_code == 2
    lines = [line for line in result.output.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:") and message in lines[0]


def test_unwritable_path(cli, tmp_path):
    result = CliRunner().invoke(cli, ["synth", "make", str(tmp_path / "nope" / "c.mp4"), "--seed", "1"])
    assert result.exit_code == 2 and result.output.startswith("error: cannot write")
