// The two-sided fill of a gap: samples missing between a known past and a known future (the
// packet after a loss is already in JackTrip's buffer when the lost one is due).
//
// Least-squares AR interpolation (LSAR; Janssen, Veldhuis & Vries 1986; Godsill & Rayner,
// "Digital Audio Restoration", ch. 5): an all-pole model A(z) = 1 + a1 z^-1 + ... + ap z^-p is
// fitted by Burg's method to the past, and the G missing samples x_u are the ones that make the
// model's prediction error smallest on both sides of the gap:
//
//   s      = [ past (last p samples) | x_u (G unknowns) | future (F samples) ]
//   e[t]   = sum_j a_j s[t - j],   t over the G + F samples from the gap's start on
//   x_u    = argmin  sum_t e[t]^2  +  sum_i lambda_i (x_u[i] - prior[i])^2
//
// The second term is optional: with a prior (NextBlock's causal prediction of the gap) the fill
// is the MAP estimate under an AR(p) model with residual variance sigma_e^2 and a prior whose error
// variance is rho times the signal's: lambda = (sigma_e^2 / var) / rho = prior_weight * r, where r
// is the model's relative residual on the past (small on tonal sound, where the AR model is the
// better judge; near 1 on noise, where the prior's level and colour are); lambda_i fades by
// prior_fade towards the gap's end (a causal prediction is best right after the past). The normal equations
//
//   (A_u^T A_u + lambda I) x_u = -A_u^T A_k x_k + lambda prior
//
// are banded (bandwidth p) and symmetric positive definite: a banded Cholesky, G p^2 / 2
// multiply-adds (G = 128, p = 128: ~1 M), solves them. A_u^T A_u needs no matrix product: entry
// (i, k), i <= k, is sum_{s = 0}^{S} a_s a_{s + k - i} with S = min(p - (k - i), G + F - 1 - k).
//
// Guard (the fill must not be louder than the sound around it): a fill whose mean square exceeds
// kGuardRatio times the louder neighbour (the last G samples of the past, the future) is replaced
// by a blend — the forward guess (the prior, else the AR continuation of the past) cross-faded by a
// raised cosine into the AR model run backwards from the future — and a blend that fails the same
// test by the forward guess alone. GapFill says which path made the fill.
//
// Header-only; LsarScratch holds every buffer, so lsar_fill_row allocates nothing (live use).
#ifndef NEXTBLOCK_LSAR_HPP
#define NEXTBLOCK_LSAR_HPP

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "nextblock/lpc.hpp"

namespace nextblock {

/// Which path made a two-sided fill (lsar_fill_row's result).
enum class GapFill : std::int8_t {
  Interpolated = 0,  ///< least-squares AR interpolation (with the prior, if one was given)
  Blended = 1,       ///< the guard refused it: forward guess faded into the backward AR extrapolation
  Forward = 2,       ///< the guard refused the blend too: the forward guess (the prior, else Burg's continuation)
  Silent = 3,        ///< past and future silent: zeros
};

/// A fill louder than this times the louder neighbour's mean square is refused (the guard).
constexpr double kGuardRatio = 2.0;
/// Added to the normal equations' diagonal, relative to its largest entry: keeps a gap between a
/// noiseless past and future (an exactly predictable tone) solvable.
constexpr double kRidge = 1e-15;

/// Buffers of lsar_fill_row for one configuration, made once.
struct LsarScratch {
  int order = 0;
  std::size_t fit_samples = 0, max_gap = 0, max_future = 0;
  BurgScratch burg;            // Burg's fit on the past (its model vector holds the coefficients)
  std::vector<double> seg;     // p past, G gap, F future, p more (the backward extrapolation's extension)
  std::vector<double> normal;  // G x G normal equations, then their Cholesky factor (lower, in place)
  std::vector<double> lagged;  // (p + 1) x (p + 1): lagged[d (p + 1) + S] = sum_{s <= S} a_s a_{s + d}
  std::vector<double> rhs;     // G
  std::vector<double> rev_a;   // p + 1: the coefficients reversed, rev_a[k] = a[p - k]
  std::vector<double> tail;    // 256 + p: the past's last samples in double (the residual estimate)
  std::vector<double> known;   // G + F: the prediction error with the unknowns set to zero
  std::vector<double> forward, backward;  // G each: the blend's two sides
  std::vector<double> reversed;           // p + G: the backward run, time reversed
  std::vector<float> out32;               // scratch for ar_extrapolate_into's float output
  LsarScratch() = default;
  LsarScratch(std::size_t fit_samples_, int order_, std::size_t max_gap_, std::size_t max_future_)
      : order(order_),
        fit_samples(fit_samples_),
        max_gap(max_gap_),
        max_future(max_future_),
        burg(fit_samples_, order_, 1),
        seg(2 * std::size_t(order_) + max_gap_ + max_future_),
        normal(max_gap_ * max_gap_),
        lagged(std::size_t(order_ + 1) * std::size_t(order_ + 1)),
        rhs(max_gap_),
        rev_a(std::size_t(order_) + 1),
        tail(256 + std::size_t(order_)),
        known(max_gap_ + max_future_),
        forward(max_gap_),
        backward(max_gap_),
        reversed(std::size_t(order_) + max_gap_ + std::size_t(order_)),
        out32(max_gap_ + std::size_t(order_) + max_future_) {}
};

inline double mean_square(const float* x, std::size_t n) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += double(x[i]) * double(x[i]);
  return n ? sum / double(n) : 0.0;
}

