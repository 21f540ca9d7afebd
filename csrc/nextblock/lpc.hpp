// The LPC guess of NextBlock's features (python/nextblock/features/lpc.py): an all-pole model
// fitted to the analysis-windowed context by the autocorrelation method, continued past the
// context's end. Header-only, no allocation after the caller's buffers, double precision inside
// (but for the errors of Burg's later orders, float32: see kBurgDoubleOrders).
//
//   r[k]   = sum_n w[n] w[(n + k) mod N]           circular autocorrelation of the windowed frame
//                                                    (what irfft(|rfft(w)|^2) gives), k = 0..p
//   r[k]  *= lag[k];  r[0] *= 1 + white_noise       lag window, white-noise correction
//   a      = Levinson-Durbin(r)                     A(z) = 1 + a1 z^-1 + ... + ap z^-p
//   y[t]   = -sum_j a_j y[t - j]                    continued from the context's last p samples
//
// burg_continue_row fits the all-pole model with Burg's method instead (to the plain, unwindowed
// history): PARCnet's AR(128) linear predictor, far better than the autocorrelation method at
// high orders on short frames (python/nextblock/features/lpc.py has the measurements).
#ifndef NEXTBLOCK_LPC_HPP
#define NEXTBLOCK_LPC_HPP

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

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

/// The AR recursion y[t] = -sum_{j=1..p} a_j y[t - j] for t in [p, p + n): y[0..p) is the input
/// (four partial sums: no single add chain of `order` terms).
inline void ar_run(const double* a, int order, double* y, std::size_t n) {
  for (std::size_t t = 0; t < n; ++t) {
    double* past = y + order + t;  // past[-j] is y[t - j]; past[0] is written
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    int j = 1;
    for (; j + 3 <= order; j += 4) {
      acc[0] -= a[j] * past[-j];
      acc[1] -= a[j + 1] * past[-j - 1];
      acc[2] -= a[j + 2] * past[-j - 2];
      acc[3] -= a[j + 3] * past[-j - 3];
    }
    for (; j <= order; ++j) acc[0] -= a[j] * past[-j];
    past[0] = (acc[0] + acc[1]) + (acc[2] + acc[3]);
  }
}

/// Doubles of scratch that lpc_continue_row needs.
inline std::size_t lpc_work_doubles(std::size_t n, int order, int n_out) {
  return 3 * std::size_t(order + 1) + std::size_t(order) + std::size_t(n_out) + n + std::size_t(order);
}

/// The continuation of one context row. `lag` has order + 1 weights; `work` holds
/// lpc_work_doubles(n, order, n_out) doubles. Writes n_out samples to `out` (zeros for a frame
/// whose windowed energy r[0] is not above `silence_energy`).
inline void lpc_continue_row(const float* context, const float* windowed, std::size_t n, int order, const double* lag,
                             double white_noise, double silence_energy, int n_out, float* out, double* work) {
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
  ar_run(a, order, y, std::size_t(n_out));
  for (int t = 0; t < n_out; ++t) out[t] = static_cast<float>(y[order + t]);
}

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__) && defined(__linux__)
// The lattice update below is ~3 n·order multiply-adds; AVX-512 / AVX2 run it 8 / 4 doubles at a time (chosen at
// load time, the default clone runs everywhere).
#define NEXTBLOCK_VECTOR_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), optimize("O3")))
#else
#define NEXTBLOCK_VECTOR_CLONES
#endif

/// Continue `past` (the AR model's input, `order` doubles in y[0..order)) by n_out samples into
/// y[order..order + n_out) and `out`: y[t] = -sum_j a_j y[t - j], four partial sums per sample.
NEXTBLOCK_VECTOR_CLONES
static void ar_extrapolate_into(const double* a, int order, int n_out, double* y, float* out) {
  // reversed coefficients r[k] = a[order - k], so that sample t is sum_k r[k] * y[t + k] over a
  // contiguous window: 16 independent partial sums, vectorisable
  constexpr int kLanes = 16;
  double reversed[1024];
  const int n = order < 1024 ? order : 1024;
  for (int k = 0; k < n; ++k) reversed[k] = a[n - k];
  for (int t = 0; t < n_out; ++t) {
    const double* window = y + t;  // y[t .. t + order) are the order samples before the new one
    double partial[kLanes] = {};
    int k = 0;
    for (; k + kLanes <= n; k += kLanes)
      for (int l = 0; l < kLanes; ++l) partial[l] -= reversed[k + l] * window[k + l];
    for (; k < n; ++k) partial[0] -= reversed[k] * window[k];
    double next = 0.0;
    for (int l = 0; l < kLanes; ++l) next += partial[l];
    y[order + t] = next;
    out[t] = static_cast<float>(next);
  }
}

