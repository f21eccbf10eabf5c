"""Generator networks: shapes, value range, odd sizes, options, initialisation, texture noise."""

from __future__ import annotations

import pytest
import torch

from nstcli import generators
from nstcli.errors import UsageError

CASES = [
    ("johnson", {"width": 0.25, "residual_blocks": 1}),
    ("johnson", {"width": 0.25, "residual_blocks": 0, "upsample": "deconv"}),
    ("johnson", {"width": 0.25, "residual_blocks": 0, "upsample": "bilinear"}),
    ("johnson", {"width": 0.5, "residual_blocks": 1, "decoder_width": 0.125}),
    ("johnson", {"width": 0.25, "residual_blocks": 1, "norm": "batch"}),
    ("texture", {"scales": 3, "channels": 4}),
    ("texture", {"scales": 2, "noise_channels": 0}),
]


pytestmark = pytest.mark.usefixtures("one_torch_thread")


@pytest.mark.parametrize(("arch", "values"), CASES)
def test_output_is_an_image_of_the_same_shape(arch, values):
    options = generators.make_options(arch, values)
    model = generators.build_generator(arch, options)
    multiple = options.size_multiple()
    image = torch.rand(2, 3, 2 * multiple, 3 * multiple)  # the smallest valid height
    with torch.no_grad():
        output = model(image)
    assert output.shape == image.shape
    assert output.dtype == torch.float32
    assert 0.0 <= float(output.min()) and float(output.max()) <= 1.0


@pytest.mark.parametrize(("arch", "values"), CASES)
@pytest.mark.parametrize("size", [(37, 53), (3, 5)])
def test_stylise_handles_any_size(arch, values, size):
    options = generators.make_options(arch, values)
    model = generators.build_generator(arch, options).eval()
    image = torch.rand(1, 3, *size)
    with torch.no_grad():
        assert generators.stylise(model, image, options.size_multiple()).shape == image.shape


def test_pad_to_multiple_keeps_the_image_top_left():
    image = torch.rand(1, 3, 10, 13)
    padded = generators.pad_to_multiple(image, 4)
    assert padded.shape == (1, 3, 12, 16)
    assert torch.equal(padded[..., :10, :13], image)
    assert torch.equal(padded[..., 10, :13], image[..., 8, :])  # reflection, not zeros
    assert generators.pad_to_multiple(image[..., :1, :2], 4).shape == (1, 3, 8, 8)  # at least 2x; replicated
    assert generators.pad_to_multiple(padded, 4) is padded


def test_parameter_counts_match_the_papers_and_width_scales_them():
    def count(arch, values):
        return generators.count_parameters(generators.build_generator(arch, generators.make_options(arch, values)))

    assert 1.6e6 < count("johnson", {}) < 1.8e6  # Johnson et al.: ~1.7M
    assert 60e3 < count("texture", {}) < 90e3  # the study counted ~75k
    assert count("johnson", {"width": 0.25}) < count("johnson", {"width": 0.5}) < count("johnson", {}) / 3
    assert count("johnson", {"residual_blocks": 2}) < count("johnson", {})
    # --decoder-width 0.125: the upsampling stages 128 -> 8 -> 4 channels (3x3 convs + affine norms), 9x9 conv to RGB
    narrow = 128 * 8 * 9 + 8 + 2 * 8 + 8 * 4 * 9 + 4 + 2 * 4 + 4 * 3 * 81 + 3
    wide = 128 * 64 * 9 + 64 + 2 * 64 + 64 * 32 * 9 + 32 + 2 * 32 + 32 * 3 * 81 + 3
    assert count("johnson", {}) - count("johnson", {"decoder_width": 0.125}) == wide - narrow
    # the output conv: 32 x 3 x 9 x 9 weights at width 1, 32 x 3 x 3 x 3 with --output-kernel 3
    assert count("johnson", {}) - count("johnson", {"output_kernel": 3}) == 32 * 3 * (81 - 9)
    assert count("stylebank", {}) - count("stylebank", {"output_kernel": 3}) == 32 * 3 * (81 - 9)


def test_options_that_do_not_fit_the_arch_are_usage_errors():
    with pytest.raises(UsageError, match="--upsample does not apply to --arch texture"):
        generators.make_options("texture", {"upsample": "deconv"})
    with pytest.raises(UsageError, match="--width"):
        generators.make_options("johnson", {"width": 0})
    with pytest.raises(UsageError, match="--decoder-width must be between"):
        generators.make_options("johnson", {"decoder_width": 0})
    with pytest.raises(UsageError, match="unknown --norm 'group'"):
        generators.make_options("johnson", {"norm": "group"})
    with pytest.raises(UsageError, match="--upsample"):
        generators.make_options("johnson", {"upsample": "bicubic"})
    with pytest.raises(UsageError, match="--output-kernel must be one of 1, 3, 5, 7, 9"):
        generators.make_options("stylebank", {"output_kernel": 4})
    with pytest.raises(UsageError, match="unknown --arch"):
        generators.make_options("stylegan", {})
    with pytest.raises(UsageError, match="unknown --init"):
        generators.build_generator("johnson", generators.make_options("johnson", {}), init="zeros")


def test_options_round_trip_through_a_plain_dict():
    options = generators.make_options("johnson", {"width": 0.5, "upsample": "deconv"})
    again = generators.make_options("johnson", generators.options_dict(options))
    assert again == options


def test_init_schemes_change_the_weights():
    options = generators.make_options("johnson", {"width": 0.25, "residual_blocks": 1})

    def first_conv(init):
        torch.manual_seed(0)
        model = generators.build_generator("johnson", options, init)
        return next(module for module in model.modules() if isinstance(module, torch.nn.Conv2d))

    default, xavier, he = first_conv("default"), first_conv("xavier"), first_conv("he")
    assert not torch.equal(default.weight, xavier.weight)
    assert not torch.equal(xavier.weight, he.weight)
    assert torch.count_nonzero(he.bias) == 0 and torch.count_nonzero(xavier.bias) == 0


def test_texture_noise_is_random_in_training_and_fixed_in_eval():
    model = generators.build_generator("texture", generators.make_options("texture", {"scales": 2}))
    image = torch.rand(1, 3, 8, 8)
    assert not torch.equal(model(image), model(image))
    model.eval()
    assert torch.equal(model(image), model(image))
