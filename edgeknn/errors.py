"""The exception hierarchy of edgeknn.

Every error a user can cause or meet derives from :class:`EdgeKnnError`; its
message is one line that names the bad thing (a file, a config key, an MQTT
field, a label) and, where there is one, the fix.  Vendor errors (LiteRT,
Pillow, sqlite3, paho) are translated into these where they cross into
edgeknn, so callers never catch a vendor type.

    EdgeKnnError
    ├── ConfigError (ValueError)            a config key is missing, unknown or out of range
    ├── LabelError (ValueError)             a class label is empty, too long or has bad characters
    ├── ImageError (ValueError)             a file or payload is not a readable image
    ├── DatasetError (ValueError)           a folder-per-class dataset is empty or malformed
    ├── AnnotationError (ValueError)        detection annotations are malformed or name missing files
    ├── ModelError                          a model cannot be found, fetched, verified or opened
    │   ├── ModelNotFound (FileNotFoundError)
    │   ├── ChecksumMismatch
    │   ├── NotATFLiteModel (ValueError)
    │   ├── InterpreterMissing (ImportError)     neither ai-edge-litert nor tflite-runtime
    │   ├── EdgeTpuError
    │   │   ├── DelegateMissing (ImportError)    libedgetpu is not installed
    │   │   └── EdgeTpuModelOnCpu               an _edgetpu model opened without a TPU
    │   └── DetectorError                       outputs not recognisable, labels too short
    ├── StoreError                          the example store refuses or cannot do something
    │   ├── StoreCorrupt                        the store file is not a readable edgeknn store
    │   ├── FingerprintMismatch                 the store was built with another embedder
    │   ├── StoreFull (OSError)                 no disk space left for an add
    │   ├── UnknownLabel (LookupError)
    │   └── UnknownExample (LookupError)
    ├── CameraError                         a camera cannot be opened or stopped delivering
    ├── GpioError                           no GPIO library works on this machine (the service runs on without buttons)
    ├── CommandError (ValueError)           an MQTT command is malformed
    ├── PasswordError (ValueError)          the web password is too short, or its file unusable
    └── WebError (OSError)                  the web server cannot listen where it was asked to
"""

from __future__ import annotations


class EdgeKnnError(Exception):
    """Base of every error edgeknn raises on purpose."""


class ConfigError(EdgeKnnError, ValueError):
    """A config value is wrong; the message starts with its key path."""


class LabelError(EdgeKnnError, ValueError):
    """A class label is not acceptable."""


class ImageError(EdgeKnnError, ValueError):
    """A file or payload is not a readable image."""


class DatasetError(EdgeKnnError, ValueError):
    """A dataset folder is empty or not laid out one sub-folder per class."""


class AnnotationError(EdgeKnnError, ValueError):
    """Detection annotations are malformed or name images that do not exist."""


class ModelError(EdgeKnnError):
    """A model cannot be found, fetched, verified or opened."""


class ModelNotFound(ModelError, FileNotFoundError):
    """No such model in the manifest or on disk."""


class ChecksumMismatch(ModelError):
    """A downloaded or present model file does not match its manifest sha256."""


class NotATFLiteModel(ModelError, ValueError):
    """The file is not a TFLite flatbuffer."""


class InterpreterMissing(ModelError, ImportError):
    """Neither ai-edge-litert nor tflite-runtime is installed."""


class EdgeTpuError(ModelError):
    """The Edge TPU cannot be used as asked."""


class DelegateMissing(EdgeTpuError, ImportError):
    """The libedgetpu delegate library could not be loaded."""


class EdgeTpuModelOnCpu(EdgeTpuError):
    """An Edge TPU-compiled model was opened without the Edge TPU delegate."""


class DetectorError(ModelError):
    """A detector model or its label file is not usable."""


class StoreError(EdgeKnnError):
    """The example store refuses or cannot do something."""


class StoreCorrupt(StoreError):
    """The store file is not a readable edgeknn store."""


class FingerprintMismatch(StoreError):
    """The store holds embeddings from another embedder."""


class StoreFull(StoreError, OSError):
    """The disk holding the store has no room for more examples."""

    def __str__(self) -> str:  # OSError would format (errno, strerror)
        return str(self.args[0]) if self.args else ""


class UnknownLabel(StoreError, LookupError):
    """No class of that name in the store."""

    def __str__(self) -> str:  # LookupError would quote the message
        return str(self.args[0]) if self.args else ""


class UnknownExample(StoreError, LookupError):
    """No example with that id in the store."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


class CameraError(EdgeKnnError):
    """A camera cannot be opened or stopped delivering frames."""


class GpioError(EdgeKnnError):
    """No GPIO library works here (no GPIO chip, no lgpio, no access): a fact of the
    machine, not of the config, so the service runs on without buttons and says so."""


class CommandError(EdgeKnnError, ValueError):
    """An MQTT command is malformed; the message names the field."""


class PasswordError(EdgeKnnError, ValueError):
    """The web page's password is too short, or its file cannot be read or written."""


class WebError(EdgeKnnError, OSError):
    """The web server cannot listen where it was asked to."""
