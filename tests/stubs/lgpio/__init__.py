"""A stand-in for lgpio (joan2937/lg, PY_LGPIO) that fails the way the real one does.

What it imitates, at import time:

* lgUtil.c ``lguGetWorkDir``: the work directory is ``$LG_WD`` if set, else the
  current directory, and the process changes into it;
* lgNotify.c ``lgNotifyOpenWithSize`` (line 131): the FIFO ``<workdir>/.lgd-nfy<handle>``
  is made there; when that fails the call returns ``LG_BAD_PATHNAME`` (-3);
* lgpio_extra.py ``_callback_thread.__init__`` (line 273), run by
  ``_notify_thread = _callback_thread()`` (line 331) at import:
  ``open('.lgd-nfy{}'.format(self._notify), 'rb')``, which with -3 is
  ``FileNotFoundError: '.lgd-nfy-3'``.

Then, like the real library on a machine with no GPIO chip, ``gpiochip_open``
raises ``lgpio.error('can not open gpiochip')``.
"""

import os

SET_PULL_NONE, SET_PULL_UP, SET_PULL_DOWN = 0, 32, 64
SET_BIAS_DISABLE, SET_BIAS_PULL_UP, SET_BIAS_PULL_DOWN = SET_PULL_NONE, SET_PULL_UP, SET_PULL_DOWN
RISING_EDGE, FALLING_EDGE, BOTH_EDGES = 1, 2, 3
LG_BAD_PATHNAME = -3


class error(Exception):  # noqa: N801 - lgpio's own name
    pass


def _notify_open() -> int:
    workdir = os.environ.get("LG_WD") or os.getcwd()
    os.chdir(workdir)
    handle = 0
    try:
        os.mkfifo(os.path.join(workdir, f".lgd-nfy{handle}"), 0o664)
    except FileExistsError:
        pass
    except OSError:
        return LG_BAD_PATHNAME
    return handle


_notify = _notify_open()
if _notify < 0:
    open(f".lgd-nfy{_notify}", "rb")  # FileNotFoundError: '.lgd-nfy-3', as lgpio_extra.py line 273


def gpiochip_open(chip: int) -> int:
    raise error("can not open gpiochip")


def gpiochip_close(handle: int) -> None:
    pass
