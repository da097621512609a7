"""Convert dlib's 68-point shape predictor (``shape_predictor_68_face_landmarks.dat``) to the
compact ``.npz`` that pof's GPU engine loads (``pof.gpu.shape68``), once.

The ``.dat`` comes from the ``face_recognition_models`` package (``--dat`` to use another);
the ``.npz`` goes to ``pof.gpu.shape68.default_path()`` (``$POF_SHAPE68_NPZ``, else
``pof/runtime/weights/dlib_shape68/shape68.npz``, which git ignores) unless ``--out`` says otherwise.
dlib is not needed. Prints the output's size and SHA-256 and the source's SHA-256::

    python tools/convert_shape_predictor.py
    python tools/convert_shape_predictor.py --out /some/where/shape68.npz
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from pof.gpu import shape68
from pof.runtime.weights import dlib_model


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--dat", type=Path, default=None,
                    help="the .dat file (default: the one in face_recognition_models)")
    ap.add_argument("--out", type=Path, default=None,
                    help=f"the .npz to write (default: {shape68.default_path()})")
    args = ap.parse_args(argv)
    dat = args.dat or dlib_model("shape68")
    out = args.out or shape68.default_path()
    start = time.perf_counter()
    shape68.convert(dat, out)
    seconds = time.perf_counter() - start
    print(f"{out}: {out.stat().st_size / 1e6:.2f} MB, converted in {seconds:.1f} s")
    print(f"sha256 {shape68.file_sha256(out)}")
    print(f"source {dat} sha256 {shape68.load_npz(out)['source_sha256']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