/// One order of Burg's lattice in double precision: `len` forward errors fk[0..len) against backward
/// errors b[0..len); updates both in place with reflection coefficient mu and returns sum fk[i] b[i]
/// over the *updated* pairs shifted by one (fk[i + 1] b[i], i < len - 1): the next order's numerator.
NEXTBLOCK_VECTOR_CLONES
static double burg_lattice_step_double(double* __restrict fk, double* __restrict b, std::size_t len, double mu) {
  for (std::size_t m = 0; m < len; ++m) {
    const double fm = fk[m], bm = b[m];
    fk[m] = fm + mu * bm;
    b[m] = bm + mu * fm;
  }
  // 16 independent partial sums: several vector accumulators in flight, not one add chain
  constexpr std::size_t kLanes = 16;
  double partial[kLanes] = {};
  const std::size_t next = len - 1;
  std::size_t i = 0;
  for (; i + kLanes <= next; i += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) partial[l] += fk[i + 1 + l] * b[i + l];
  for (; i < next; ++i) partial[0] += fk[i + 1] * b[i];
  double sum = 0.0;
  for (std::size_t l = 0; l < kLanes; ++l) sum += partial[l];
  return sum;
}

/// One order of Burg's lattice on float32 errors kept so that both arrays start 64-byte aligned at
/// every order: fwd[i] = f[k + 1 + i] and bwd[i] = b[i], i < len (the layout burg_lattice_step_double
/// gets by moving its fk pointer, which misaligns every vector store). One pass updates them into the
/// next order's layout (fwd[i] = f'[k + 2 + i], i < len - 1; bwd[i] = b'[i], i < len), sums the next
/// numerator sum_{i < len - 1} fwd[i] bwd[i] on the way and returns it; `f_first` gets f'[k + 1],
/// which the new layout drops. The loop is bound by its loads and stores, not its multiply-adds:
/// float32 has twice the lanes of double for the same traffic, and aligned stores never split a
/// cache line (order 256 on 1024 samples all in this step: 38 µs, against 70 in double; moving
/// the pointer instead, as the double step does: 46).
NEXTBLOCK_VECTOR_CLONES
static double burg_lattice_step(float* __restrict fwd, float* __restrict bwd, std::size_t len, float mu,
                                double* f_first) {
  *f_first = double(fwd[0] + mu * bwd[0]);
  constexpr std::size_t kLanes = 16;
  float partial[kLanes] = {};
  const std::size_t next = len - 1;
  std::size_t i = 0;
  for (; i + kLanes <= next; i += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) {
      const float f0 = fwd[i + l], f1 = fwd[i + l + 1], b0 = bwd[i + l], b1 = bwd[i + l + 1];
      const float fn = f1 + mu * b1, bn = b0 + mu * f0;
      fwd[i + l] = fn;
      bwd[i + l] = bn;
      partial[l] += fn * bn;
    }
  for (; i < next; ++i) {
    const float f0 = fwd[i], f1 = fwd[i + 1], b0 = bwd[i], b1 = bwd[i + 1];
    const float fn = f1 + mu * b1, bn = b0 + mu * f0;
    fwd[i] = fn;
    bwd[i] = bn;
    partial[0] += fn * bn;
  }
  bwd[next] = bwd[next] + mu * fwd[next];
  double sum = 0.0;
  for (std::size_t l = 0; l < kLanes; ++l) sum += double(partial[l]);
  return sum;
}

/// Orders of Burg's lattice run in double before its errors go on in float32 (burg_coefficients).
/// The first orders are where the errors fall far below the signal (|mu| near 1 on predictable
/// sound): float32 there costs the guess 0.13-0.19 dB (AR(256) / AR(320) on 1024 samples, the
/// validation contexts of docs/notes/model.md); 16 or 32 double orders and float32 after give the
/// all-double guess to 0.01 dB (tests/test_features_spectral.py pins it), 1.5x faster at order 384.
constexpr int kBurgDoubleOrders = 32;
static_assert(kBurgDoubleOrders >= 1, "burg_coefficients fills the float32 errors from the double ones");

