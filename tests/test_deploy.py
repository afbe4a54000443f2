"""deploy/: the Ansible role installs a working edgeknn, changes nothing the second time,
keeps the taught store, and never lands a config that `edgeknn config check` rejects.

These run the real ``ansible-playbook`` against this machine (connection local, as
root): real apt, a real ``edgeknn`` system user (left in place afterwards), a real
venv made by Debian's python3 with --system-site-packages, models fetched from
../shared/models by ``edgeknn models fetch``.  Only the role's paths are moved into
a temporary directory, and ``edgeknn_manage_service`` is off because systemd is not
PID 1 here: the unit file and the service tasks are covered by the syntax check
and ansible-lint only.
"""

from __future__ import annotations

import fcntl
import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import MODELS, ROOT

DEPLOY = ROOT / "deploy"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
PASSWORD = 'pa"ss $word\\ `x`'
# What the tests deploy; each bad-variable test overrides one of these.
BASE_VARS = {
    "edgeknn_manage_service": False,
    "edgeknn_model_mirror": str(MODELS),
    "edgeknn_device_id": "deploy-test",
    "edgeknn_mqtt_host": "broker.test",
    "edgeknn_mqtt_port": "1883",  # a string, as INI [group:vars] and -e key=value give it
    "edgeknn_mqtt_username": "edgeknn",
    "edgeknn_mqtt_password": PASSWORD,
    "edgeknn_camera_source": "synthetic",
    "edgeknn_gpio_buttons": [{"pin": 17, "label": "cat", "led": "GPIO22"}, {"pin": "GPIO27", "label": "dog"}],
    # python3-lgpio is a Raspberry Pi OS package; Debian 12 on amd64 has none.
    "edgeknn_gpio_packages": [],
    "edgeknn_detector_enabled": True,
}
RECAP = re.compile(r"^localhost\s*:\s*ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


def require_ansible() -> None:
    if not ANSIBLE_PLAYBOOK.exists():
        pytest.fail(f"ansible-core is not installed in {sys.prefix}: pip install ansible-core "
                    "(it belongs in pyproject.toml's test extra)")


@dataclass(frozen=True)
class Recap:
    ok: int
    changed: int
    unreachable: int
    failed: int


@dataclass(frozen=True)
class Run:
    returncode: int
    output: str

    @property
    def recap(self) -> Recap:
        found = RECAP.search(self.output)
        assert found, f"no PLAY RECAP for localhost in:\n{self.output[-3000:]}"
        return Recap(*map(int, found.groups()))

    def failed_task(self) -> str:
        """The name of the task whose result was fatal (the last TASK header before it)."""
        before, fatal, _ = self.output.partition("fatal: [localhost]")
        assert fatal, f"no task failed:\n{self.output[-3000:]}"
        return re.findall(r"^TASK \[(.+?)\] \**$", before, re.M)[-1]


@dataclass(frozen=True)
class Site:
    """One machine the role was applied to, with its paths under ``base``."""

    base: Path
    inventory: Path
    source: Path
    first_run: Run

    @property
    def prefix(self) -> Path:
        return self.base / "opt"

    @property
    def venv(self) -> Path:
        return self.prefix / "venv"

    @property
    def edgeknn(self) -> Path:
        return self.venv / "bin" / "edgeknn"

    @property
    def config_dir(self) -> Path:
        return self.base / "etc"

    @property
    def state_dir(self) -> Path:
        return self.base / "state"

    @property
    def models_dir(self) -> Path:
        return self.state_dir / "models"

    @property
    def store(self) -> Path:
        return self.state_dir / "store.db"

    def play(self, *options: str, **overrides: object) -> Run:
        return play(self.inventory, role_variables(self.base, self.source, **overrides), self.base, *options)


def role_variables(base: Path, source: Path, **overrides: object) -> dict[str, object]:
    """BASE_VARS with the role's paths moved under ``base`` (as Site names them)."""
    return {**BASE_VARS, "edgeknn_prefix": str(base / "opt"), "edgeknn_config_dir": str(base / "etc"),
            "edgeknn_state_dir": str(base / "state"), "edgeknn_source_dir": str(source), **overrides}


def play(inventory: Path, variables: dict[str, object], workdir: Path, *options: str) -> Run:
    extra = workdir / "vars.json"
    extra.write_text(json.dumps(variables))
    # Without the test suite's EDGEKNN_* variables: the role must say where
    # models come from, as it would on a device.
    env = {k: v for k, v in os.environ.items() if not k.startswith("EDGEKNN_")}
    env.update(ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0")
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "-i", str(inventory), "-e", f"@{extra}", *options, "playbook.yml"],
        cwd=DEPLOY, env=env, capture_output=True, text=True, timeout=600,
    )
    return Run(done.returncode, done.stdout + done.stderr)


