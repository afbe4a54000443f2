"""The config tree: defaults, the example file, strict validation with key paths, env overrides."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from pathlib import Path

import pytest

from edgeknn.config import (
    ButtonConfig,
    Config,
    example_text,
    load_config,
    parse_config,
)
from edgeknn.config.checks import canonical_pin
from edgeknn.config.validate import walk
from edgeknn.errors import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "edgeknn" / "config.example.toml"


def problems(data: dict, env: dict | None = None) -> list[str]:
    with pytest.raises(ConfigError) as info:
        parse_config(data, "config.toml", env)
    return str(info.value).splitlines()


def first_problem(data: dict) -> str:
    return problems(data)[0]


def uncommented(text: str) -> str:
    """The example with its "#key = ..." / "#[[table]]" example lines switched on."""
    return re.sub(r"(?m)^#(?=[\w\[])", "", text)


def key_paths(data: dict, prefix: str = "") -> set[str]:
    keys = set()
    for key, value in data.items():
        path = f"{prefix}.{key}" if prefix else key
        if isinstance(value, dict):
            keys |= key_paths(value, path)
        elif isinstance(value, list) and value and all(isinstance(v, dict) for v in value):
            for item in value:
                keys |= key_paths(item, path + "[]")
        else:
            keys.add(path)
    return keys


# --- defaults and the example file ---------------------------------------------------------

def test_an_empty_file_gives_the_default_config():
    assert parse_config({}) == Config.default()


def test_default_config_has_the_documented_values():
    cfg = Config.default()
    assert cfg.camera.source == "synthetic" and cfg.camera.fps == 10.0
    assert cfg.mqtt.port == 1883 and cfg.mqtt.qos.status == 1 and cfg.mqtt.qos.prediction == 0
    assert cfg.store.path == Path("/var/lib/edgeknn/store.db")
    assert cfg.gpio.buttons == () and cfg.detector.allow == ()


def test_the_default_models_are_the_manifests_defaults():
    # Two statements of one default (the config's, and the manifest's "default = true");
    # this keeps them from drifting apart.
    from edgeknn.vision.models import default_model

    cfg = Config.default()
    assert (cfg.embedder.model, cfg.detector.model) == (
        default_model("embedder").name, default_model("detector").name)


def test_the_example_file_parses_to_exactly_the_defaults():
    assert load_config(EXAMPLE, env={}) == Config.default()


def test_the_example_file_names_every_key_of_the_config_tree():
    data = tomllib.loads(uncommented(EXAMPLE.read_text()))
    assert key_paths(data) == {path for path, _, _ in walk(Config)}


def test_the_examples_to_uncomment_in_the_example_file_are_valid():
    cfg = parse_config(tomllib.loads(uncommented(EXAMPLE.read_text())))
    assert [b.label for b in cfg.gpio.buttons] == ["cat", "dog"]


def test_every_key_has_a_doc():
    for path, field, _ in walk(Config):
        assert field.metadata["rule"].doc, f"{path} has no doc"


def test_every_key_in_the_example_file_sits_under_a_comment():
    for block in EXAMPLE.read_text().split("\n\n"):
        lines = block.splitlines()
        if any(re.match(r"#?\w+ = ", line) for line in lines):
            assert any(line.startswith("# ") for line in lines), f"undocumented:\n{block}"


def test_example_text_is_the_shipped_example_file():
    assert example_text() == EXAMPLE.read_text()


def test_the_config_tree_is_frozen():
    cfg = Config.default()
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.mqtt.port = 1  # type: ignore[misc]


# --- values that are accepted --------------------------------------------------------------

def test_given_values_replace_the_defaults_and_keep_the_others():
    cfg = parse_config({"mqtt": {"port": 8883, "tls": {"enabled": True}}, "camera": {"fps": 15}})
    assert cfg.mqtt.port == 8883 and cfg.mqtt.tls.enabled is True
    assert cfg.mqtt.host == "localhost"
    assert cfg.camera.fps == 15.0 and isinstance(cfg.camera.fps, float)


def test_paths_become_path_objects():
    cfg = parse_config({"store": {"path": "/tmp/x/store.db"}})
    assert cfg.store.path == Path("/tmp/x/store.db")


def test_buttons_become_a_tuple_of_button_configs():
    cfg = parse_config({"gpio": {"buttons": [
        {"pin": 17, "label": "cat"}, {"pin": "GPIO27", "label": "dog", "led": "BOARD15"},
    ]}})
    assert cfg.gpio.buttons == (ButtonConfig(17, "cat"), ButtonConfig("GPIO27", "dog", "BOARD15"))


def test_validation_does_not_look_at_the_file_system(tmp_path):
    missing = tmp_path / "nowhere"
    cfg = parse_config({
        "store": {"path": str(missing / "store.db")},
        "camera": {"source": "replay", "path": str(missing)},
        "mqtt": {"tls": {"enabled": True, "ca": str(missing / "ca.pem")}},
    })
    assert cfg.camera.path == str(missing)
    assert not missing.exists()


@pytest.mark.parametrize("given, canonical", [
    (17, "GPIO17"), ("17", "GPIO17"), ("GPIO17", "GPIO17"), ("bcm17", "GPIO17"),
    ("BOARD11", "GPIO17"), ("J8:11", "GPIO17"), ("BOARD40", "GPIO21"),
])
def test_pin_names_in_every_gpiozero_form_name_the_same_pin(given, canonical):
    assert canonical_pin(given) == canonical


# --- problems: one line each, key path first ------------------------------------------------

def test_an_unknown_key_is_named_with_a_suggestion():
    assert first_problem({"mqtt": {"hots": "x"}}) == (
        "config.toml: unknown key mqtt.hots (did you mean host?)"
    )


def test_an_unknown_table_is_named():
    assert first_problem({"camara": {}}) == "config.toml: unknown key camara (did you mean camera?)"


def test_a_wrong_type_names_the_key_and_what_was_expected():
    assert first_problem({"mqtt": {"port": "abc"}}) == (
        'config.toml: mqtt.port: expected an integer 1..65535, got "abc"'
    )


def test_an_out_of_range_number_names_the_key_and_the_range():
    assert first_problem({"camera": {"fps": -1}}) == (
        "config.toml: camera.fps: expected a number > 0 and <= 120, got -1"
    )


def nested(dotted: str, value: object) -> dict:
    """{"a": {"b": value}} from "a.b"."""
    for key in reversed(dotted.split(".")):
        value = {key: value}
    return value  # type: ignore[return-value]


@pytest.mark.parametrize("key, value, start", [
    ("mqtt.port", True, "mqtt.port: expected an integer 1..65535, got true"),
    ("mqtt.port", 70000, "mqtt.port: expected an integer 1..65535, got 70000"),
    ("mqtt.keepalive", 1, "mqtt.keepalive: expected an integer 5..3600"),
    ("mqtt.enabled", "yes", 'mqtt.enabled: expected true or false, got "yes"'),
    ("mqtt.qos.stats", 3, "mqtt.qos.stats: expected an integer 0..2, got 3"),
    ("mqtt.tls", 1, "mqtt.tls: expected a table [mqtt.tls], got 1"),
    ("mqtt.host", "", 'mqtt.host: expected a host name or IP address, got ""'),
    ("mqtt.base_topic", "a/#", "mqtt.base_topic: \"a/#\": '#' is an MQTT wildcard"),
    ("mqtt.base_topic", "$SYS/edgeknn", "mqtt.base_topic: \"$SYS/edgeknn\" starts with '$'"),
    ("classifier.k", 0, "classifier.k: expected an integer 1..100, got 0"),
    ("classifier.unknown_threshold", 1.5,
     "classifier.unknown_threshold: expected a number -1..1, got 1.5"),
    ("classifier.method", "svm",
     'classifier.method: expected one of "logreg", "balanced", "knn", "ncm", got "svm"'),
    ("embedder.accelerator", "tpu",
     'embedder.accelerator: expected one of "auto", "cpu", "edgetpu", got "tpu"'),
    ("embedder.device", "usb:x", "embedder.device: Edge TPU device 'usb:x' is not valid"),
    ("embedder.threads", 65, "embedder.threads: expected an integer 0..64, got 65"),
    ("embedder.resize", "fill", 'embedder.resize: expected one of "center-crop", "squash"'),
    ("embedder.model", "", "embedder.model: expected a non-empty string"),
    ("camera.fps", float("nan"), "camera.fps: expected a number > 0 and <= 120, got nan"),
    ("camera.source", "usb", 'camera.source: expected one of "picamera2", "opencv"'),
    ("camera.width", 8.5, "camera.width: expected an integer 16..8192, got 8.5"),
    ("pipeline.prediction_interval", -0.5,
     "pipeline.prediction_interval: expected a number 0..86400, got -0.5"),
    ("store.path", "", 'store.path: expected a path, got ""'),
    ("detector.threshold", 2, "detector.threshold: expected a number 0..1, got 2"),
    ("detector.allow", "cat", 'detector.allow: expected a list of strings, got "cat"'),
    ("detector.allow", ["cat", 3], "detector.allow[1]: expected a string, got 3"),
    ("detector.allow", ["a/b"], "detector.allow[0]: label 'a/b' contains '/'"),
    ("detector.teach_target", "box",
     'detector.teach_target: expected one of "frame", "largest_object", got "box"'),
    ("logging.level", "verbose",
     'logging.level: expected one of "debug", "info", "warning", "error", got "verbose"'),
    ("device_id", "kitchen/1", "device_id: expected one MQTT topic level"),
    ("gpio.pin_factory", "wiringpi", 'gpio.pin_factory: expected one of "", "lgpio"'),
    ("gpio.status_led", "GPIO99", "gpio.status_led: expected a BCM GPIO number"),
    ("gpio.buttons", {"pin": 17},
     "gpio.buttons: expected an array of tables ([[gpio.buttons]]), got a table"),
])
def test_bad_values_are_reported_with_their_key_path(key, value, start):
    assert first_problem(nested(key, value)).startswith(f"config.toml: {start}")


def test_every_problem_is_reported_one_per_line():
    lines = problems({"mqtt": {"port": 0, "keepalive": 0}, "camera": {"fps": 0}, "bogus": 1})
    assert len(lines) == 4
    assert all(line.startswith("config.toml: ") for line in lines)


def test_a_missing_required_button_key_is_named():
    assert first_problem({"gpio": {"buttons": [{"pin": 17, "label": "a"}, {"label": "b"}]}}) == (
        "config.toml: gpio.buttons[1].pin: required: expected a BCM GPIO number or a pin name "
        'like "GPIO17", "BCM17" or "BOARD11"'
    )


def test_a_bad_button_label_names_its_button():
    buttons = [{"pin": 17, "label": "a"}, {"pin": 18, "label": " "}]
    line = first_problem({"gpio": {"buttons": buttons}})
    assert line == "config.toml: gpio.buttons[1].label: label is empty"


def test_a_power_pin_is_not_a_gpio_pin():
    line = first_problem({"gpio": {"buttons": [{"pin": "BOARD1", "label": "a"}]}})
    assert line == (
        "config.toml: gpio.buttons[0].pin: header pin BOARD1 is power or ground, not a GPIO pin"
    )


def test_one_pin_used_twice_under_different_names_is_an_error_naming_both_keys():
    line = first_problem({"gpio": {"status_led": 17, "buttons": [
        {"pin": 27, "label": "cat"}, {"pin": "BOARD11", "label": "dog"},
    ]}})
    assert line == "config.toml: gpio.buttons[1].pin: GPIO17 is already used by gpio.status_led"


def test_a_button_led_on_another_buttons_pin_is_an_error():
    line = first_problem({"gpio": {"clear_button": {"pin": 5}, "buttons": [
        {"pin": 17, "label": "cat", "led": "GPIO5"},
    ]}})
    assert line == (
        "config.toml: gpio.buttons[0].led: GPIO5 is already used by gpio.clear_button.pin"
    )


def test_two_buttons_with_one_label_is_an_error():
    line = first_problem({"gpio": {"buttons": [
        {"pin": 17, "label": "cat"}, {"pin": 27, "label": "cat"},
    ]}})
    assert line == (
        "config.toml: gpio.buttons[1].label: 'cat' is already the label of gpio.buttons[0]"
    )


def test_replay_needs_a_path():
    assert first_problem({"camera": {"source": "replay"}}).startswith(
        'config.toml: camera.path: required when camera.source = "replay"'
    )


def test_retry_max_below_retry_initial_is_an_error():
    assert first_problem({"camera": {"retry_initial": 10.0, "retry_max": 5.0}}) == (
        "config.toml: camera.retry_max: expected >= camera.retry_initial (10)"
    )


def test_a_tls_key_without_a_certificate_is_an_error():
    assert first_problem({"mqtt": {"tls": {"keyfile": "k.pem"}}}) == (
        "config.toml: mqtt.tls.keyfile: given without mqtt.tls.certfile"
    )


# --- secrets and the environment -----------------------------------------------------------

def test_the_password_is_never_echoed():
    line = first_problem({"mqtt": {"username": "u", "password": 123456}})
    assert "123456" not in line and line.startswith("config.toml: mqtt.password: expected a string")
    cfg = parse_config({"mqtt": {"username": "u", "password": "hunter2"}})
    assert "hunter2" not in repr(cfg)


def test_environment_overrides_mqtt_host_and_password():
    env = {"EDGEKNN_MQTT_HOST": "broker.lan", "EDGEKNN_MQTT_PASSWORD": "s3cret"}
    cfg = parse_config({"mqtt": {"host": "localhost", "username": "u"}}, env=env)
    assert cfg.mqtt.host == "broker.lan" and cfg.mqtt.password == "s3cret"


def test_an_empty_environment_variable_counts_as_unset():
    cfg = parse_config({"mqtt": {"host": "filehost"}}, env={"EDGEKNN_MQTT_HOST": ""})
    assert cfg.mqtt.host == "filehost"


def test_a_bad_value_from_the_environment_says_where_it_came_from():
    line = problems({}, env={"EDGEKNN_MQTT_HOST": "two words"})[0]
    assert line == (
        'config.toml: mqtt.host: expected a host name or IP address, got "two words" '
        "(from $EDGEKNN_MQTT_HOST)"
    )


def test_parse_config_without_env_ignores_the_process_environment(monkeypatch):
    monkeypatch.setenv("EDGEKNN_MQTT_HOST", "from-env")
    assert parse_config({}).mqtt.host == "localhost"


def test_load_config_reads_the_process_environment_by_default(tmp_path, monkeypatch):
    path = tmp_path / "config.toml"
    path.write_text('[mqtt]\nhost = "filehost"\n')
    monkeypatch.setenv("EDGEKNN_MQTT_HOST", "envhost")
    assert load_config(path).mqtt.host == "envhost"
    assert load_config(path, env={}).mqtt.host == "filehost"


def test_the_service_takes_the_store_and_models_from_the_environment_as_the_commands_do(tmp_path):
    # `edgeknn run` loads its config with load_config, as `edgeknn store` does through its flags
    path = tmp_path / "config.toml"
    path.write_text('[store]\npath = "/file/store.db"\n[models]\ndir = "/file/models"\nmirror = "/file/mirror"\n')
    env = {"EDGEKNN_STORE": "/env/store.db", "EDGEKNN_MODELS_DIR": "/env/models",
           "EDGEKNN_MODEL_MIRROR": "/env/mirror"}
    cfg = load_config(path, env=env)
    assert (cfg.store.path, cfg.models.dir, cfg.models.mirror) == (
        Path("/env/store.db"), Path("/env/models"), "/env/mirror")
    assert load_config(path, env={}).store.path == Path("/file/store.db")


# --- reading files -------------------------------------------------------------------------

def test_load_config_names_the_file_in_errors(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text("[mqtt]\nport = 0\n")
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: mqtt.port: expected"):
        load_config(path, env={})


def test_a_toml_syntax_error_names_the_file_and_line(tmp_path):
    path = tmp_path / "config.toml"
    path.write_text('device_id = "a"\n[mqtt\nport = 1\n')
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: not valid TOML: .*line 2"):
        load_config(path, env={})


def test_a_missing_file_is_a_config_error_naming_it(tmp_path):
    path = tmp_path / "absent.toml"
    with pytest.raises(ConfigError, match=rf"^{re.escape(str(path))}: cannot read"):
        load_config(path, env={})


def test_a_file_that_is_not_utf8_is_a_config_error(tmp_path):
    path = tmp_path / "config.toml"
    path.write_bytes(b'device_id = "\xff"\n')
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_config(path, env={})


# --- the command line ----------------------------------------------------------------------

def cli(argv: list[str]) -> int:
    from edgeknn.cli import main

    return main(argv)


def test_config_check_prints_ok_for_a_valid_file(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text(example_text())
    assert cli(["config", "check", str(path)]) == 0
    assert capsys.readouterr().out == f"{path}: ok\n"


def test_config_check_prints_each_problem_and_exits_2(tmp_path, capsys):
    path = tmp_path / "config.toml"
    path.write_text('[mqtt]\nhots = "x"\nport = "abc"\n')
    assert cli(["config", "check", str(path)]) == 2
    assert capsys.readouterr().err.splitlines() == [
        f"edgeknn: error: {path}: unknown key mqtt.hots (did you mean host?)",
        f'edgeknn: error: {path}: mqtt.port: expected an integer 1..65535, got "abc"',
    ]


def test_config_example_prints_the_example_file(capsys):
    assert cli(["config", "example"]) == 0
    assert capsys.readouterr().out == EXAMPLE.read_text()


def test_config_keys_lists_every_key(capsys):
    assert cli(["config", "keys"]) == 0
    out = capsys.readouterr().out
    for path, _, _ in walk(Config):
        assert re.search(rf"(?m)^{re.escape(path)} ", out), path
