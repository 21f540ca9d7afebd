"""The NextBlock network: a 1D CNN over frequency bins with a "deep filter" head (Keras).

Shapes (defaults: 1024-sample context, 2 × 128-sample output):

* input  ``features``  ``(batch, input_bins=513, 3 or 5)`` – see :mod:`nextblock.features.spectral`
* output ``spectrum``  ``(batch, output_bins=129, 2)`` – real/imag FFT of the next 256 samples

Layout::

    features ─ Conv1D(width, 2·stride, strides=stride) ─ [residual block] × depth ─┬─ Conv1D(2·taps, 1) = H ─┐
        │                                                                         └─ Conv1D(2, 3) = direct  │
        └─ (re, im) ─ patches of `taps` input bins around bin stride·k ─────────── Σ H·patch (complex) ─────┴─ + ─ spectrum

With an LPC guess in the features (``lpc_order > 0``, channels 3-4 at input bins ``stride·k``),
a third head predicts a complex gain per output bin for that guess and adds ``gain · guess``:
the network then only has to correct a linear predictor that already continues every partial
and the noise floor at their level (PARCnet's idea; the gain starts at 1).

The input's bin ``stride·k`` and the output's bin ``k`` are the same frequency, so everything is
equivariant to shifts in frequency and a convolution over bins fits. The *deep filter* head
predicts, for every output bin, complex weights applied to the neighbouring input bins – a
learned, signal-adaptive linear predictor in the frequency domain (a stationary partial's
continuation is its spectrum times a phase advance that depends on where the partial lies
between bins). The ``direct`` head adds whatever is not a filtered copy of the context
(onsets, noise shaping).

A residual block is a depthwise convolution over bins followed by a pointwise
convolution (ReLU), added to its input: cheap (≈ ``width²`` MACs per bin) yet with a receptive
field that grows by ``kernel_bins - 1`` output bins per block.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from ..features.config import FeatureConfig
from ..features.spectral import FEATURE_CHANNELS, SpectralCodec


@dataclasses.dataclass(frozen=True)
class ArchitectureConfig:
    """Hyper-parameters of :func:`build_model`.

    Attributes
    ----------
    width:
        Channels of the trunk.
    blocks:
        Number of residual blocks.
    kernel_bins:
        Kernel size (in output bins) of the depthwise convolutions.
    filter_taps:
        Input bins each output bin's deep filter spans (odd; centred on bin ``stride·k``).
    """

    width: int = 32
    blocks: int = 4
    kernel_bins: int = 9
    filter_taps: int = 9

    def __post_init__(self) -> None:
        if self.width <= 0 or self.kernel_bins <= 0 or self.blocks <= 0:
            raise ValueError("width, kernel_bins and blocks must be positive")
        if self.filter_taps <= 0 or self.filter_taps % 2 == 0:
            raise ValueError(f"filter_taps must be a positive odd number, got {self.filter_taps}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-JSON form."""
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> ArchitectureConfig:
        """Inverse of :meth:`to_dict` (unknown keys ignored)."""
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: int(v) for k, v in values.items() if k in names})


def _patch_kernel(filter_taps: int) -> np.ndarray:
    """Fixed Conv1D kernel that copies ``filter_taps`` neighbouring bins of (re, im) into channels.

    Returns shape ``(filter_taps, 2, 2 * filter_taps)``: output channel ``t`` is the real part at
    tap ``t``, channel ``filter_taps + t`` the imaginary part.
    """
    kernel = np.zeros((filter_taps, 2, 2 * filter_taps), np.float32)
    for t in range(filter_taps):
        kernel[t, 0, t] = 1.0
        kernel[t, 1, filter_taps + t] = 1.0
    return kernel


def _tap_depthwise_class():
    """``DepthwiseConv2D`` over bins computed as a sum of shifted, scaled copies (same weights)."""
    from keras import layers, ops

    class DepthwiseConv2D(layers.DepthwiseConv2D):
        """A ``(1, k)`` depthwise convolution, ``padding="same"``, as ``k`` shifted multiply-adds.

        Same variables and output as Keras' ``DepthwiseConv2D``, and the same class name: Keras
        keys saved weights by it, so weights load either way. XLA compiles a grouped convolution
        of this shape badly (on the CPU, 27 ms against 3 ms per batch of 256 at 129 bins ×
        32 channels), the multiply-adds well.
        """

        def call(self, inputs):
            taps = self.kernel_size[1]
            half = taps // 2
            bins = inputs.shape[2]
            padded = ops.pad(inputs, ((0, 0), (0, 0), (half, taps - 1 - half), (0, 0)))
            out = padded[:, :, 0:bins, :] * self.kernel[0, 0, :, 0]
            for i in range(1, taps):
                out = out + padded[:, :, i : i + bins, :] * self.kernel[0, i, :, 0]
            return out + self.bias if self.use_bias else out

    return DepthwiseConv2D


