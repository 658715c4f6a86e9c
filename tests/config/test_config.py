"""Tests for runwatchd.config.load: TOML -> frozen dataclasses, problems, secrets, precedence."""

from __future__ import annotations

from pathlib import Path

import pytest

from runwatchd.config import load as config
from runwatchd.config import sources
from runwatchd.config.load import Config, DaemonConfig, FolderSettings, RunwayConfig
from runwatchd.errors import ConfigError
from runwatchd.runway.api import DEFAULT_BASE_URL
from runwatchd.runway.endpoints import ENDPOINTS

RULE = """
[folder.rule]
endpoint = "image_to_video"
[folder.rule.request]
model = "gen4.5"
promptText = "{stem}"
ratio = "1280:720"
duration = 5
"""


def load(tmp_path: Path, text: str) -> Config:
    path = tmp_path / "runwatchd.toml"
    path.write_text(text, encoding="utf-8")
    return config.load_config(path)


def problems(tmp_path: Path, text: str) -> list[str]:
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    return info.value.problems


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            "[runway]\nconcurrency = true",
            "runway.concurrency: expected an integer, got true (a bool is not an int)",
        ),
        ("[runway]\nconcurrency = 100", "runway.concurrency: must be 1 to 64, got 100"),
        ("[runway]\nconcurrency = 2.5", "runway.concurrency: expected an integer, got 2.5"),
        (
            "[runway]\nbase_url = 'ftp://x'",
            "runway.base_url: expected an http(s) URL, got 'ftp://x'",
        ),
        ("[runway]\ntimeout = 0", "runway.timeout: must be > 0 and <= 3600, got 0"),
        # Hostile magnitudes: 1e308 overflowed a timer, 1e-9 made the poll loop spin.
        ("[defaults]\npoll_interval = 1e308",
         "defaults.poll_interval: must be >= 0.01 and <= 3600, got 1e+308"),
        ("[defaults]\npoll_interval = 1e-9",
         "defaults.poll_interval: must be >= 0.01 and <= 3600, got 1e-09"),
        ("[defaults]\nrescan_interval = 1e12",
         "defaults.rescan_interval: must be >= 0 and <= 604800, got 1000000000000.0"),
        ("[runway]\ntimeout = 1e308", "runway.timeout: must be > 0 and <= 3600, got 1e+308"),
        ("[defaults]\nsettle_seconds = 'x'", "defaults.settle_seconds: expected a number, got 'x'"),
        (
            "[defaults]\nsettle_seconds = false",
            "defaults.settle_seconds: expected a number, got false (a bool is not a number)",
        ),
        (
            "[defaults]\nsettle_seconds = inf",
            "defaults.settle_seconds: expected a finite number, got inf",
        ),
        (
            "[defaults]\nobserver = 'fanotify'",
            "defaults.observer: expected one of 'auto', 'inotify', 'polling', got 'fanotify'",
        ),
        (
            "[defaults]\ninclude = ['*.jpg', 3]",
            "defaults.include: expected an array of strings, got 3 at [1]",
        ),
        ("[defaults]\ninclude = []", "defaults.include: must list at least one pattern"),
        (
            "[defaults]\nignore = '*.tmp'",
            "defaults.ignore: expected an array of strings, got '*.tmp'",
        ),
        (
            "[defaults]\ncolour = 1",
            "defaults.colour: unknown key (known: settle_seconds, observer, "
            "poll_interval, rescan_interval, include, ignore)",
        ),
        (
            "[defaults]\nsettle_second = 1",
            "defaults.settle_second: unknown key (did you mean 'settle_seconds'?)",
        ),
        (
            "[daemon]\nmetrics = '9100'",
            "daemon.metrics: expected host:port such as '127.0.0.1:9464', got '9100'",
        ),
        (
            "[daemon]\nlog_format = 'xml'",
            "daemon.log_format: expected one of 'text', 'json', got 'xml'",
        ),
        ("[daemon]\ngrace_seconds = -1", "daemon.grace_seconds: must be >= 0 and <= 3600, got -1"),
        ("runway = 3", "runway: expected a table, got 3"),
        ("[extra]", "extra: unknown key (known: runway, defaults, daemon, store, folder)"),
        (
            "[folder]\npath = '/x'",
            "folder: expected [[folder]] tables (an array of tables), got [folder]",
        ),
        ("[[folder]]\nrecursive = true", "folder[0].path: required"),
        ("[[folder]]\npath = 3", "folder[0].path: expected a string, got 3"),
        (
            "[[folder]]\npath = '/x'\nrecursive = 1",
            "folder[0].recursive: expected true or false, got 1",
        ),
        (
            "[[folder]]\npath = '/x'\nsettle_seconds = -1",
            "folder[0].settle_seconds: must be >= 0 and <= 86400, got -1",
        ),
        (
            "[[folder]]\npath = '/x'\nwatch = 1",
            "folder[0].watch: unknown key (known: path, recursive, rule, share, "
            "settle_seconds, observer, poll_interval, rescan_interval, "
            "include, ignore)",
        ),
        (
            "[[folder]]\npath = '/x'\n[folder.rule]\nendpoint = 'img2vid'",
            "folder[0].rule.endpoint: unknown endpoint 'img2vid' (known: "
            f"{', '.join(sorted(ENDPOINTS))})",
        ),
        (
            "[[folder]]\npath = '/x'\n[folder.rule]\nendpoint = 'generate_video'",
            "folder[0].rule.endpoint: unknown endpoint 'generate_video' (did you mean "
            f"'generate/video'?; known: {', '.join(sorted(ENDPOINTS))})",
        ),
    ],
)
def test_each_problem_is_reported_with_its_key_path(
    tmp_path: Path, text: str, expected: str
) -> None:
    """Every kind of problem names its key path and says what was expected and found."""
    assert [expected] == problems(tmp_path, text)


