"""A process that cannot start says why in one line on stderr, exits 2, and shows a traceback
only with --debug: misspelt variables, bad settings, an unreachable database, a signing key
file it cannot write. Each case runs the real command line in a subprocess."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

CHIPLEDGER = str(Path(sys.executable).parent / "chipledger")
# Each command that starts on a database (import and posture need their argument)
COMMANDS = [["serve"], ["worker"], ["demo"], ["rebuild"], ["import", "lines.ndjson"],
            ["export"], ["verify"], ["posture", "alibaba"], ["keys", "create", "--role", "reader"]]
# and the long-running or writing ones, for the cases that take the same path in each
STARTING = COMMANDS[:5]

pytestmark = pytest.mark.slow  # a process per case


def run(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """The command in a directory of its own, with the test run's environment (which holds
    CHIPLEDGER_TEST_POSTGRES_URL, say) and `env`."""
    (tmp_path / "lines.ndjson").write_text("")
    return subprocess.run([CHIPLEDGER, *args], env={**os.environ, **env}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=120, check=False)


def assert_refused_in_one_line(done: subprocess.CompletedProcess[str], *says: str) -> str:
    lines = done.stderr.strip().splitlines()
    assert done.returncode == 2, (done.returncode, done.stderr[-2000:])
    assert len(lines) == 1, done.stderr[-3000:]
    assert lines[0].startswith("chipledger: "), lines[0]
    for words in says:
        assert words in lines[0], lines[0]
    assert "Traceback" not in done.stdout + done.stderr
    return lines[0]


class TestUnknownVariables:
    @pytest.mark.parametrize("command", COMMANDS, ids=lambda c: c[0])
    def test_a_misspelt_variable_is_refused_before_anything_is_touched(self, tmp_path, command):
        done = run(tmp_path, *command, CHIPLEDGER_DATABSE_URL=f"sqlite:///{tmp_path}/x.db")
        line = assert_refused_in_one_line(
            done, "unknown environment variable CHIPLEDGER_DATABSE_URL",
            "did you mean CHIPLEDGER_DATABASE_URL?", "known: CHIPLEDGER_AUTH, ",
            "CHIPLEDGER_DATABASE_TIMEOUT")
        assert "CHIPLEDGER_TEST_*" in line  # how the tests' own variables are told apart
        # Not started on the default database instead: nothing was created anywhere.
        assert sorted(p.name for p in tmp_path.iterdir()) == ["lines.ndjson"]

    def test_every_misspelt_variable_is_named_at_once(self, tmp_path):
        done = run(tmp_path, "demo", CHIPLEDGER_LOG_LEVL="debug", CHIPLEDGER_ATUH="disabled")
        assert_refused_in_one_line(done, "unknown environment variables CHIPLEDGER_ATUH "
                                         "(did you mean CHIPLEDGER_AUTH?), CHIPLEDGER_LOG_LEVL")

    def test_the_test_suites_and_ci_variables_are_left_alone(self, tmp_path):
        done = run(tmp_path, "keys", "create", "--role", "reader",
                   CHIPLEDGER_DATABASE_URL=f"sqlite:///{tmp_path}/ledger.db",
                   CHIPLEDGER_TEST_ANYTHING="1", CHIPLEDGER_CI_VENV=".ci-venv",
                   CHIPLEDGER_REQUIRE_POSTGRES="1")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip().startswith("clk_")


class TestStartupFailures:
    @pytest.mark.parametrize("command", STARTING, ids=lambda c: c[0])
    def test_a_bad_setting_names_the_variable_and_what_it_takes(self, tmp_path, command):
        done = run(tmp_path, *command, CHIPLEDGER_LOG_LEVEL="verbose",
                   CHIPLEDGER_DATABASE_TIMEOUT="-1")
        assert_refused_in_one_line(
            done, "CHIPLEDGER_LOG_LEVEL='verbose': Input should be 'debug', 'info'",
            "CHIPLEDGER_DATABASE_TIMEOUT='-1': Input should be greater than 0")

    def test_a_database_url_of_another_kind_is_refused_without_showing_its_password(
            self, tmp_path):
        done = run(tmp_path, "demo", CHIPLEDGER_DATABASE_URL="mysql://me:s3cret@db/ledger")
        line = assert_refused_in_one_line(done, "CHIPLEDGER_DATABASE_URL",
                                          "use sqlite:///path/to/file.db or postgresql://")
        assert "s3cret" not in line

    @pytest.mark.parametrize("command", STARTING, ids=lambda c: c[0])
    def test_an_unreachable_postgres_says_why_and_where(self, tmp_path, command):
        done = run(tmp_path, *command,
                   CHIPLEDGER_DATABASE_URL="postgresql://me:s3cret@127.0.0.1:1/ledger")
        line = assert_refused_in_one_line(
            done, "cannot connect to PostgreSQL at postgresql://me@127.0.0.1:1/ledger",
            "Connection refused", "check CHIPLEDGER_DATABASE_URL")
        assert "s3cret" not in line

    def test_a_postgres_schema_that_does_not_exist_is_named(self, tmp_path, database_url):
        if not database_url.startswith("postgres"):
            pytest.skip("schemas are PostgreSQL's")
        url = database_url.split("?")[0] + "?schema=no_such_schema"
        done = run(tmp_path, "rebuild", CHIPLEDGER_DATABASE_URL=url)
        assert_refused_in_one_line(done, "cannot prepare the PostgreSQL database",
                                   'schema "no_such_schema" does not exist')

    @pytest.mark.parametrize("command", STARTING, ids=lambda c: c[0])
    def test_a_sqlite_file_in_a_missing_directory_is_named(self, tmp_path, command):
        missing = tmp_path / "no" / "such" / "dir" / "ledger.db"
        done = run(tmp_path, *command, CHIPLEDGER_DATABASE_URL=f"sqlite:///{missing}")
        assert_refused_in_one_line(done, f"cannot open the SQLite database {missing}",
                                   "unable to open database file",
                                   "its directory must exist and be writable")

    @pytest.mark.parametrize("command", [["serve"], ["worker"], ["export"]], ids=lambda c: c[0])
    def test_a_signing_key_file_that_cannot_be_written_is_named(
            self, tmp_path, database_url, command):
        blocker = tmp_path / "not-a-directory"
        blocker.write_text("a file where the key's directory should be")
        done = run(tmp_path, *command, CHIPLEDGER_DATABASE_URL=database_url,
                   CHIPLEDGER_SIGNING_KEY_FILE=str(blocker / "signing-key.pem"))
        assert_refused_in_one_line(
            done, f"cannot create or read the signing key file {blocker / 'signing-key.pem'}",
            "set CHIPLEDGER_SIGNING_KEY_FILE to a file this user can write")

    def test_a_signing_key_file_holding_something_else_is_named(self, tmp_path, database_url):
        key = tmp_path / "signing-key.pem"
        key.write_text("not a key\n")
        done = run(tmp_path, "serve", CHIPLEDGER_DATABASE_URL=database_url,
                   CHIPLEDGER_SIGNING_KEY_FILE=str(key))
        assert_refused_in_one_line(done, f"the signing key file {key} does not hold an "
                                         "Ed25519 private key")

    def test_debug_shows_the_traceback_before_the_line(self, tmp_path):
        missing = tmp_path / "no" / "ledger.db"
        done = run(tmp_path, "--debug", "demo", CHIPLEDGER_DATABASE_URL=f"sqlite:///{missing}")
        assert done.returncode == 2
        assert "Traceback (most recent call last)" in done.stderr
        assert "unable to open database file" in done.stderr
        assert done.stderr.strip().splitlines()[-1].startswith(
            "chipledger: cannot open the SQLite database")
