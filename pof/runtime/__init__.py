"""What the stages run on: model files (``weights``), ONNX Runtime and OpenVINO sessions and the
choice of device (``device``), and worker processes (``parallel`` for pipeline work over many
photos, ``workers`` for the GPU engine's CPU shares). Nothing here knows what a face is."""
