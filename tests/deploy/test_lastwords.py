"""A dead instance's last lines as its crash event carries them: bounded, and no config
var value (an add-on URL, its password) ever shown."""

from __future__ import annotations

from agent.deploy.lastwords import LINE_LENGTH, LINES, last_words, with_last_words

CONFIG = {
    "DATABASE_URL": "postgres://app:s3cr%2Fet-pw@db.internal:5432/shop",
    "SECRET_KEY": "k" * 40,
    "PORT": "5000",
    "DEBUG": "1",
}


def test_config_values_and_url_passwords_are_hidden():
    said = last_words([
        "connecting to postgres://app:s3cr%2Fet-pw@db.internal:5432/shop",
        "password was s3cr%2Fet-pw, or s3cr/et-pw unquoted",
        f"key {'k' * 40} on port 5000, debug 1",
    ], CONFIG)
    assert said == [
        "connecting to [DATABASE_URL]",
        "password was [DATABASE_URL password], or [DATABASE_URL password] unquoted",
        "key [SECRET_KEY] on port 5000, debug 1",
    ]
    assert not any("s3cr" in line or "kkkkkk" in line for line in said)


def test_only_the_last_lines_each_cut_to_a_bound():
    tail = [f"line {n}" for n in range(30)] + ["", "   ", "x" * 5000]
    said = last_words(tail, {})
    assert len(said) == LINES and said[0] == "line 21"
    assert said[-1] == "x" * (LINE_LENGTH - 3) + "..."
    # a secret at the cut is hidden before the line is cut, never half shown
    cut = last_words(["y" * (LINE_LENGTH - 20) + CONFIG["SECRET_KEY"]], CONFIG)
    assert cut == ["y" * (LINE_LENGTH - 20) + "[SECRET_KEY]"]


def test_the_message_carries_the_lines():
    assert with_last_words("web.1 exited with status 3", []) == "web.1 exited with status 3"
    assert with_last_words("web.1 exited with status 3", ["a", "b"]) == (
        "web.1 exited with status 3; its last lines:\n  | a\n  | b")


def test_a_replacement_is_never_redacted_again():
    said = last_words(["url postgres://db.internal/base and DATABASE=8"],
                      {"DATABASE_URL": "postgres://db.internal/base", "NAME": "DATABASE"})
    assert said == ["url [DATABASE_URL] and [NAME]=8"]


PEM = ("-----BEGIN PRIVATE KEY-----\r\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n"
       "  BKcwggSjAgEAAoIBAQDGx7y2\nab\n-----END PRIVATE KEY-----\n")


def test_each_line_of_a_multi_line_value_is_hidden():
    config = {"TLS_KEY": PEM, "CREDS": '{\n  "private_key": "hunter2-long-secret"\n}'}
    said = last_words(["loading key", "-----BEGIN PRIVATE KEY-----",
                       "MIIEvQIBADANBgkqhkiG9w0BAQEFAASC", "    BKcwggSjAgEAAoIBAQDGx7y2",
                       "ab", '  "private_key": "hunter2-long-secret"'], config)
    assert said == ["loading key", "[TLS_KEY line]", "[TLS_KEY line]", "    [TLS_KEY line]",
                    "ab", '  [CREDS line]']
    assert not any("MIIE" in line or "hunter2" in line for line in said)


def test_terminal_escapes_and_control_characters_are_dropped_but_tabs_kept():
    said = last_words(["\x1b]0;owned\x07\x1b[2Jboom\tat\x9b31m line\x00 3\x08\x08",
                       "\x1b[31mkey k" + "k" * 39 + "\x1b[0m"], CONFIG)
    assert said == ["]0;owned[2Jboom\tat31m line 3", "[31mkey [SECRET_KEY][0m"]
    assert not any(c in line for line in said for c in "\x1b\x07\x9b\x00\x08")
