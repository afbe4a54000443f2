"""The README's demo: the real service on sample photos, watched over MQTT.

    python -m edgeknn.tools.demo SHARED_DIR [--seconds N]

1. starts a private mosquitto on a free loopback port;
2. teaches cat, dog and hot dog from Coral's imprinting training photos;
3. runs ``edgeknn run`` (the service itself) with a replay camera playing
   held-out photos, the pet detector on;
4. subscribes like Home Assistant would and prints what the service publishes.

Everything it writes goes under ./var/demo.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from edgeknn.tools.devbroker import LocalBroker

TEACH = {
    "cat": ["cat_train_0.bmp"],
    "dog": ["dog_train_0.bmp"],
    "hotdog": ["hotdog_train_0.bmp", "hotdog_train_1.bmp"],
}
SHOW = ["imprinting/cat_test_0.bmp", "imprinting/dog_test_0.bmp", "imprinting/hotdog_test_0.bmp",
        "cat.bmp", "hot_dog.jpg", "parrot.jpg"]


def prepare(shared: Path, work: Path) -> tuple[Path, Path]:
    images = shared / "data" / "images"
    teach, frames = work / "teach", work / "frames"
    for folder in (teach, frames):
        shutil.rmtree(folder, ignore_errors=True)
    for label, files in TEACH.items():
        (teach / label).mkdir(parents=True)
        for name in files:
            shutil.copy(images / "imprinting" / name, teach / label / name)
    frames.mkdir(parents=True)
    for i, name in enumerate(SHOW):
        shutil.copy(images / name, frames / f"{i:02d}_{Path(name).name}")
    return teach, frames


WEB_PORT = 8080


def write_config(path: Path, work: Path, frames: Path, models: Path, broker: LocalBroker) -> None:
    path.write_text(f"""\
# written by the demo; see `edgeknn config example` for every key
device_id = "demo"
[store]
path = "{work / 'store.db'}"
[models]
dir = "{models}"
mirror = "{os.environ.get('EDGEKNN_MODEL_MIRROR', '')}"
[camera]
source = "replay"
path = "{frames}"
fps = 1.0
[classifier]
smoothing = 1
[detector]
enabled = true
classify_objects = true
[mqtt]
host = "{broker.host}"
port = {broker.port}
[web]
# the page on this machine only, open to its users: http://127.0.0.1:{WEB_PORT}/
host = "127.0.0.1"
port = {WEB_PORT}
anonymous_writes = true
[logging]
level = "info"
""")


def show(message) -> None:
    topic = message.topic.rsplit("/", 1)[-1]
    if topic == "prediction":
        p = json.loads(message.payload)
        label = "unknown" if p["unknown"] else p["label"]
        print(f"frame {p['frame']:>3}  prediction  {label:<8} confidence {p['confidence']:.2f}  "
              f"similarity {p['similarity']:.2f}", flush=True)
    elif topic == "detections":
        d = json.loads(message.payload)
        found = ", ".join(
            f"{o['label']} {o['score']:.2f} at {o['box_px']}"
            + (f" (KNN: {o['class']['label']})" if "class" in o else "")
            for o in d["objects"]
        ) or "nothing"
        print(f"frame {d['frame']:>3}  detections  {found}", flush=True)
    elif topic in ("status", "classes"):
        print(f"           {topic:<11} {message.payload.decode()}", flush=True)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m edgeknn.tools.demo", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shared", type=Path, help="the shared folder with data/images")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (default: Ctrl-C)")
    parser.add_argument("--work", type=Path, default=Path("var/demo"))
    args = parser.parse_args(argv)

    import paho.mqtt.client as mqtt
    from paho.mqtt.enums import CallbackAPIVersion

    work = args.work.resolve()
    work.mkdir(parents=True, exist_ok=True)
    models = Path(os.environ.get("EDGEKNN_MODELS_DIR", work / "models"))
    teach, frames = prepare(args.shared, work)
    edgeknn = [sys.executable, "-m", "edgeknn"]
    store = work / "store.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store}{suffix}").unlink(missing_ok=True)
    env = {**os.environ, "EDGEKNN_MODELS_DIR": str(models)}
    subprocess.run([*edgeknn, "teach", str(teach), "--store", str(store)], check=True, env=env)

    with LocalBroker(work) as broker:
        config = work / "config.toml"
        write_config(config, work, frames, models, broker)
        print(f"\nbroker: mosquitto on {broker.host}:{broker.port}; try: "
              f"mosquitto_sub -p {broker.port} -t 'edgeknn/#' -v", flush=True)
        print(f"web page: http://127.0.0.1:{WEB_PORT}/\n", flush=True)
        watcher = mqtt.Client(CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv5)
        watcher.on_message = lambda client, userdata, message: show(message)
        watcher.connect(broker.host, broker.port)
        watcher.subscribe("edgeknn/demo/#")
        watcher.loop_start()
        service = subprocess.Popen([*edgeknn, "run", "--config", str(config)], env=env)
        stop = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        try:
            deadline = time.monotonic() + args.seconds if args.seconds else None
            while not stop.wait(0.2) and service.poll() is None:
                if deadline and time.monotonic() > deadline:
                    break
        finally:
            service.send_signal(signal.SIGTERM)
            code = service.wait(timeout=10)
            time.sleep(0.3)
            watcher.loop_stop()
            watcher.disconnect()
    return code


if __name__ == "__main__":
    raise SystemExit(main())
