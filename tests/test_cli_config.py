"""Commands that share settings with the service read its config, and their flags override it."""

from __future__ import annotations

from pathlib import Path

import pytest
from conftest import IMAGES

from edgeknn.cli import main
from edgeknn.cli.flags import config_file


def run(capsys, *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("argv, line", [
    (["predict", "x.jpg", "--k", "0"], "classifier.k: expected an integer 1..100, got 0 (from --k)"),
    (["predict", "x.jpg", "--method", "svm"],
     'classifier.method: expected one of "logreg", "balanced", "knn", "ncm", got "svm" (from --method)'),
    (["predict", "x.jpg", "--threshold", "1.5"],
     "classifier.unknown_threshold: expected a number -1..1, got 1.5 (from --threshold)"),
    (["eval", "data", "--k", "101"], "classifier.k: expected an integer 1..100, got 101 (from --k)"),
    (["teach", "data", "--threads", "65"],
     "embedder.threads: expected an integer 0..64, got 65 (from --threads)"),
    (["detect", "x.jpg", "--max-detections", "0"],
     "detector.max_detections: expected an integer 1..100, got 0 (from --max-detections)"),
    (["ha", "remove", "--device-id", "a/b"],
     "device_id: expected one MQTT topic level: 1..64 characters, no '/', '+', '#', control characters "
     'or surrounding spaces, got "a/b" (from --device-id)'),
    (["detect", "x.jpg", "--allow", "cat", "a/b"],
     "detector.allow[1]: label 'a/b' contains '/'; '/', '+' and '#' are not allowed (from --allow)"),
])
def test_an_out_of_range_flag_gets_the_configs_message_naming_the_flag(capsys, argv, line):
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.splitlines() == [f"edgeknn: error: {line}"]


def test_every_bad_flag_is_reported_on_its_own_line(capsys):
    code, _, err = run(capsys, "predict", "x.jpg", "--k", "0", "--accelerator", "tpu")
    assert code == 2
    assert err.splitlines() == [
        'edgeknn: error: embedder.accelerator: expected one of "auto", "cpu", "edgetpu", got "tpu" '
        "(from --accelerator)",
        "edgeknn: error: classifier.k: expected an integer 1..100, got 0 (from --k)",
    ]


def test_store_commands_use_the_store_of_the_config_file(capsys, tmp_path):
    config = write(tmp_path / "config.toml", f'[store]\npath = "{tmp_path / "service.db"}"\n')
    code, _, err = run(capsys, "store", "info", "--config", str(config))
    assert code == 2 and f"store {tmp_path / 'service.db'} does not exist" in err


def test_a_flag_wins_over_the_environment_which_wins_over_the_config_file(capsys, tmp_path, monkeypatch):
    config = write(tmp_path / "config.toml", f'[store]\npath = "{tmp_path / "file.db"}"\n')
    monkeypatch.setenv("EDGEKNN_STORE", str(tmp_path / "env.db"))
    _, _, err = run(capsys, "store", "info", "--config", str(config))
    assert f"store {tmp_path / 'env.db'} does not exist" in err
    _, _, err = run(capsys, "store", "info", "--config", str(config), "--store", str(tmp_path / "flag.db"))
    assert f"store {tmp_path / 'flag.db'} does not exist" in err


def test_without_a_config_file_the_store_is_the_users_own(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    _, _, err = run(capsys, "store", "info")
    assert f"store {tmp_path / 'xdg' / 'edgeknn' / 'store.db'} does not exist" in err


def test_a_bad_config_file_is_reported_before_any_work(capsys, tmp_path):
    config = write(tmp_path / "config.toml", "[classifier]\nk = 0\nmethod = \"svm\"\n")
    code, _, err = run(capsys, "predict", str(IMAGES / "cat.bmp"), "--config", str(config))
    assert code == 2
    assert err.splitlines() == [
        f"edgeknn: error: {config}: classifier.k: expected an integer 1..100, got 0",
        f'edgeknn: error: {config}: classifier.method: expected one of "logreg", "balanced", "knn", "ncm", '
        'got "svm"',
    ]


def test_a_flag_replaces_a_bad_value_in_the_config_file(capsys, tmp_path):
    config = write(tmp_path / "config.toml", f'[store]\npath = "{tmp_path / "s.db"}"\n[classifier]\nk = 0\n')
    code, _, err = run(capsys, "predict", str(IMAGES / "cat.bmp"), "--config", str(config), "--k", "5")
    assert code == 2 and err.splitlines() == [
        f"edgeknn: error: store {tmp_path / 's.db'} does not exist; teach it first: "
        f"edgeknn teach DIR --store {tmp_path / 's.db'}"
    ]


def test_a_config_file_named_with_config_must_exist(capsys, tmp_path):
    code, _, err = run(capsys, "store", "info", "--config", str(tmp_path / "absent.toml"))
    assert code == 2 and f"{tmp_path / 'absent.toml'}: cannot read the config file" in err


def test_the_services_config_file_is_read_only_when_it_is_there(tmp_path):
    env = {"EDGEKNN_CONFIG": str(tmp_path / "config.toml")}  # in place of /etc/edgeknn/config.toml
    assert config_file(None, env) is None
    (tmp_path / "config.toml").write_text("")
    assert config_file(None, env) == tmp_path / "config.toml"
    assert config_file(tmp_path / "mine.toml", env) == tmp_path / "mine.toml"


def test_without_config_the_services_file_is_read(capsys, tmp_path, monkeypatch):
    config = write(tmp_path / "config.toml", f'[store]\npath = "{tmp_path / "service.db"}"\n')
    monkeypatch.setenv("EDGEKNN_CONFIG", str(config))
    _, _, err = run(capsys, "store", "info")
    assert f"store {tmp_path / 'service.db'} does not exist" in err


def test_config_keys_show_in_the_help_of_the_flags_that_override_them(capsys):
    with pytest.raises(SystemExit):
        main(["predict", "--help"])
    out = capsys.readouterr().out
    assert "(default: classifier.k of the config, 3)" in " ".join(out.split())
    assert "--config FILE" in out