inline double mean_square(const double* x, std::size_t n) {
  double sum = 0.0;
  for (std::size_t i = 0; i < n; ++i) sum += x[i] * x[i];
  return n ? sum / double(n) : 0.0;
}

/// The AR recursion y[t] = -sum_{j=1..p} a_j y[t - j] for t in [p, p + n): y[0..p) is the input.
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

/// sum_{k < n} x[k] y[k] with four independent partial sums (no single add chain; inlined: the
/// Cholesky below calls it G^2 / 2 times on short rows, where a call through target_clones'
/// dispatcher and a 16-lane remainder cost more than the arithmetic).
inline double dot_lanes(const double* __restrict x, const double* __restrict y, std::size_t n) {
  double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0;
  std::size_t k = 0;
  for (; k + 4 <= n; k += 4) {
    s0 += x[k] * y[k];
    s1 += x[k + 1] * y[k + 1];
    s2 += x[k + 2] * y[k + 2];
    s3 += x[k + 3] * y[k + 3];
  }
  for (; k < n; ++k) s0 += x[k] * y[k];
  return (s0 + s1) + (s2 + s3);
}

/// In-place banded Cholesky of the n x n symmetric matrix m (row-major, lower triangle used) with
/// bandwidth bw: m = L L^T, L in the lower triangle. Returns false if m is not positive definite.
inline bool banded_cholesky(double* m, std::size_t n, std::size_t bw) {
  for (std::size_t j = 0; j < n; ++j) {
    const std::size_t k0 = j > bw ? j - bw : 0;
    const double d = m[j * n + j] - dot_lanes(m + j * n + k0, m + j * n + k0, j - k0);
    if (!(d > 0.0)) return false;
    const double ljj = std::sqrt(d);
    m[j * n + j] = ljj;
    const std::size_t i_end = std::min(n, j + bw + 1);
    for (std::size_t i = j + 1; i < i_end; ++i) {
      const std::size_t ki = i > bw ? i - bw : 0;
      const std::size_t k1 = std::max(ki, k0);
      m[i * n + j] = (m[i * n + j] - dot_lanes(m + i * n + k1, m + j * n + k1, j - k1)) / ljj;
    }
  }
  return true;
}

/// Solve L L^T x = b in place (b becomes x) for the banded factor banded_cholesky left in m.
inline void banded_cholesky_solve(const double* m, std::size_t n, std::size_t bw, double* b) {
  for (std::size_t i = 0; i < n; ++i) {
    const std::size_t k0 = i > bw ? i - bw : 0;
    b[i] = (b[i] - dot_lanes(m + i * n + k0, b + k0, i - k0)) / m[i * n + i];
  }
  for (std::size_t ii = n; ii-- > 0;) {
    const std::size_t k_end = std::min(n, ii + bw + 1);
    double s = b[ii];
    for (std::size_t k = ii + 1; k < k_end; ++k) s -= m[k * n + ii] * b[k];
    b[ii] = s / m[ii * n + ii];
  }
}