def test_settle_seconds_must_not_be_negative_reports_int_as_given(tmp_path: Path) -> None:
    """A negative integer is echoed as written (an int is accepted for a float key)."""
    text = (
        "[[folder]]\npath='/a'\n[[folder]]\npath='/b'\n[[folder]]\npath='/c'\nsettle_seconds = -3.5"
    )
    assert ["folder[2].settle_seconds: must be >= 0 and <= 86400, got -3.5"] == problems(tmp_path, text)


def test_all_problems_are_collected_before_failing(tmp_path: Path) -> None:
    """One load reports every problem across tables, in file order, with the file name."""
    text = (
        "[runway]\nconcurrency = true\n[defaults]\ncolour = 'red'\n"
        "[[folder]]\npath = '/x'\npoll_interval = 0\n" + RULE.replace("image_to_video", "img2vid")
    )
    with pytest.raises(ConfigError) as info:
        load(tmp_path, text)
    assert 4 == len(info.value.problems)
    assert info.value.problems[0].startswith("runway.concurrency: ")
    assert info.value.problems[1].startswith("defaults.colour: unknown key")
    assert info.value.problems[2] == "folder[0].poll_interval: must be >= 0.01 and <= 3600, got 0"
    assert info.value.problems[3].startswith("folder[0].rule.endpoint: unknown endpoint 'img2vid'")
    assert str(info.value).startswith(f"{tmp_path / 'runwatchd.toml'}: runway.concurrency")


def test_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    """A TOML syntax error becomes 'path: line L, column C: message'."""
    with pytest.raises(ConfigError) as info:
        load(tmp_path, "[runway]\nconcurrency = 4\n\nbase_url = \n")
    assert f"{tmp_path / 'runwatchd.toml'}: line 4, column 12: Invalid value" == str(info.value)


def test_syntax_error_at_end_of_document_gets_a_position(tmp_path: Path) -> None:
    """tomllib's 'at end of document' errors still get a line and column."""
    assert ['line 2, column 9: Expected "\'" (at end of document)'] == problems(
        tmp_path, "a = 1\nb = 'abc"
    )


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    """An unreadable config file is a ConfigError naming the file."""
    with pytest.raises(ConfigError) as info:
        config.load_config(tmp_path / "nope.toml")
    assert f"{tmp_path / 'nope.toml'}: cannot read (No such file or directory)" == str(info.value)


