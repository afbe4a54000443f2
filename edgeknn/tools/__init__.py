"""Tools for people, never imported by the service: the demo, the private
mosquitto it and the benchmarks start (``devbroker``, also used by the tests),
the benchmarks, classifier evaluation and detector evaluation (COCO mAP)."""
