"""The store of taught examples: a durable SQLite file (``sqlite``), the in-memory
search matrix over its embeddings (``matrix``, ``search``) and the API the rest of
edgeknn uses (``store``)."""

from edgeknn.store.store import THUMBNAIL_SIDE, ExampleRow, NewExample, Store, StoreInfo, make_example

__all__ = ["THUMBNAIL_SIDE", "ExampleRow", "NewExample", "Store", "StoreInfo", "make_example"]
