// The LPC guess of NextBlock's features (python/nextblock/features/lpc.py): an all-pole model
// fitted to the analysis-windowed context by the autocorrelation method, continued past the
// context's end. Header-only, no allocation after the caller's buffers, double precision inside.
//
//   r[k]   = sum_n w[n] w[(n + k) mod N]           circular autocorrelation of the windowed frame
//                                                    (what irfft(|rfft(w)|^2) gives), k = 0..p
//   r[k]  *= lag[k];  r[0] *= 1 + white_noise       lag window, white-noise correction
//   a      = Levinson-Durbin(r)                     A(z) = 1 + a1 z^-1 + ... + ap z^-p
//   y[t]   = -sum_j a_j y[t - j]                    continued from the context's last p samples
#ifndef NEXTBLOCK_LPC_HPP
#define NEXTBLOCK_LPC_HPP

#include <cstddef>

namespace nextblock {

/// Circular autocorrelation lags 0..order of `windowed` (n samples) into `r` (order + 1).
/// `extended` holds n + order doubles (the frame followed by its first `order` samples), so the
/// inner loop over lags runs on contiguous memory with one accumulator per lag (vectorisable,
/// no loop-carried dependency).
inline void circular_autocorrelation(const float* windowed, std::size_t n, int order, double* r, double* extended) {
  for (std::size_t i = 0; i < n; ++i) extended[i] = double(windowed[i]);
  for (int k = 0; k < order; ++k) extended[n + k] = extended[k];
  for (int k = 0; k <= order; ++k) r[k] = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    const double wi = extended[i];
    const double* ahead = extended + i;
    for (int k = 0; k <= order; ++k) r[k] += wi * ahead[k];
  }
}

/// Levinson-Durbin: a[0] = 1, a[1..order] from autocorrelation r[0..order]; `scratch` holds
/// order + 1 doubles. Returns false (a = [1, 0, ...]) when the recursion meets a non-positive
/// prediction error (a degenerate frame).
inline bool levinson_durbin(const double* r, int order, double* a, double* scratch) {
  a[0] = 1.0;
  for (int i = 1; i <= order; ++i) a[i] = 0.0;
  double error = r[0];
  for (int i = 1; i <= order; ++i) {
    if (!(error > 0.0)) {
      for (int j = 1; j <= order; ++j) a[j] = 0.0;
      return false;
    }
    double acc = r[i];
    for (int j = 1; j < i; ++j) acc += a[j] * r[i - j];
    const double k = -acc / error;
    for (int j = 0; j <= i; ++j) scratch[j] = a[j];
    for (int j = 1; j < i; ++j) a[j] = scratch[j] + k * scratch[i - j];
    a[i] = k;
    error *= (1.0 - k * k);
  }
  return true;
}

/// Doubles of scratch that lpc_continue_row needs.
inline std::size_t lpc_work_doubles(std::size_t n, int order, int n_out) {
  return 3 * std::size_t(order + 1) + std::size_t(order) + std::size_t(n_out) + n + std::size_t(order);
}

/// The continuation of one context row. `lag` has order + 1 weights; `work` holds
/// lpc_work_doubles(n, order, n_out) doubles. Writes n_out samples to `out` (zeros for a frame
/// whose windowed energy r[0] is not above `silence_energy`).
inline void lpc_continue_row(const float* context, const float* windowed, std::size_t n, int order,
                             const double* lag, double white_noise, double silence_energy, int n_out, float* out,
                             double* work) {
  double* r = work;
  double* a = r + (order + 1);
  double* scratch = a + (order + 1);
  double* y = scratch + (order + 1);  // order past samples, then n_out predicted ones
  double* extended = y + order + n_out;
  circular_autocorrelation(windowed, n, order, r, extended);
  for (int k = 0; k <= order; ++k) r[k] *= lag[k];
  if (!(r[0] > silence_energy)) {
    for (int t = 0; t < n_out; ++t) out[t] = 0.0f;
    return;
  }
  r[0] *= 1.0 + white_noise;
  levinson_durbin(r, order, a, scratch);
  for (int j = 0; j < order; ++j) y[j] = double(context[n - order + j]);
  for (int t = 0; t < n_out; ++t) {
    const double* past = y + order + t;  // past[-j] is y[t - j]
    double acc[4] = {0.0, 0.0, 0.0, 0.0};  // four partial sums: no single add chain of `order` terms
    int j = 1;
    for (; j + 3 <= order; j += 4) {
      acc[0] -= a[j] * past[-j];
      acc[1] -= a[j + 1] * past[-j - 1];
      acc[2] -= a[j + 2] * past[-j - 2];
      acc[3] -= a[j + 3] * past[-j - 3];
    }
    for (; j <= order; ++j) acc[0] -= a[j] * past[-j];
    const double next = (acc[0] + acc[1]) + (acc[2] + acc[3]);
    y[order + t] = next;
    out[t] = static_cast<float>(next);
  }
}

}  // namespace nextblock

#endif