/// Burg's method (Collomb's formulation): a[0] = 1, a[1..order] of the all-pole model of x[0..n).
/// `errors` holds 2 n doubles; `fwd32` and `bwd32` n floats each, 64-byte aligned (the forward and
/// backward errors). The first orders run in double, the rest in float32 (see burg_lattice_step and
/// kBurgDoubleOrders). When the prediction error vanishes first (a noiseless sum of a few sinusoids
/// is predicted exactly at a low order) the model stops at the order reached (higher coefficients
/// 0), which is still stable. Returns false only for a silent input (a = [1, 0, ...]).
inline bool burg_coefficients(const float* x, std::size_t n, int order, double* a, double* errors, float* fwd32,
                              float* bwd32) {
  double* f = errors;
  double* b = errors + n;
  double dk = 0.0, num = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    f[i] = b[i] = double(x[i]);
    dk += 2.0 * f[i] * f[i];
  }
  for (std::size_t i = 0; i + 1 < n; ++i) num += f[i + 1] * b[i];
  dk -= f[0] * f[0] + f[n - 1] * f[n - 1];
  a[0] = 1.0;
  for (int k = 1; k <= order; ++k) a[k] = 0.0;
  if (!(dk > 0.0)) return false;
  const double tiny = 1e-12 * dk;  // below this the error is round-off: the model is complete
  const int double_orders = std::min(order, kBurgDoubleOrders);
  for (int k = 0; k < order; ++k) {
    if (!(dk > tiny)) break;
    const std::size_t len = n - std::size_t(k) - 1;  // f[k + 1 .. n) against b[0 .. len)
    const double mu = -2.0 * num / dk;
    if (!(mu > -1.0 && mu < 1.0)) break;  // |mu| < 1 keeps A(z) minimum-phase
    for (int j = 0; j <= (k + 1) / 2; ++j) {
      const double t1 = a[j] + mu * a[k + 1 - j];
      const double t2 = a[k + 1 - j] + mu * a[j];
      a[j] = t1;
      a[k + 1 - j] = t2;
    }
    double fk0, bl;
    if (k < double_orders) {
      double* fk = f + k + 1;
      num = burg_lattice_step_double(fk, b, len, mu);
      fk0 = fk[0];
      bl = b[len - 1];
      if (k + 1 == double_orders && double_orders < order) {                    // the errors go on in float32
        for (std::size_t i = 0; i + 1 < len; ++i) fwd32[i] = float(fk[i + 1]);  // f[k + 2 + i]
        for (std::size_t i = 0; i + 1 < len; ++i) bwd32[i] = float(b[i]);
      }
    } else {
      num = burg_lattice_step(fwd32, bwd32, len, float(mu), &fk0);
      bl = bwd32[len - 1];
    }
    dk = (1.0 - mu * mu) * dk - fk0 * fk0 - bl * bl;
  }
  return true;
}

/// Scratch of burg_continue_row for histories of n samples, made once (at configuration): the
/// audio path then allocates nothing.
struct BurgScratch {
  static constexpr std::size_t kAlignFloats = 16;  // 64 bytes
  std::vector<double> errors;                      // 2 n: the lattice's forward and backward errors (double orders)
  std::size_t stride32 = 0;     // floats from the forward to the backward float32 array (n rounded up)
  std::vector<float> errors32;  // the same errors in float32 (the later orders): two aligned arrays
  std::vector<double> model;    // order + 1 coefficients, then order past and n_out predicted samples
  BurgScratch() = default;
  BurgScratch(std::size_t n, int order, int n_out)
      : errors(2 * n),
        stride32((n + kAlignFloats - 1) / kAlignFloats * kAlignFloats),
        errors32(2 * stride32 + kAlignFloats),
        model(std::size_t(order + 1) + std::size_t(order) + std::size_t(n_out)) {}
  /// The float32 forward errors (64-byte aligned; the backward ones follow stride32 floats on).
  float* fwd32() {
    const auto address = reinterpret_cast<std::uintptr_t>(errors32.data());
    const std::size_t skip = (64 - address % 64) % 64 / sizeof(float);
    return errors32.data() + skip;
  }
};

/// The Burg continuation of one history row of n samples (n > order): n_out samples into `out`;
/// zeros when the history's mean square is not above `silence_mean_square` or the fit breaks down.
/// `scratch` was made as BurgScratch(n, order, n_out) (or larger).
inline void burg_continue_row(const float* history, std::size_t n, int order, double silence_mean_square, int n_out,
                              float* out, BurgScratch& scratch) {
  double* a = scratch.model.data();
  double* y = a + (order + 1);
  double energy = 0.0;
  for (std::size_t i = 0; i < n; ++i) energy += double(history[i]) * double(history[i]);
  float* fwd32 = scratch.fwd32();
  if (!(energy / double(n) > silence_mean_square) ||
      !burg_coefficients(history, n, order, a, scratch.errors.data(), fwd32, fwd32 + scratch.stride32)) {
    for (int t = 0; t < n_out; ++t) out[t] = 0.0f;
    return;
  }
  for (int j = 0; j < order; ++j) y[j] = double(history[n - order + j]);
  ar_extrapolate_into(a, order, n_out, y, out);
}

}  // namespace nextblock

#endif
