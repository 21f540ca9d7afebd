// The per-row arithmetic of NextBlock's spectral codec (python/nextblock/features/spectral.py) and
// of the predictor's post-processing (python/nextblock/model/runner.py), fused into a few passes
// so that a live prediction is not ~25 small numpy calls. The FFTs stay in scipy; everything
// between them is here. Header-only, no allocation, float32 in and out; the numpy code it mirrors
// is the reference (tests/test_features_codec_core.py compares the two).
//
// One prediction of one row (context of n samples, output horizon of s samples):
//
//   prelude:  scale = sqrt(mean(x^2)) + rms_floor;  windowed = x * (w / scale);  guess = Burg(x tail)
//   FFT:      X = rfft(windowed), G = rfft(guess)
//   pack:     features[k] = (Re X, Im X, log(|X| + log_floor) / log_divisor, Re, Im of G / (gain_out scale))
//             (the guess's bin k sits at input bin stride k, the other bins' guess channels are 0)
//   (LiteRT)  Y = network(features)
//   FFT:      y = irfft(Y)
//   finish:   y *= scale gain_out;  y += weight (guess - y);  cross-fade from the guess (or pull the
//             start onto the context's linear extrapolation);  a non-finite row becomes zeros
//
// CodecCore runs all of it but the network, with Eigen's FFT (kissfft, header-only): after a sleep a
// live prediction is cold, and every layer of Python and every scipy dispatch it passes through costs
// several times its warm time; one C++ pass before LiteRT and one after keep that footprint small.
#ifndef NEXTBLOCK_CODEC_HPP
#define NEXTBLOCK_CODEC_HPP

#include <cmath>
#include <complex>
#include <cstddef>
#include <mutex>
#include <stdexcept>
#include <vector>

#include <unsupported/Eigen/FFT>

#include "nextblock/lpc.hpp"

namespace nextblock {

/// RMS of `x` (n samples, accumulated in double) plus `rms_floor`; writes x * (scaled_window / scale) into
/// `windowed` (the same float32 operations, in the same order, as the numpy codec). Returns the scale.
inline float codec_prelude_row(const float* x, std::size_t n, const float* scaled_window, float rms_floor,
                               float* windowed) {
  double sum_squares = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum_squares += double(x[i]) * double(x[i]);
  const float scale = float(std::sqrt(sum_squares / double(n))) + rms_floor;
  for (std::size_t i = 0; i < n; ++i) windowed[i] = x[i] * (scaled_window[i] / scale);
  return scale;
}

/// Writes one row of network input: `features` is (bins, channels) float32, channels 3 (no guess)
/// or 5. `spectrum` holds `bins` complex values as (re, im) float pairs; `guess_spectrum` (or
/// nullptr) `guess_bins` pairs, placed at input bins 0, stride, 2 stride, ... and multiplied by
/// `guess_gain`.
inline void codec_pack_row(const float* spectrum, std::size_t bins, const float* guess_spectrum, std::size_t guess_bins,
                           std::size_t stride, float guess_gain, float log_floor, float log_divisor,
                           std::size_t channels, float* features) {
  const float inv_divisor = 1.0f / log_divisor;
  for (std::size_t k = 0; k < bins; ++k) {
    const float re = spectrum[2 * k], im = spectrum[2 * k + 1];
    float* f = features + k * channels;
    f[0] = re;
    f[1] = im;
    f[2] = std::log(std::sqrt(re * re + im * im) + log_floor) * inv_divisor;
    for (std::size_t c = 3; c < channels; ++c) f[c] = 0.0f;
  }
  if (guess_spectrum == nullptr || channels < 5) return;
  for (std::size_t j = 0; j < guess_bins && j * stride < bins; ++j) {
    float* f = features + j * stride * channels;
    f[3] = guess_spectrum[2 * j] * guess_gain;
    f[4] = guess_spectrum[2 * j + 1] * guess_gain;
  }
}

/// Post-processing of one predicted row `y` (s samples, in place): y *= gain; with a guess, y += weight
/// (guess - y) and then the first `ramp_n` samples cross-fade from the guess (y += ramp (guess - y));
/// without one, the offset between the context's one-step linear extrapolation and y[0] is added and
/// faded out over the ramp. `context` holds the row's n >= 2 past samples, newest last. A row with a
/// non-finite sample becomes zeros. Returns false for such a row.
inline bool codec_finish_row(float* y, std::size_t s, float gain, const float* guess, float weight, const float* ramp,
                             std::size_t ramp_n, const float* context, std::size_t n) {
  for (std::size_t i = 0; i < s; ++i) y[i] *= gain;
  if (guess != nullptr && weight != 0.0f)
    for (std::size_t i = 0; i < s; ++i) y[i] += weight * (guess[i] - y[i]);
  if (ramp != nullptr && ramp_n > 0) {
    const std::size_t m = ramp_n < s ? ramp_n : s;
    if (guess != nullptr) {
      for (std::size_t i = 0; i < m; ++i) y[i] += ramp[i] * (guess[i] - y[i]);
    } else if (n >= 2) {
      const float offset = (2.0f * context[n - 1] - context[n - 2]) - y[0];
      for (std::size_t i = 0; i < m; ++i) y[i] += offset * ramp[i];
    }
  }
  float total = 0.0f;
  for (std::size_t i = 0; i < s; ++i) total += y[i] * 0.0f;  // NaN or Inf anywhere -> NaN
  if (total == 0.0f) return true;
  for (std::size_t i = 0; i < s; ++i) y[i] = 0.0f;
  return false;
}

/// What a CodecCore needs to know (python/nextblock/features/config.py and spectral.py).
struct CodecGeometry {
  std::size_t context_samples = 0;  // n
  std::size_t output_samples = 0;   // s (the horizon, outputs_blocks * frames_per_block)
  std::size_t bin_stride = 1;       // input bin of output bin k: stride k
  int lpc_order = 0;                // 0: no guess (3 feature channels), else Burg order (5 channels)
  std::size_t burg_samples = 0;     // the guess is fitted to the context's last burg_samples
  float rms_floor = 1e-5f;
  float log_floor = 1e-3f;
  float log_divisor = 4.0f;
  double silence_mean_square = 1e-12;
  float output_gain = 1.0f;  // s / 2: a predicted peak of a is a sinusoid of amplitude a
};

/// The codec around one network call, for any number of rows: encode() before it, decode() after.
/// Buffers and FFT plans are made in the constructor; encode/decode allocate nothing and are
/// serialised by a mutex (one codec may be shared; the FFT's scratch is not).
class CodecCore {
 public:
  CodecCore(const CodecGeometry& g, const float* scaled_window)
      : g_(g),
        window_(scaled_window, scaled_window + g.context_samples),
        windowed_(g.context_samples),
        spectrum_(g.context_samples / 2 + 1),
        guess_spectrum_(g.output_samples / 2 + 1),
        net_out_(g.output_samples / 2 + 1),
        burg_(g.lpc_order > 0 ? BurgScratch(g.burg_samples, g.lpc_order, int(g.output_samples)) : BurgScratch()) {
    if (g.context_samples < 4 || g.output_samples < 4 || g.bin_stride < 1)
      throw std::invalid_argument("context and output need at least 4 samples and bin_stride >= 1");
    if (g.lpc_order < 0 || (g.lpc_order > 0 && (g.burg_samples <= std::size_t(g.lpc_order) ||
                                                g.burg_samples > g.context_samples || g.lpc_order > 1024)))
      throw std::invalid_argument("need lpc_order < burg_samples <= context_samples and lpc_order <= 1024");
    fft_.SetFlag(Eigen::FFT<float>::HalfSpectrum);
    // plans and twiddles now, not in the first live call
    std::vector<float> scratch(std::max(g.context_samples, g.output_samples), 0.0f);
    fft_.fwd(spectrum_.data(), scratch.data(), Eigen::Index(g.context_samples));
    fft_.fwd(guess_spectrum_.data(), scratch.data(), Eigen::Index(g.output_samples));
    fft_.inv(scratch.data(), net_out_.data(), Eigen::Index(g.output_samples));
  }

