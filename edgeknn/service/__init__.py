"""The service run by ``edgeknn run``: the daemon (composition root), the engine
(the models and the store the threads share, and the locking rule), the
processing pipeline, the teacher, the detection stage and systemd integration.
Nothing here imports ``edgeknn.tools``."""
