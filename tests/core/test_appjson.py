import pytest

from agent.appjson import AppJsonError, parse_app_json


def test_empty_means_no_checks():
    assert parse_app_json("").checks == ()


def test_dokku_startup_checks_are_read():
    parsed = parse_app_json("""{
      "healthchecks": {"web": [
        {"type": "startup", "name": "ready", "path": "/health", "content": "ok",
         "attempts": 3, "timeout": 2, "wait": 0.5, "initialDelay": 1,
         "httpHeaders": [{"name": "X-Check", "value": "1"}]},
        {"type": "liveness", "path": "/live"}
      ]},
      "formation": {"web": {"quantity": 2}, "worker": {"quantity": 1}}
    }""")
    (check,) = parsed.checks
    assert (check.path, check.content, check.attempts, check.timeout) == ("/health", "ok", 3, 2.0)
    assert (check.wait, check.initial_delay, check.headers) == (0.5, 1.0, (("X-Check", "1"),))
    assert not check.default
    assert parsed.formation == {"web": 2, "worker": 1}


@pytest.mark.parametrize("text, problem", [
    ("{", "not valid JSON"),
    ("[]", "expected an object"),
    ('{"healthchecks": {"web": [{"path": "health"}]}}', "absolute path"),
    ('{"healthchecks": {"web": [{"attempts": 0}]}}', "between"),
    ('{"healthchecks": {"web": [{"attempts": "3"}]}}', "must be a number"),
    ('{"healthchecks": {"web": [{"command": ["true"]}]}}', "only HTTP checks"),
    ('{"formation": {"web": {"quantity": -1}}}', "quantity"),
])
def test_invalid_app_json_is_refused_with_the_reason(text, problem):
    with pytest.raises(AppJsonError) as caught:
        parse_app_json(text)
    assert problem in str(caught.value)