  std::size_t input_bins() const { return g_.context_samples / 2 + 1; }
  std::size_t output_bins() const { return g_.output_samples / 2 + 1; }
  std::size_t channels() const { return g_.lpc_order > 0 ? 5 : 3; }
  const CodecGeometry& geometry() const { return g_; }

  /// context (rows, n) -> features (rows, input_bins, channels), scale (rows), guess (rows, s) or
  /// nullptr when lpc_order is 0. A non-finite context gives non-finite features (callers sanitise first).
  void encode(const float* context, std::size_t rows, float* features, float* scale, float* guess) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t n = g_.context_samples, s = g_.output_samples, bins = input_bins(), ch = channels();
    for (std::size_t r = 0; r < rows; ++r) {
      const float* x = context + r * n;
      scale[r] = codec_prelude_row(x, n, window_.data(), g_.rms_floor, windowed_.data());
      fft_.fwd(spectrum_.data(), windowed_.data(), Eigen::Index(n));
      const float* gs = nullptr;
      if (guess != nullptr && g_.lpc_order > 0) {
        float* gr = guess + r * s;
        burg_continue_row(x + (n - g_.burg_samples), g_.burg_samples, g_.lpc_order, g_.silence_mean_square, int(s), gr,
                          burg_);
        fft_.fwd(guess_spectrum_.data(), gr, Eigen::Index(s));
        gs = reinterpret_cast<const float*>(guess_spectrum_.data());
      }
      codec_pack_row(reinterpret_cast<const float*>(spectrum_.data()), bins, gs, output_bins(), g_.bin_stride,
                     (1.0f / g_.output_gain) / scale[r], g_.log_floor, g_.log_divisor, ch, features + r * bins * ch);
    }
  }

  /// The network's output (rows, output_bins, 2) -> the predicted horizon (rows, s) in `out`: irfft,
  /// then codec_finish_row (level, guess blend, join to the context, non-finite rows zeroed).
  /// Returns how many rows were zeroed.
  int decode(const float* net_out, std::size_t rows, const float* scale, const float* guess, float weight,
             const float* ramp, std::size_t ramp_n, const float* context, float* out) {
    std::lock_guard<std::mutex> lock(mutex_);
    const std::size_t n = g_.context_samples, s = g_.output_samples, ob = output_bins();
    int zeroed = 0;
    for (std::size_t r = 0; r < rows; ++r) {
      const float* y = net_out + r * ob * 2;
      for (std::size_t k = 0; k < ob; ++k) net_out_[k] = std::complex<float>(y[2 * k], y[2 * k + 1]);
      float* o = out + r * s;
      fft_.inv(o, net_out_.data(), Eigen::Index(s));
      zeroed += !codec_finish_row(o, s, scale[r] * g_.output_gain, guess ? guess + r * s : nullptr, weight, ramp,
                                  ramp_n, context + r * n, n);
    }
    return zeroed;
  }

 private:
  CodecGeometry g_;
  std::vector<float> window_, windowed_;
  std::vector<std::complex<float>> spectrum_, guess_spectrum_, net_out_;
  BurgScratch burg_;
  Eigen::FFT<float> fft_;
  std::mutex mutex_;
};

}  // namespace nextblock

#endif
