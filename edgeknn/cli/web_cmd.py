"""``edgeknn web password``: set the password that lets a browser change the store."""

from __future__ import annotations

import argparse
import getpass
import sys

from edgeknn.cli.flags import add_config_arg, load_config

EPILOG = """examples:
  sudo edgeknn web password                      # asks twice; /etc/edgeknn/config.toml's password_file
  edgeknn web password --config ./config.toml    # that config's web.password_file
  echo 'a long passphrase' | edgeknn web password --stdin --config ./config.toml

The service reads the file at each login: no restart is needed.
"""

PASSWORD_EPILOG = """examples:
  sudo edgeknn web password
  edgeknn web password --config ./config.toml
  edgeknn web password --stdin < secret.txt

Only a salted scrypt hash is written (mode 600), to the config's web.password_file
(default /var/lib/edgeknn/web-password).
"""


def register(sub: argparse._SubParsersAction) -> None:
    raw = argparse.RawDescriptionHelpFormatter
    parser = sub.add_parser("web", help="the web page: set its password",
                            description="Manage the web page's login.", epilog=EPILOG, formatter_class=raw)
    actions = parser.add_subparsers(dest="web_command", metavar="ACTION", required=True)
    p = actions.add_parser("password", help="set the password that allows changes from the page",
                           description="Set the web page's password (stored hashed).",
                           epilog=PASSWORD_EPILOG, formatter_class=raw)
    add_config_arg(p)  # its web.password_file is written
    p.add_argument("--stdin", action="store_true", help="read the password from the first line of stdin")
    p.set_defaults(func=set_password)


def set_password(args: argparse.Namespace) -> int:
    from edgeknn.errors import PasswordError
    from edgeknn.web.auth import hash_password, write_password_hash

    target = load_config(args).web.password_file
    if args.stdin:
        password = sys.stdin.readline().rstrip("\r\n")
    else:
        password = getpass.getpass("new web password: ")
        if getpass.getpass("again: ") != password:
            raise PasswordError("the two passwords differ; nothing was changed")
    write_password_hash(target, hash_password(password))
    print(f"password set in {target}")
    return 0
