"""`edgeknn ha`: Home Assistant housekeeping."""

from __future__ import annotations

import argparse
import time
from dataclasses import replace

from edgeknn.cli.flags import Flag, add_flags, load_config

EPILOG = """examples:
  edgeknn ha remove                               # the device /etc/edgeknn/config.toml names
  edgeknn ha remove --device-id old-name          # after changing device_id

Run `remove` before turning [homeassistant] off or changing device_id: it sends
the empty retained discovery config, and Home Assistant deletes the device and
all its entities.  A running service with discovery on announces it again.
"""
CONNECT_TIMEOUT = 10.0


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "ha", help="Home Assistant: remove the device edgeknn announced",
        description="Home Assistant housekeeping for the device edgeknn announces by MQTT discovery.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    actions = parser.add_subparsers(dest="ha_command", metavar="ACTION", required=True)
    remove = actions.add_parser(
        "remove", help="delete the device and its entities from Home Assistant",
        description="Publish the empty retained discovery config for this device, which makes\n"
        "Home Assistant delete the device and every entity of it.",
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_flags(remove, [Flag("--device-id", "device_id",
                            help="the device id it was announced under (default: the config's)")])
    remove.set_defaults(func=run_remove)


def run_remove(args: argparse.Namespace) -> int:
    from edgeknn.errors import EdgeKnnError
    from edgeknn.mqtt.client import MqttClient
    from edgeknn.mqtt.topics import Topics
    from edgeknn.service.daemon import device_id, mqtt_config
    from edgeknn.service.homeassistant import describe

    config = load_config(args)  # the service's config file, --device-id replacing its device_id
    device = device_id(config)
    settings = mqtt_config(config, device)
    topic = describe(config, device).topic
    # its own client id, so that a running service is not disconnected by the broker
    client = MqttClient(replace(settings, client_id=f"{settings.client_id}-ha-remove"),
                        Topics.for_device(device, config.mqtt.base_topic or None), announce_status=False)
    client.start()
    try:
        deadline = time.monotonic() + CONNECT_TIMEOUT
        while not client.is_connected:
            if time.monotonic() > deadline:
                raise EdgeKnnError(f"could not reach the MQTT broker {settings.host}:{settings.port} "
                                   f"within {CONNECT_TIMEOUT:.0f} s; nothing was removed")
            time.sleep(0.05)
        client.publish(topic, b"", qos=1, retain=True)
    finally:
        client.stop(timeout=5)
    print(f"removed: sent the empty retained config on {topic}")
    return 0
