"""A stand-in for libcamera's Python bindings: only what edgeknn's PiCamera touches."""


class ColorSpace:
    @staticmethod
    def Sycc() -> str:  # noqa: N802 - libcamera's own name
        return "sYCC"
