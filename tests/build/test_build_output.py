"""Reading the engine's build stream: tidy lines, steps with cache use, errors, tail."""

from __future__ import annotations

from typing import Any

from agent.build.output import BuildOutput

CACHED_THEN_RUN: list[dict[str, Any]] = [
    {"stream": "Step 1/4 : FROM base:1"},
    {"stream": "\n"},
    {"stream": " ---> ffbf0546f6de\n"},
    {"stream": 'Step 2/4 : COPY ["app/requirements.txt", "./"]\n'},
    {"stream": " ---> Using cache\n ---> 2740f8226b1d\n"},
    {"stream": "Step 3/4 : RUN pip install -r requirements.txt\n"},
    {"stream": " ---> Running in 5e1f0c2a9b7d\n"},
    {"stream": "Collecting flask\n  Downloading flask-3.1.3.whl (103 kB)\n"},
    {"stream": "\x1b[1mInstalling\x1b[0m collected\rInstalling collected packages: flask\n"},
    {"stream": "Removing intermediate container 5e1f0c2a9b7d\n"},
    {"stream": " ---> f78c9e403cdd\n"},
    {"stream": 'Step 4/4 : CMD ["/bin/sh"]\n ---> Running in 0a1b2c3d4e5f\n'},
    {"stream": "Removing intermediate container 0a1b2c3d4e5f\n ---> 99813abd297e\n"},
    {"aux": {"ID": "sha256:" + "9" * 64}},
    {"stream": "Successfully built 99813abd297e\n"},
    {"stream": "Successfully tagged berth/app:v1\n"},
]


def feed_all(output: BuildOutput, chunks: list[dict[str, Any]]) -> list[str]:
    lines: list[str] = []
    for chunk in chunks:
        lines += output.feed(chunk)
    return lines + output.finish()


def test_tidy_lines_and_steps() -> None:
    output = BuildOutput(tail_lines=10)
    lines = feed_all(output, CACHED_THEN_RUN)
    assert lines == [
        "       [1/4] FROM base:1",
        '       [2/4] COPY ["app/requirements.txt", "./"] (cached)',
        "       [3/4] RUN pip install -r requirements.txt",
        "         Collecting flask",
        "           Downloading flask-3.1.3.whl (103 kB)",
        "         Installing collected packages: flask",
        '       [4/4] CMD ["/bin/sh"]',
    ]
    assert [(s.number, s.cached, s.layer_id) for s in output.steps] == [
        (1, False, "ffbf0546f6de"),
        (2, True, "2740f8226b1d"),
        (3, False, "f78c9e403cdd"),
        (4, False, "99813abd297e"),
    ]
    assert output.image_id == "sha256:" + "9" * 64
    assert output.error is None
    assert output.container_id is None


def test_running_container_is_known_while_a_step_runs() -> None:
    output = BuildOutput(tail_lines=10)
    feed_all(output, CACHED_THEN_RUN[:7])
    assert output.container_id == "5e1f0c2a9b7d"
    assert output.current_step == "step 3/4 (RUN pip install -r requirements.txt)"


def test_failure_keeps_step_reason_and_tail() -> None:
    output = BuildOutput(tail_lines=3)
    chunks = CACHED_THEN_RUN[:8] + [
        {"stream": "ERROR: No matching distribution found for nope\n"},
        {
            "errorDetail": {
                "code": 1,
                "message": "The command '/bin/sh -c pip install' returned a non-zero code: 1",
            },
            "error": "The command '/bin/sh -c pip install' returned a non-zero code: 1",
        },
    ]
    lines = feed_all(output, chunks)
    assert lines[-1] == "       The command '/bin/sh -c pip install' returned a non-zero code: 1"
    assert output.reason == "exit code 1"
    assert output.current_step.startswith("step 3/4")
    assert output.tail() == (
        "  Downloading flask-3.1.3.whl (103 kB)",
        "ERROR: No matching distribution found for nope",
        "The command '/bin/sh -c pip install' returned a non-zero code: 1",
    )


def test_other_errors_keep_their_first_line() -> None:
    output = BuildOutput(tail_lines=5)
    output.feed({"error": "pull access denied for nope, repository does not exist\nmore"})
    assert output.reason == "pull access denied for nope, repository does not exist"


def test_long_instructions_are_shortened_for_display_only() -> None:
    output = BuildOutput(tail_lines=5)
    long = "RUN " + "x" * 300
    lines = feed_all(output, [{"stream": f"Step 1/1 : {long}\n ---> abcdef123456\n"}])
    assert len(lines[0]) < 140 and lines[0].endswith("…")
    assert output.steps[0].instruction == long


def test_pull_status_is_shown_without_progress_noise() -> None:
    output = BuildOutput(tail_lines=5)
    shown = output.feed({"status": "Pulling from library/python"})
    shown += output.feed({"status": "Downloading", "id": "abc", "progress": "[==>  ]"})
    assert shown == ["         Pulling from library/python"]
