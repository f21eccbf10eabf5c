"""Loading and running nst ONNX models (nstcli.apply.model), on the tiny models of tests/apply/conftest.py."""

from __future__ import annotations

import os
import signal
import time

import numpy as np
import pytest

from tests.apply.conftest import SIZE_MULTIPLE


def test_model_loads_with_metadata_on_cpu(models):
    from nstcli.apply.model import Model

    model = Model(str(models["single"]), "cpu")
    assert model.providers == ["CPUExecutionProvider"]
    assert model.info.styles == ["tiny"] and model.info.size_multiple == SIZE_MULTIPLE
    assert not model.info.has_style_weights
    out = model.run(np.random.default_rng(0).random((2, 13, 21, 3), dtype=np.float32))  # odd sizes: padded, cropped
    assert out.shape == (2, 13, 21, 3) and out.dtype == np.float32
    assert 0.0 <= out.min() and out.max() <= 1.0


def test_auto_provider_falls_back_to_cpu_silently(models, capfd):
    from nstcli.apply.model import Model

    model = Model(str(models["single"]), "auto")
    captured = capfd.readouterr()
    assert model.providers[-1] == "CPUExecutionProvider"
    assert captured.out == ""  # onnxruntime's own fallback prints never reach stdout
    assert "EP Error" not in captured.err and "Failed to load library" not in captured.err


def test_foreign_model_gets_one_clear_error(models, tmp_path):
    from nstcli.apply.model import Model
    from nstcli.errors import InputError

    with pytest.raises(InputError, match="not an nst model.*expected input 'image'.*found inputs \\['x'\\]"):
        Model(str(models["foreign"]), "cpu")
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"this is not a protobuf")
    with pytest.raises(InputError, match="cannot load as an ONNX model"):
        Model(str(garbage), "cpu")
    with pytest.raises(InputError, match="no such model file"):
        Model(str(tmp_path / "missing.onnx"), "cpu")


def test_multi_style_selection_and_mix(models):
    from nstcli.apply.model import Model
    from nstcli.errors import UsageError

    model = Model(str(models["multi"]), "cpu")
    assert model.info.styles == ["ink", "oil"] and model.info.has_style_weights
    with pytest.raises(UsageError, match="has 2 styles \\(ink, oil\\)"):
        model.select_style(None, None)
    image = np.random.default_rng(1).random((1, 16, 16, 3), dtype=np.float32)
    assert model.select_style("oil", None) == "oil"
    oil = model.run(image)
    assert model.select_style("0", None) == "ink"
    ink = model.run(image)
    assert model.select_style(None, {"ink": 1, "oil": 1}) == "ink50+oil50"
    assert model.region_styles(["oil", "ink"])[1] == "oil+ink"  # joined as a mix: style names may hold hyphens
    np.testing.assert_array_equal(model.style_weights, [0.5, 0.5])
    half = model.run(image)
    assert np.abs(oil - ink).mean() > 1e-3  # the styles really differ
    assert not np.allclose(half, ink) and not np.allclose(half, oil)
    with pytest.raises(UsageError, match="unknown style 'wax'"):
        model.select_style("wax", None)
    with pytest.raises(UsageError, match="not be negative"):
        model.select_style(None, {"ink": -1, "oil": 2})
    single = Model(str(models["single"]), "cpu")
    with pytest.raises(UsageError, match="mixing needs a multi-style model"):
        single.select_style(None, {"tiny": 1})
    assert single.select_style("0", None) == "tiny"


def test_sessions_share_one_cpu_memory_arena():
    """A second session's run reuses the memory the first one's freed, instead of growing an arena of its own
    (each would keep its peak: the universal model's six sessions held 4.7 GB at 2048 px, 3.0 GB shared)."""
    import subprocess
    import sys

    from tests.conftest import REPO, SUBPROCESS_ENV

    script = """
import resource, sys
import numpy as np
from nstcli.apply.runtime import create_session
path = sys.argv[1]
x = np.random.default_rng(0).random((1, 64, 512, 512), dtype=np.float32)  # 64 MB in, a 64 MB map inside
first, second = (create_session(path, "cpu", 1)[0] for _ in range(2))
first.run(None, {"x": x})
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
second.run(None, {"x": x})
print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - peak)
"""
    encoder = REPO / "styles" / "universal" / "encoder_2.onnx"
    done = subprocess.run([sys.executable, "-c", script, str(encoder)], capture_output=True, text=True, env=SUBPROCESS_ENV, timeout=120)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 32 * 1024  # KB: the second run grew the process by less than 32 MB (its own arena: ~130 MB)


def test_an_interrupt_while_a_session_is_made_is_raised_after_it_not_reported_as_a_bad_model(models, monkeypatch):
    """onnxruntime turned a Ctrl-C during its set-up into "initialization failed" (nst then called the model
    file bad). The stand-in signals itself and, as onnxruntime did, turns a KeyboardInterrupt into a failed load."""
    import onnxruntime as ort

    from nstcli.apply import runtime

    real_session = ort.InferenceSession

    def interrupted_session(*args, **kwargs):
        try:
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.2)  # the handler runs here
        except KeyboardInterrupt:
            raise RuntimeError("initialization failed") from None
        return real_session(*args, **kwargs)

    monkeypatch.setattr(ort, "InferenceSession", interrupted_session)
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)  # a background `pytest &` ignores SIGINT
    try:
        with pytest.raises(KeyboardInterrupt):
            runtime.load_session(str(models["single"]), "cpu")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler
    finally:
        signal.signal(signal.SIGINT, previous)
