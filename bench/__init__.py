"""pof's benchmarks: each study is a module of this package, run as ``python -m bench STUDY``
(``python -m bench --list`` names them all). bench/README.md says what each measures and what
it needs; BENCHMARKS.md holds the figures.

The helper modules are not studies: ``harness`` (the machine, pinning, arguments, result files,
small inputs), ``common`` (pof's command line and the face_recognition peer, head to head),
``descriptors`` (pof's descriptors in-process, cached, and gallery templates), ``conditions``
(the synthetic probe conditions) and ``augment`` (synthetic covers of gallery faces).
"""

# in the order bench/README.md presents them
STUDIES = (
    "make_core_set", "core", "make_public_set", "public", "attributes",
    "size_sweep", "blur_sweep", "multi_probe", "multi_probe_public", "build_speed",
    "serve_latency", "web_large_photo", "hostile_requests", "video_speed", "cluster_scale",
    "index_scale", "occlusion", "recognizers", "compression", "lfw_pairs", "gpu_throughput",
    "head_pose", "named_photos", "search_scale",
)
HELPERS = ("harness", "common", "descriptors", "conditions", "augment", "synthetic")
