"""What the stages run on, and nothing that knows what a face is: model files (``weights``),
the choice of device and CPU runtime (``device``), ONNX Runtime and OpenVINO sessions
(``sessions``), worker processes (``workers``: the pipeline's forked pool and the GPU engine's
helpers, one interface), atomic file writes (``files``) and JPEG in memory (``jpeg``)."""
