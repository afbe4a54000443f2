"""The models: the LiteRT/tflite-runtime interpreter and the Edge TPU delegate
(``runtime``), the model manifest and downloads (``models``), the embedder, the
SSD detector and its label map, and building either by name (``engines``)."""
