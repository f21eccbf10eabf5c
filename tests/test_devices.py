import pytest
import torch

from nstcli.devices import resolve_precision

CPU = torch.device("cpu")


@pytest.mark.parametrize(("avx512_bf16", "amx", "expected"), [
    (False, False, torch.float32),  # plain AVX-512: oneDNN would emulate bf16, 2-3x slower than fp32
    (True, False, torch.bfloat16),
    (False, True, torch.bfloat16),
])  # fmt: skip
def test_auto_precision_is_bf16_only_on_a_cpu_that_computes_it_in_hardware(
    monkeypatch: pytest.MonkeyPatch, avx512_bf16: bool, amx: bool, expected: torch.dtype
) -> None:
    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: avx512_bf16)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: amx)
    assert resolve_precision("auto", CPU) == expected


def test_a_named_precision_is_taken_as_given() -> None:
    assert resolve_precision("fp32", CPU) == torch.float32
    assert resolve_precision("bf16", CPU) == torch.bfloat16
