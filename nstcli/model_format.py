"""The contract between ``nst export`` and ``nst apply``: what an nst ONNX model looks like.

Kept free of torch and onnxruntime so both sides (and tests) can import it cheaply.

Graph:
- input ``image``: float32 (N, 3, H, W), RGB in 0..1, N/H/W dynamic.
- optional input ``style_weights``: float32 (K,), multi-style models only; a one-hot vector picks one
  style, other convex weights blend the styles (StyleBank: its banks; CIN: its norms' scales and shifts).
- output ``stylised``: float32 (N, 3, H, W), RGB in 0..1, same H and W as the input.
- H and W must be multiples of ``nst.size_multiple`` and at least twice it; ``nst apply`` pads
  (reflect, or edge when the image is too small to reflect) and crops back.

Metadata (ONNX ``metadata_props``, all strings):

Universal style transfer (``nst apply --style-image``, :mod:`nstcli.universal_export`) is a folder of
graphs instead, ``encoder_K.onnx`` (relu{K-1}_1 or the RGB image -> relu{K}_1) and ``decoder_K.onnx``
(relu{K}_1 -> RGB, not clamped), each with input ``x`` and output ``y`` (float32 NCHW, N/H/W dynamic;
H and W multiples of 8 at the image) and ``nst.arch`` = universal plus the part and level below. An
encoder stage may also come as ``encoder_K.int8.onnx``, the same stage quantised to compute in int8 (its
``nst.precision`` is ``int8-compute``), which apply runs in its place on the CPU.
"""

from __future__ import annotations

FORMAT_VERSION = "1"

INPUT_IMAGE = "image"
INPUT_STYLE_WEIGHTS = "style_weights"
OUTPUT_IMAGE = "stylised"

META_FORMAT = "nst.format"  # FORMAT_VERSION
META_VERSION = "nst.version"  # nst version that exported the model
META_ARCH = "nst.arch"  # johnson | texture | stylebank | cin
META_STYLES = "nst.styles"  # JSON list of style names, one per style_weights entry (or one name)
META_CONFIG = "nst.config"  # JSON of the full training configuration
META_SIZE_MULTIPLE = "nst.size_multiple"  # integer as text, e.g. "4"
META_PRECISION = "nst.precision"  # fp32 | fp16 | int8 (inputs/outputs stay float32)
META_UNIVERSAL_PART = "nst.universal.part"  # encoder | decoder
META_UNIVERSAL_LEVEL = "nst.universal.level"  # 1..4
META_UNIVERSAL_LAYER = "nst.universal.layer"  # relu1_1 .. relu4_1
META_FIRST_STAGE = "nst.universal.first_stage"  # encoder_1's conv as JSON (apply/level_one.first_stage_metadata)
UNIVERSAL_STYLE_SIZE = 256  # default long side a painting is measured at (the peer's size; 512 costs 0.9 s more per run)
INT8_COMPUTE = "int8-compute"  # nst.precision of a universal encoder stage that computes in int8 (not just stores)
UNIVERSAL_INPUT = "x"
UNIVERSAL_OUTPUT = "y"
META_INPUT = "nst.input"  # human-readable input convention, INPUT_CONVENTION
INPUT_CONVENTION = "image: float32 NCHW RGB 0..1; output stylised: float32 NCHW RGB 0..1"


def universal_file(part: str, level: int, int8_compute: bool = False) -> str:
    """A universal folder's file: ``encoder_K.onnx``, ``decoder_K.onnx``, or an int8 encoder stage ``encoder_K.int8.onnx``."""
    return f"{part}_{level}{'.int8' if int8_compute else ''}.onnx"
