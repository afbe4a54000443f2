"""The model manifest, fetching over real HTTP and from mirrors, and `edgeknn models`."""

from __future__ import annotations

import shutil
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from conftest import MODELS

from edgeknn.cli import main
from edgeknn.errors import ChecksumMismatch, ModelError, ModelNotFound
from edgeknn.vision import models

TINY = "mobilenet_v1_tiny"  # mobilenet_v1_0.25_128_quant.tflite, 0.5 MB


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - keep test output clean
        pass


@pytest.fixture
def web(tmp_path):
    """A real HTTP server on a free loopback port serving the directory it yields."""
    root = tmp_path / "www"
    root.mkdir()
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(_QuietHandler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
    thread.join(timeout=5)


@pytest.fixture
def manifest():
    return models.load_manifest()


@pytest.fixture
def tiny(manifest):
    return manifest[TINY]


@pytest.fixture
def models_dir(tmp_path):
    return tmp_path / "models"


def _listing(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir()) if directory.exists() else []


# --------------------------------------------------------------------------- manifest

def test_manifest_agrees_with_the_shared_sha256sums(manifest):
    sums = {}
    for line in (MODELS / "SHA256SUMS").read_text().splitlines():
        digest, name = line.split()
        sums[name] = digest
    assert {info.file: info.sha256 for info in manifest.values() if not info.parts} == sums


def test_manifest_entries_are_typed(manifest):
    embedder = manifest["mobilenet_v1_embedder"]
    assert embedder.input == (224, 224)
    assert embedder.edgetpu is False and embedder.default is True
    assert manifest["mobilenet_v1_embedder_edgetpu"].edgetpu is True
    assert manifest["mobilenet_v2"].labels == "imagenet_labels"


def test_default_model_per_kind(manifest):
    assert models.default_model("embedder").name == "mobilenet_v1_embedder"
    assert models.default_model("detector").name == "pet_detector"
    with pytest.raises(ModelNotFound, match="no default classifier"):
        models.default_model("classifier", manifest=manifest)


def test_resolve_variants_from_either_side(manifest):
    cpu, tpu = manifest["mobilenet_v1_embedder"], manifest["mobilenet_v1_embedder_edgetpu"]
    assert models.resolve_variants(cpu) == (cpu, tpu)
    assert models.resolve_variants(tpu) == (cpu, tpu)
    assert models.resolve_variants(manifest["mobilenet_v2"]) == (manifest["mobilenet_v2"], None)


GOOD = """
[models.a]
file = "a.tflite"
url = "https://example.org/a.tflite"
sha256 = "%s"
kind = "embedder"
""" % ("0" * 64)


@pytest.mark.parametrize(
    ("extra", "replace", "fragment"),
    [
        ("colour = 'red'\n", None, "models.a.colour"),
        ("input = [224]\n", None, "models.a.input"),
        ("edgetpu = 'yes'\n", None, "models.a.edgetpu"),
        ("edgetpu_variant = 'nope'\n", None, "models.a.edgetpu_variant"),
        ("labels = 'nope'\n", None, "models.a.labels"),
        ("edgetpu = true\n", None, "models.a.cpu_variant"),
        ("", ('kind = "embedder"', 'kind = "camera"'), "models.a.kind"),
        ("", ("0" * 64, "abc"), "models.a.sha256"),
        ("", ('file = "a.tflite"', 'file = "../a.tflite"'), "models.a.file"),
        ("", ('url = "https://example.org/a.tflite"\n', ""), "models.a.url is missing"),
    ],
)
def test_a_bad_manifest_entry_is_named_by_entry_and_key(tmp_path, extra, replace, fragment):
    text = GOOD + extra
    if replace:
        text = text.replace(*replace)
    path = tmp_path / "manifest.toml"
    path.write_text(text)
    with pytest.raises(ModelError, match=fragment.replace(".", r"\.")):
        models.load_manifest(path)


def test_a_valid_custom_manifest_loads(tmp_path):
    path = tmp_path / "manifest.toml"
    path.write_text(GOOD)
    assert list(models.load_manifest(path)) == ["a"]


# --------------------------------------------------------------------------- fetch

def test_fetch_over_http_verifies_and_keeps_only_the_model(web, tiny, models_dir):
    root, url = web
    shutil.copyfile(MODELS / tiny.file, root / tiny.file)
    seen = []
    path = models.fetch(tiny, models_dir, mirror=url, progress=lambda d, t: seen.append((d, t)))
    assert path == models_dir / tiny.file
    assert path.read_bytes() == (MODELS / tiny.file).read_bytes()
    assert models.verify(path, tiny.sha256)
    assert _listing(models_dir) == [tiny.file]
    size = path.stat().st_size
    assert seen[-1] == (size, size)


def test_corrupted_download_is_a_checksum_mismatch_and_leaves_nothing(web, tiny, models_dir):
    root, url = web
    data = bytearray((MODELS / tiny.file).read_bytes())
    data[1000] ^= 0xFF
    (root / tiny.file).write_bytes(bytes(data))
    with pytest.raises(ChecksumMismatch) as caught:
        models.fetch(tiny, models_dir, mirror=url)
    message = str(caught.value)
    assert tiny.file in message and tiny.sha256 in message and "got " in message
    assert _listing(models_dir) == []


def test_http_404_is_a_model_error_naming_the_url(web, tiny, models_dir):
    _, url = web
    with pytest.raises(ModelError, match="404") as caught:
        models.fetch(tiny, models_dir, mirror=url)
    assert f"{url}/{tiny.file}" in str(caught.value)
    assert _listing(models_dir) == []


def test_a_server_that_never_answers_times_out(tiny, models_dir):
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"
        with pytest.raises(ModelError, match="no data for 0.5 s"):
            models.fetch(tiny, models_dir, mirror=url, timeout=0.5)
    assert _listing(models_dir) == []


def test_mirror_may_be_a_directory(tiny, models_dir):
    path = models.fetch(tiny, models_dir, mirror=str(MODELS))
    assert models.verify(path, tiny.sha256)


def test_mirror_may_be_a_file_url(tiny, models_dir):
    path = models.fetch(tiny, models_dir, mirror=MODELS.as_uri())
    assert models.verify(path, tiny.sha256)


def test_without_a_mirror_the_source_is_the_manifests_url(tiny):
    assert models.source_url(tiny) == tiny.url
    assert models.source_url(tiny, str(MODELS)) == str(MODELS / tiny.file)


def test_models_fetch_takes_the_mirror_from_the_environment(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("EDGEKNN_MODEL_MIRROR", str(MODELS))
    assert main(["models", "fetch", TINY, "--models-dir", str(tmp_path)]) == 0
    assert f"from {MODELS / models.lookup(TINY).file}" in capsys.readouterr().err


def test_a_directory_mirror_without_the_file_names_it(tmp_path, tiny, models_dir):
    with pytest.raises(ModelError, match=tiny.file):
        models.fetch(tiny, models_dir, mirror=str(tmp_path / "empty"))
    assert _listing(models_dir) == []


# --------------------------------------------------------------------------- ensure_model

def test_ensure_model_of_an_unknown_name_lists_the_known_ones():
    with pytest.raises(ModelNotFound, match="no model 'resnet'.*mobilenet_v1_embedder"):
        models.ensure_model("resnet")


def test_ensure_model_returns_a_given_path_unchanged():
    path = MODELS / "mobilenet_v1_0.25_128_quant.tflite"
    assert models.ensure_model(str(path)) == path


def test_ensure_model_of_a_missing_path_names_it(tmp_path):
    with pytest.raises(ModelNotFound, match="nothere.tflite"):
        models.ensure_model(str(tmp_path / "nothere.tflite"))
    with pytest.raises(ModelNotFound, match="mine.tflite"):
        models.ensure_model("mine.tflite")


def test_ensure_model_fetches_once_then_uses_the_verified_file(tiny, models_dir, tmp_path):
    path = models.ensure_model(TINY, models_dir, mirror=str(MODELS))
    assert models.verify(path, tiny.sha256)
    # A second call must not download: a mirror that has nothing would fail it.
    assert models.ensure_model(TINY, models_dir, mirror=str(tmp_path / "nothing")) == path


def test_ensure_model_replaces_a_corrupted_file(tiny, models_dir):
    models_dir.mkdir()
    (models_dir / tiny.file).write_bytes(b"not a model")
    path = models.ensure_model(TINY, models_dir, mirror=str(MODELS))
    assert models.verify(path, tiny.sha256)
    assert _listing(models_dir) == [tiny.file]


def test_verify(tmp_path, tiny):
    assert models.verify(MODELS / tiny.file, tiny.sha256)
    assert not models.verify(MODELS / "imagenet_labels.txt", tiny.sha256)
    assert not models.verify(tmp_path / "absent", tiny.sha256)


def test_file_status(tiny, models_dir):
    assert models.file_status(tiny, models_dir) == "absent"
    models.fetch(tiny, models_dir, mirror=str(MODELS))
    assert models.file_status(tiny, models_dir) == "verified"
    (models_dir / tiny.file).write_bytes(b"x")
    assert models.file_status(tiny, models_dir) == "mismatch"


def test_select_adds_the_labels_a_model_names(manifest):
    assert [i.name for i in models.select(manifest, ["mobilenet_v2"])] == [
        "mobilenet_v2", "imagenet_labels"]
    assert {i.kind for i in models.select(manifest, kind="embedder")} == {"embedder"}
    assert len(models.select(manifest)) == len([i for i in manifest.values() if not i.parts])


# --------------------------------------------------------------------------- CLI

def test_cli_list_shows_every_entry_and_its_status(capsys, models_dir):
    models.fetch(models.load_manifest()[TINY], models_dir, mirror=str(MODELS))
    assert main(["models", "list", "--models-dir", str(models_dir)]) == 0
    out = capsys.readouterr().out
    lines = {line.split()[0]: line.split() for line in out.splitlines()[2:]}
    assert set(lines) == set(models.load_manifest())
    assert lines[TINY][-1] == "verified"
    assert lines["mobilenet_v1_embedder"][-1] == "absent"
    assert lines["mobilenet_v1_embedder_edgetpu"][2] == "yes"


def test_cli_list_flags_a_bad_checksum_and_exits_1(capsys, tiny, models_dir):
    models_dir.mkdir()
    (models_dir / tiny.file).write_bytes(b"x")
    assert main(["models", "list", "--models-dir", str(models_dir)]) == 1
    assert "MISMATCH" in capsys.readouterr().out


def test_cli_fetch_by_name_over_http(capsys, web, tiny, models_dir):
    root, url = web
    shutil.copyfile(MODELS / tiny.file, root / tiny.file)
    shutil.copyfile(MODELS / "imagenet_labels.txt", root / "imagenet_labels.txt")
    argv = ["models", "fetch", TINY, "--mirror", url, "--models-dir", str(models_dir)]
    assert main(argv) == 0
    assert _listing(models_dir) == sorted([tiny.file, "imagenet_labels.txt"])
    assert "sha256 ok" in capsys.readouterr().err
    assert main(argv) == 0  # a second run finds them and skips
    assert "already present" in capsys.readouterr().err


def test_cli_fetch_by_kind_from_the_environment_mirror(models_dir, manifest):
    assert main(["models", "fetch", "--kind", "embedder", "--models-dir", str(models_dir)]) == 0
    expected = {i.file for i in manifest.values() if i.kind == "embedder" and not i.parts}
    assert set(_listing(models_dir)) == expected


def test_cli_fetch_of_an_unknown_name_is_an_error(capsys, models_dir):
    assert main(["models", "fetch", "resnet", "--models-dir", str(models_dir)]) == 2
    assert "edgeknn: error: no model 'resnet'" in capsys.readouterr().err


@pytest.mark.parametrize("action", ["list", "fetch"])
def test_cli_help_has_examples(capsys, action):
    with pytest.raises(SystemExit) as exit_:
        main(["models", action, "--help"])
    assert exit_.value.code == 0
    assert f"edgeknn models {action}" in capsys.readouterr().out.split("examples:")[1]