def test_empty_file_gives_defaults(tmp_path: Path) -> None:
    """An empty config is valid: every value is its default and no folder is watched."""
    cfg = load(tmp_path, "")
    assert (RunwayConfig(), FolderSettings(), DaemonConfig(), ()) == (
        cfg.runway,
        cfg.defaults,
        cfg.daemon,
        cfg.folders,
    )
    assert (tmp_path / "runwatchd.toml").resolve() == cfg.source


def test_folder_keys_override_defaults(tmp_path: Path) -> None:
    """Per-folder keys replace [defaults]; keys a folder leaves out are inherited."""
    cfg = load(
        tmp_path,
        "[defaults]\nsettle_seconds = 3\nobserver = 'polling'\nignore = ['*.bak']\n"
        "[[folder]]\npath = '/a'\nsettle_seconds = 7\ninclude = ['*.png']\n"
        "[[folder]]\npath = '/b'\nrecursive = false\n",
    )
    a, b = cfg.folders
    assert FolderSettings(7.0, "polling", 10.0, 900.0, ("*.png",), ("*.bak",)) == a.settings
    assert FolderSettings(3.0, "polling", ignore=("*.bak",)) == b.settings
    assert (True, False) == (a.recursive, b.recursive)
    assert 3.0 == cfg.defaults.settle_seconds


def test_relative_paths_resolve_against_the_config_directory(tmp_path: Path, monkeypatch) -> None:
    """Relative paths are taken from the config file's directory, and ~ is expanded."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir("/")
    cfg = load(
        tmp_path,
        "[runway]\napi_secret_file = 'secret'\nstate_dir = '~/state'\n"
        "[[folder]]\npath = 'hot/stills'\n[[folder]]\npath = '~/inbox'\n",
    )
    assert tmp_path / "secret" == cfg.runway.api_secret_file
    assert tmp_path / "home" / "state" == cfg.runway.state_dir
    assert [tmp_path.resolve() / "hot" / "stills", (tmp_path / "home" / "inbox").resolve()] == [
        f.path for f in cfg.folders
    ]


def test_missing_folder_is_fine_but_a_file_is_not(tmp_path: Path) -> None:
    """A folder that does not exist yet loads; a path that is a regular file is an error."""
    (tmp_path / "file.jpg").write_bytes(b"x")
    assert (
        tmp_path.resolve() / "later" == load(tmp_path, "[[folder]]\npath = 'later'").folders[0].path
    )
    expected = f"folder[0].path: {tmp_path.resolve() / 'file.jpg'} exists but is not a directory"
    assert [expected] == problems(tmp_path, "[[folder]]\npath = 'file.jpg'")


def test_duplicate_and_nested_folders(tmp_path: Path) -> None:
    """The same folder twice is an error; nesting is an error only inside a recursive folder."""
    dup = "[[folder]]\npath = 'a'\n[[folder]]\npath = './a/'\n"
    assert [f"folder[1].path: same folder as folder[0] ({tmp_path.resolve() / 'a'})"] == problems(
        tmp_path, dup
    )
    nested = "[[folder]]\npath = 'a'\n[[folder]]\npath = 'a/b'\n"
    assert ["folder[1].path: inside folder[0] which is recursive"] == problems(tmp_path, nested)
    outer_later = "[[folder]]\npath = 'a/b'\n[[folder]]\npath = 'a'\n"
    assert ["folder[0].path: inside folder[1] which is recursive"] == problems(
        tmp_path, outer_later
    )
    flat = "[[folder]]\npath = 'a'\nrecursive = false\n[[folder]]\npath = 'a/b'\n"
    assert 2 == len(load(tmp_path, flat).folders)


def test_folder_rule_is_parsed_and_named_after_the_folder(tmp_path: Path) -> None:
    """A [folder.rule] becomes a Rule whose default name is the folder's name."""
    rule = load(tmp_path, "[[folder]]\npath = 'stills'\n" + RULE).folders[0].rule
    assert rule is not None
    assert ("image_to_video", "outputs", None, {"model": "gen4.5", "promptText": "{stem}", "ratio": "1280:720",
                                                 "duration": 5}, "stills") == (
        rule.endpoint,
        rule.output_dir,
        rule.input_field,
        dict(rule.request),
        rule.name,
    )
    assert tmp_path.resolve() / "stills" / "outputs" == rule.output_path(
        tmp_path.resolve() / "stills"
    )


