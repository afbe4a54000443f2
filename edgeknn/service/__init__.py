"""The service run by ``edgeknn run``: the daemon (composition root), the
processing pipeline, the teacher, the detection stage and systemd integration.
Nothing here imports ``edgeknn.tools``."""