def as_service_user(*argv: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["runuser", "-u", "edgeknn", "--", *map(str, argv)],
                          capture_output=True, text=True, timeout=120)


def snapshot_checkout(dest: Path) -> None:
    """What the wheel is built from, copied so edits made during the run do not count as changes."""
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, dest / name)
    for name in ("edgeknn", "models", "systemd"):
        shutil.copytree(ROOT / name, dest / name, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))


@pytest.fixture(scope="module")
def site() -> Iterator[Site]:
    require_ansible()
    if os.geteuid() != 0:
        pytest.skip("the role creates a system user and installs Debian packages: run as root")
    if shutil.which("apt-get") is None or not Path("/usr/bin/python3").exists():
        pytest.skip("the role targets Debian 12 / Raspberry Pi OS: apt-get and /usr/bin/python3 are needed")
    # One test session at a time: they share the machine's edgeknn user, whose
    # home each moves into its own directory.
    with open(Path(tempfile.gettempdir()) / "edgeknn-test-deploy.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        # Not tmp_path: pytest's temporary directories are 0700, and the service
        # user has to reach its state directory inside this one.
        base = Path(tempfile.mkdtemp(prefix="edgeknn-deploy-"))
        source = Path(tempfile.mkdtemp(prefix="edgeknn-source-"))
        try:
            base.chmod(0o755)
            snapshot_checkout(source)
            inventory = base / "inventory.ini"
            inventory.write_text("[edgeknn]\nlocalhost ansible_connection=local "
                                 "ansible_python_interpreter=/usr/bin/python3\n")
            first = play(inventory, role_variables(base, source), base)
            assert first.returncode == 0, first.output[-6000:]
            yield Site(base, inventory, source, first)
        finally:
            shutil.rmtree(base, ignore_errors=True)
            shutil.rmtree(source, ignore_errors=True)


def test_the_playbook_and_the_example_inventory_pass_the_syntax_check():
    require_ansible()
    done = subprocess.run(
        [str(ANSIBLE_PLAYBOOK), "--syntax-check", "-i", "inventory.example.ini", "playbook.yml"],
        cwd=DEPLOY, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr


@pytest.mark.slow
def test_the_venv_sees_debian_packages_and_its_edgeknn_runs(site):
    assert site.first_run.recap.changed > 0
    cfg = (site.venv / "pyvenv.cfg").read_text()
    assert "include-system-site-packages = true" in cfg
    assert "home = /usr/bin" in cfg  # Debian's python3, beside python3-picamera2
    done = subprocess.run([site.edgeknn, "--version"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.startswith("edgeknn "), done.stdout + done.stderr


@pytest.mark.slow
def test_the_config_is_rendered_from_the_variables_and_valid_for_the_service_user(site):
    config = site.config_dir / "config.toml"
    checked = as_service_user(site.edgeknn, "config", "check", config)
    assert checked.returncode == 0, checked.stderr
    data = tomllib.loads(config.read_text())
    assert data["device_id"] == "deploy-test"
    assert data["mqtt"]["host"] == "broker.test" and data["mqtt"]["port"] == 1883
    assert "password" not in data["mqtt"]
    assert data["gpio"]["enabled"] is True
    assert [b["label"] for b in data["gpio"]["buttons"]] == ["cat", "dog"]
    assert data["store"]["path"] == str(site.store)
    assert data["models"] == {"dir": str(site.models_dir), "mirror": str(MODELS)}
    assert data["detector"]["enabled"] is True


@pytest.mark.slow
def test_the_password_is_in_a_group_readable_environment_file_and_not_in_the_log(site):
    env_file = site.config_dir / "environment"
    info = env_file.stat()
    assert stat.S_IMODE(info.st_mode) == 0o640
    assert (pwd.getpwuid(info.st_uid).pw_name, grp.getgrgid(info.st_gid).gr_name) == ("root", "edgeknn")
    # systemd's EnvironmentFile= quoting: \" \\ \` \$ inside double quotes.
    assert 'EDGEKNN_MQTT_PASSWORD="pa\\"ss \\$word\\\\ \\`x\\`"' in env_file.read_text().splitlines()
    assert PASSWORD not in site.first_run.output and "pa\\\"ss" not in site.first_run.output


@pytest.mark.slow
def test_the_models_are_fetched_and_verified_as_the_service_user(site):
    done = as_service_user(site.edgeknn, "doctor", "--json", "--models-dir", site.models_dir)
    report = json.loads(done.stdout)
    status = {m["name"]: m["status"] for m in report["models"]}
    assert {name: status[name] for name in ("mobilenet_v1_embedder", "pet_detector", "pets_labels")} == {
        "mobilenet_v1_embedder": "verified", "pet_detector": "verified", "pets_labels": "verified"}
    assert {pwd.getpwuid(p.stat().st_uid).pw_name for p in site.models_dir.iterdir()} == {"edgeknn"}


@pytest.mark.slow
def test_the_service_user_is_a_system_user_in_the_device_groups_that_exist(site):
    user = pwd.getpwnam("edgeknn")
    assert user.pw_shell == "/usr/sbin/nologin" and user.pw_dir == str(site.state_dir)
    assert user.pw_uid < 1000
    expected = set()
    for name in ("video", "gpio", "plugdev"):
        try:
            expected.add(grp.getgrnam(name).gr_name)
        except KeyError:
            pass  # the role adds only groups that exist, and creates none
    member_of = {g.gr_name for g in grp.getgrall() if "edgeknn" in g.gr_mem}
    assert expected <= member_of
    assert stat.S_IMODE(site.config_dir.stat().st_mode) == 0o750
    assert pwd.getpwuid(site.state_dir.stat().st_uid).pw_name == "edgeknn"


@pytest.mark.slow
def test_a_second_run_changes_nothing_and_leaves_the_store_alone(site):
    taught = b"SQLite format 3\x00 taught examples"
    site.store.write_bytes(taught)
    shutil.chown(site.store, "edgeknn", "edgeknn")
    again = site.play()
    assert again.returncode == 0, again.output[-6000:]
    assert again.recap.changed == 0, again.output
    assert site.store.read_bytes() == taught


@pytest.mark.slow
def test_a_check_run_on_a_deployed_device_predicts_no_change(site):
    checked = site.play("--check", "--diff")
    assert checked.returncode == 0, checked.output[-6000:]
    assert checked.recap.changed == 0, checked.output


@pytest.mark.slow
def test_a_store_left_owned_by_root_is_given_back_to_the_service_user_unchanged(site):
    taught = b"SQLite format 3\x00 taught by root"
    site.store.write_bytes(taught)
    shutil.chown(site.store, "root", "root")
    again = site.play()
    assert again.returncode == 0, again.output[-6000:]
    assert again.recap.changed == 1, again.output
    assert pwd.getpwuid(site.store.stat().st_uid).pw_name == "edgeknn"
    assert site.store.read_bytes() == taught


@pytest.mark.slow
@pytest.mark.parametrize(("overrides", "key"), [
    ({"edgeknn_mqtt_port": "abc"}, "mqtt.port"),
    ({"edgeknn_gpio_buttons": [{"pin": 17, "label": "cats/dogs"}]}, "gpio.buttons[0].label"),
], ids=["mqtt-port-abc", "label-with-slash"])
def test_a_bad_variable_fails_at_the_config_validation_and_keeps_the_old_config(site, overrides, key):
    config = site.config_dir / "config.toml"
    before = config.read_bytes()
    bad = site.play(**overrides)
    assert bad.returncode != 0
    assert bad.failed_task() == "edgeknn : Write the config"
    assert "failed to validate" in bad.output and key in bad.output
    assert config.read_bytes() == before