/// Fill the `gap` samples between `past` (n_past samples, newest last) and `future` (n_future
/// samples right after the gap) into `out`; see the file comment. `prior` (gap samples) may be
/// null; `prior_weight` scales its weight (0: plain LSAR), `prior_fade` (0..1) how much of it fades out
/// towards the gap's end. The model is Burg's of `scratch.order`
/// on the last scratch.fit_samples of the past (n_past >= fit_samples > order). Requires
/// 1 <= gap <= scratch.max_gap and 1 <= n_future <= scratch.max_future.
inline GapFill lsar_fill_row(const float* past, std::size_t n_past, const float* future, std::size_t n_future,
                             std::size_t gap, const float* prior, double prior_weight, double prior_fade,
                             double silence_mean_square, float* out, LsarScratch& scratch) {
  const int p = scratch.order;
  const std::size_t P = std::size_t(p), G = gap, F = n_future;
  const float* fit = past + (n_past - scratch.fit_samples);
  const std::size_t before_n = std::min(G, n_past);
  const double ms_before = mean_square(past + (n_past - before_n), before_n);
  const double ms_after = mean_square(future, F);
  const double ms_fit = mean_square(fit, scratch.fit_samples);
  if (!(ms_fit > silence_mean_square) && !(ms_after > silence_mean_square)) {
    for (std::size_t i = 0; i < G; ++i) out[i] = 0.0f;
    return GapFill::Silent;
  }
  const double limit = kGuardRatio * std::max(ms_before, ms_after);
  double* a = scratch.burg.model.data();
  float* fwd32 = scratch.burg.fwd32();
  const bool fitted = ms_fit > silence_mean_square &&
                      burg_coefficients(fit, scratch.fit_samples, p, a, scratch.burg.errors.data(), fwd32,
                                        fwd32 + scratch.burg.stride32);
  double* seg = scratch.seg.data();  // [p past | G gap | F future | p extension]
  for (std::size_t j = 0; j < P; ++j) seg[j] = double(past[n_past - P + j]);
  for (std::size_t i = 0; i < F; ++i) seg[P + G + i] = double(future[i]);
  double* fwd = scratch.forward.data();
  // the forward guess: the prior, else the AR model continued from the past
  if (prior != nullptr) {
    for (std::size_t i = 0; i < G; ++i) fwd[i] = double(prior[i]);
  } else if (fitted) {
    ar_run(a, p, seg, G);
    for (std::size_t i = 0; i < G; ++i) fwd[i] = seg[P + i];
  } else {
    for (std::size_t i = 0; i < G; ++i) fwd[i] = 0.0;
  }
  if (fitted) {
    for (std::size_t k = 0; k <= P; ++k) scratch.rev_a[k] = a[P - k];
    // relative residual of the model on the past's last samples: lambda = prior_weight * r
    double lambda = 0.0;
    if (prior != nullptr && prior_weight > 0.0) {
      const std::size_t m = std::min<std::size_t>(256, scratch.fit_samples - P);
      double* tail = scratch.tail.data();  // the last m + p samples of the fit, in double
      for (std::size_t i = 0; i < m + P; ++i) tail[i] = double(fit[scratch.fit_samples - m - P + i]);
      double err = 0.0;
      for (std::size_t t = 0; t < m; ++t) {
        const double e = dot_lanes(scratch.rev_a.data(), tail + t, P + 1);  // the error at tail[t + p]
        err += e * e;
      }
      const double sig = dot_lanes(tail + P, tail + P, m);
      lambda = prior_weight * (sig > 0.0 ? err / sig : 1.0);
    }
    // prediction error with the unknowns at zero, t = P .. P + G + F - 1 of seg
    for (std::size_t i = 0; i < G; ++i) seg[P + i] = 0.0;
    double* known = scratch.known.data();
    for (std::size_t t = 0; t < G + F; ++t) known[t] = dot_lanes(scratch.rev_a.data(), seg + t, P + 1);
    // normal equations: entry (i, k), i <= k, = sum_{s=0}^{S} a_s a_{s+d}, d = k - i, S = min(p - d, G + F - 1 - k),
    // read from the running sums of each lag's products (p^2 / 2 multiply-adds, not G p^2 / 2)
    double* nm = scratch.normal.data();
    const std::size_t bw = std::min(G - 1, P);
    double* lagged = scratch.lagged.data();
    for (std::size_t d = 0; d <= bw; ++d) {
      double sum = 0.0;
      for (std::size_t s = 0; s + d <= P; ++s) lagged[d * (P + 1) + s] = (sum += a[s] * a[s + d]);
    }
    double diag_max = 0.0;
    for (std::size_t k = 0; k < G; ++k) {
      const std::size_t i0 = k > bw ? k - bw : 0;
      for (std::size_t i = i0; i <= k; ++i) {
        const std::size_t d = k - i;
        nm[k * G + i] = lagged[d * (P + 1) + std::min(P - d, G + F - 1 - k)];  // lower triangle: row k, column i
      }
      diag_max = std::max(diag_max, nm[k * G + k]);
    }
    double* rhs = scratch.rhs.data();
    for (std::size_t i = 0; i < G; ++i) {
      // -sum_t a_{t - i} known[t], t from i to min(i + p, G + F - 1)
      const std::size_t t_end = std::min(i + P, G + F - 1);
      double sum = 0.0;
      for (std::size_t t = i; t <= t_end; ++t) sum += a[t - i] * known[t];
      // the prior's weight fades from lambda at the gap's start to (1 - prior_fade) lambda at its end,
      // where the future decides (a raised cosine)
      const double fade = 0.5 + 0.5 * std::cos(3.14159265358979323846 * (double(i) + 0.5) / double(G));
      const double lambda_i = lambda * ((1.0 - prior_fade) + prior_fade * fade);
      rhs[i] = -sum + lambda_i * fwd[i];
      nm[i * G + i] += lambda_i + kRidge * diag_max + 1e-300;
    }
    if (banded_cholesky(nm, G, bw)) {
      banded_cholesky_solve(nm, G, bw, rhs);
      bool finite = true;
      for (std::size_t i = 0; i < G; ++i) finite = finite && std::isfinite(rhs[i]);
      if (finite && mean_square(rhs, G) <= limit) {
        for (std::size_t i = 0; i < G; ++i) out[i] = float(rhs[i]);
        return GapFill::Interpolated;
      }
    }
    // the blend: the AR model run backwards from the future (extended forward by the same model
    // where the future holds fewer than p samples), faded against the forward guess
    for (std::size_t i = 0; i < G; ++i) seg[P + i] = fwd[i];
    const std::size_t ext = F < P ? P - F : 0;
    if (ext) ar_run(a, p, seg + (G + F), ext);  // seg[G+F .. G+F+p) are the p samples before the extension
    double* rev = scratch.reversed.data();  // rev[0..p) = the p samples after the gap, reversed
    for (std::size_t j = 0; j < P; ++j) rev[j] = seg[P + G + P - 1 - j];
    ar_run(a, p, rev, G);
    double* bwd = scratch.backward.data();
    for (std::size_t i = 0; i < G; ++i) bwd[i] = rev[P + G - 1 - i];
    double* blend = scratch.rhs.data();
    for (std::size_t i = 0; i < G; ++i) {
      const double w = 0.5 + 0.5 * std::cos(3.14159265358979323846 * (double(i) + 0.5) / double(G));
      blend[i] = w * fwd[i] + (1.0 - w) * bwd[i];
    }
    bool finite = true;
    for (std::size_t i = 0; i < G; ++i) finite = finite && std::isfinite(blend[i]);
    if (finite && mean_square(blend, G) <= limit) {
      for (std::size_t i = 0; i < G; ++i) out[i] = float(blend[i]);
      return GapFill::Blended;
    }
  }
  for (std::size_t i = 0; i < G; ++i) out[i] = std::isfinite(fwd[i]) ? float(fwd[i]) : 0.0f;
  return GapFill::Forward;
}

}  // namespace nextblock

#endif