def test_empty_paths_are_rejected(tmp_path: Path) -> None:
    """An empty path string is a problem, not silently the config directory."""
    assert [
        "runway.api_secret_file: must not be empty",
        "runway.state_dir: must not be empty",
        "folder[0].path: must not be empty",
    ] == problems(
        tmp_path, "[runway]\napi_secret_file = ''\nstate_dir = ' '\n[[folder]]\npath = ''\n"
    )


def test_config_is_frozen(tmp_path: Path) -> None:
    """Config objects are immutable."""
    cfg = load(tmp_path, "")
    with pytest.raises(AttributeError):
        cfg.runway.concurrency = 9  # type: ignore[misc]


def test_config_for_dirs(tmp_path: Path) -> None:
    """--watch DIR without a file gives recursive folders with defaults and no rule."""
    cfg = config.config_for_dirs([tmp_path / "a", tmp_path / "b"])
    assert [
        (tmp_path.resolve() / "a", True, FolderSettings(), None),
        (tmp_path.resolve() / "b", True, FolderSettings(), None),
    ] == [(f.path, f.recursive, f.settings, f.rule) for f in cfg.folders]
    assert None is cfg.source


def test_base_url_precedence() -> None:
    """RUNWAYML_BASE_URL > [runway] base_url > the default, without a trailing slash."""
    cfg = Config(
        RunwayConfig(base_url="http://toml:1/"), FolderSettings(), (), DaemonConfig(), None
    )
    assert "http://env:2" == sources.resolve_base_url(cfg, {"RUNWAYML_BASE_URL": "http://env:2/"})
    assert "http://toml:1" == sources.resolve_base_url(cfg, {})
    assert DEFAULT_BASE_URL == sources.resolve_base_url(config.config_for_dirs([]), {})
    with pytest.raises(ConfigError):
        sources.resolve_base_url(cfg, {"RUNWAYML_BASE_URL": "env:2"})


def test_state_dir_precedence(tmp_path: Path) -> None:
    """[runway] state_dir > $STATE_DIRECTORY (first entry) > ~/.local/state/runwatchd."""
    cfg = Config(RunwayConfig(state_dir=tmp_path / "s"), FolderSettings(), (), DaemonConfig(), None)
    bare = config.config_for_dirs([])
    assert tmp_path / "s" == sources.resolve_state_dir(cfg, {"STATE_DIRECTORY": "/var/lib/x"})
    assert Path("/var/lib/a") == sources.resolve_state_dir(
        bare, {"STATE_DIRECTORY": "/var/lib/a:/var/lib/b"}
    )
    assert tmp_path / ".local/state/runwatchd" == sources.resolve_state_dir(
        bare, {"HOME": str(tmp_path)}
    )


def test_find_config_order(tmp_path: Path, monkeypatch) -> None:
    """-c > $RUNWATCHD_CONFIG > ./runwatchd.toml > ~/.config/runwatchd/config.toml > none."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sources, "SYSTEM_CONFIG", tmp_path / "etc" / "config.toml")
    env = {"HOME": str(tmp_path / "home")}
    assert None is sources.find_config(None, env)
    user = tmp_path / "home" / ".config" / "runwatchd" / "config.toml"
    user.parent.mkdir(parents=True)
    user.write_text("", encoding="utf-8")
    assert user == sources.find_config(None, env)
    (tmp_path / "runwatchd.toml").write_text("", encoding="utf-8")
    assert Path("runwatchd.toml") == sources.find_config(None, env)
    assert Path("/e.toml") == sources.find_config(None, {**env, "RUNWATCHD_CONFIG": "/e.toml"})
    assert Path("/c.toml") == sources.find_config(
        Path("/c.toml"), {**env, "RUNWATCHD_CONFIG": "/e.toml"}
    )