def build_model(features: FeatureConfig, arch: ArchitectureConfig | None = None, depthwise_taps: bool = False):
    """Build the Keras model (uncompiled).

    Returns a ``keras.Model`` mapping ``(batch, input_bins, channels)`` float32 features
    (``channels`` = 3, or 5 with an LPC guess) to the
    ``(batch, output_bins, 2)`` float32 predicted spectrum. Imports Keras lazily so the runtime
    side of the package never needs TensorFlow. ``depthwise_taps``: the depthwise convolutions as
    shifted multiply-adds (for training under XLA, :mod:`nextblock.train_jax`; same weights and
    output; export builds the plain model, which LiteRT runs as DEPTHWISE_CONV_2D).
    """
    import keras
    from keras import layers

    arch = arch or ArchitectureConfig()
    depthwise = _tap_depthwise_class() if depthwise_taps else layers.DepthwiseConv2D
    stride = features.bin_stride
    taps = arch.filter_taps
    inputs = keras.Input((features.input_bins, SpectralCodec(features).feature_channels), name="features")
    # Work on (1, bins, channels) images with (1, k) kernels: LiteRT runs CONV_2D natively,
    # whereas Conv1D adds an EXPAND_DIMS/RESHAPE pair around every layer.
    # (EXPAND_DIMS, not Reshape: Reshape's dynamic batch costs extra SHAPE/PACK ops in LiteRT)
    image = layers.Lambda(lambda t: keras.ops.expand_dims(t, 1), name="as_image")(inputs)

    # trunk: bins -> output resolution, then residual blocks
    x = layers.Conv2D(arch.width, (1, 2 * stride), strides=(1, stride), padding="same", name="downsample")(image)
    x = layers.ReLU()(x)
    for i in range(arch.blocks):
        y = depthwise((1, arch.kernel_bins), padding="same", name=f"block{i}_depthwise")(x)
        y = layers.Conv2D(arch.width, 1, name=f"block{i}_pointwise")(y)
        y = layers.ReLU()(y)
        x = layers.Add(name=f"block{i}_add")([x, y])

    # deep-filter head: complex weights H for `taps` input bins around bin stride*k
    weights = layers.Conv2D(2 * taps, 1, kernel_initializer="zeros", name="filter_weights")(x)
    reim = layers.Lambda(lambda t: t[..., :2], name="input_spectrum")(image)
    half = taps // 2
    reim = layers.ZeroPadding2D(((0, 0), (half, half)), name="pad_bins")(reim)
    patches = layers.Conv2D(
        2 * taps,
        (1, taps),
        strides=(1, stride),
        padding="valid",
        use_bias=False,
        trainable=False,
        kernel_initializer=keras.initializers.Constant(_patch_kernel(taps)[None]),
        name="patches",
    )(reim)

    def complex_product(h_re, h_im, p_re, p_im):
        return h_re * p_re - h_im * p_im, h_re * p_im + h_im * p_re

    def complex_filter(args):
        h, p = args
        h_re, h_im = h[..., :taps], h[..., taps:]
        p_re, p_im = p[..., :taps], p[..., taps:]
        out_re, out_im = complex_product(h_re, h_im, p_re, p_im)
        out_re = keras.ops.sum(out_re, axis=-1, keepdims=True)
        out_im = keras.ops.sum(out_im, axis=-1, keepdims=True)
        return keras.ops.concatenate([out_re, out_im], axis=-1)

    filtered = layers.Lambda(complex_filter, name="deep_filter")([weights, patches])
    direct = layers.Conv2D(2, (1, 3), padding="same", kernel_initializer="zeros", name="direct")(x)
    terms = [filtered, direct]
    if features.lpc_order > 0:
        # the LPC guess sits on the output grid (every stride-th input bin) in channels 3-4
        guess = layers.Lambda(lambda t: t[:, :, ::stride, FEATURE_CHANNELS:], name="lpc_guess")(image)
        gain = layers.Conv2D(
            2,
            (1, 3),
            padding="same",
            kernel_initializer="zeros",
            bias_initializer=keras.initializers.Constant([1.0, 0.0]),
            name="lpc_gain",
        )(x)

        def apply_gain(args):
            g, p = args
            out_re, out_im = complex_product(g[..., :1], g[..., 1:], p[..., :1], p[..., 1:])
            return keras.ops.concatenate([out_re, out_im], axis=-1)

        terms.append(layers.Lambda(apply_gain, name="gained_lpc_guess")([gain, guess]))
    spectrum = layers.Add(name="spectrum_image")(terms)
    spectrum = layers.Lambda(lambda t: keras.ops.squeeze(t, 1), name="spectrum")(spectrum)
    return keras.Model(inputs, spectrum, name="nextblock")


def count_macs(model) -> int:
    """Multiply-accumulates of one forward pass for one channel (convolutions and the filter head)."""
    macs = 0
    for layer in model.layers:
        kind = type(layer).__name__
        if kind in ("Conv2D", "DepthwiseConv2D"):
            out_shape = layer.output.shape  # (batch, 1, bins, channels)
            positions = int(out_shape[1]) * int(out_shape[2])
            kernel = layer.kernel.shape  # conv: (kh, kw, in, out); depthwise: (kh, kw, in, mult)
            per_position = int(np.prod(kernel))
            macs += positions * per_position
        elif kind == "Lambda" and layer.name == "deep_filter":
            out_shape = layer.output.shape
            macs += int(out_shape[2]) * 4 * (int(layer.input[0].shape[-1]) // 2)
    return macs
