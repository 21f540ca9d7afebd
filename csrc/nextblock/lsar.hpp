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
// are banded (bandwidth p) and symmetric positive definite: a banded Cholesky, at most G^3 / 6
// multiply-adds (G = 128: 350 k), solves them. A_u^T A_u needs no matrix product: entry
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
/// At most this many steps of iterative refinement after a Levinson solve.
constexpr int kRefineSteps = 3;

/// Buffers of lsar_fill_row for one configuration, made once.
struct LsarScratch {
  int order = 0;
  std::size_t fit_samples = 0, max_gap = 0, max_future = 0;
  BurgScratch burg;                       // Burg's fit on the past (its model vector holds the coefficients)
  std::vector<double> seg;                // p past, G gap, F future, p more (the backward extrapolation's extension)
  std::vector<double> normal;             // G x G normal equations (upper triangle), then their Cholesky factor U
  std::vector<double> lagged;             // (p + 1) x (p + 1): lagged[d (p + 1) + S] = sum_{s <= S} a_s a_{s + d}
  std::vector<double> rhs;                // G
  std::vector<double> rev_a;              // p + 1: the coefficients reversed, rev_a[k] = a[p - k]
  std::vector<double> tail;               // 128 + p: the past's last samples in double (the residual estimate)
  std::vector<double> residual;           // 128: the model's errors on them
  std::vector<double> known;              // G + F: the prediction error with the unknowns set to zero
  std::vector<double> forward, backward;  // G each: the blend's two sides
  std::vector<double> reversed;           // p + G: the backward run, time reversed
  std::vector<float> out32;               // scratch for ar_extrapolate_into's float output
  std::vector<double> toeplitz, lev_y;    // G each: the Toeplitz column and Levinson's backward vector
  std::vector<double> lev_r, lev_d;       // G each: the refinement's residual and correction
  std::vector<double> lev_sym;            // 2G - 1: the Toeplitz column mirrored, lev_sym[G - 1 +- k] = t[k]
  std::vector<double> fade;               // G: the prior's raised-cosine fade, for the last gap size
  std::size_t fade_gap = 0;               // the gap size `fade` was made for
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
        tail(128 + std::size_t(order_)),
        residual(128),
        known(max_gap_ + max_future_),
        forward(max_gap_),
        backward(max_gap_),
        reversed(std::size_t(order_) + max_gap_ + std::size_t(order_)),
        out32(max_gap_ + std::size_t(order_) + max_future_),
        toeplitz(max_gap_),
        lev_y(max_gap_),
        lev_r(max_gap_),
        lev_d(max_gap_),
        lev_sym(2 * max_gap_),
        fade(max_gap_) {}
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

/// sum_{k < n} x[k] y[k] with eight independent partial sums (no single add chain; vectorised
/// where it is inlined into the NEXTBLOCK_VECTOR_CLONES functions below).
inline double dot_lanes(const double* __restrict x, const double* __restrict y, std::size_t n) {
  constexpr std::size_t kLanes = 8;
  double partial[kLanes] = {};
  std::size_t k = 0;
  for (; k + kLanes <= n; k += kLanes)
    for (std::size_t l = 0; l < kLanes; ++l) partial[l] += x[k + l] * y[k + l];
  for (; k < n; ++k) partial[0] += x[k] * y[k];
  return ((partial[0] + partial[1]) + (partial[2] + partial[3])) +
         ((partial[4] + partial[5]) + (partial[6] + partial[7]));
}

/// out[t] = sum_{k <= p} rev_a[k] x[t + k] for t < n: the AR model's prediction error along x
/// (rev_a the coefficients reversed, p + 1 of them).
NEXTBLOCK_VECTOR_CLONES
static void prediction_errors(const double* rev_a, std::size_t p1, const double* x, std::size_t n, double* out) {
  for (std::size_t t = 0; t < n; ++t) out[t] = dot_lanes(rev_a, x + t, p1);
}

/// In-place banded Cholesky m = U^T U of the n x n symmetric positive definite matrix whose upper
/// triangle row i, columns i..i+bw, is stored in m[i n + i .. i n + i + bw] (row-major; bandwidth
/// bw); U overwrites it. Right-looking: each row's update of the rows below it is an axpy on
/// contiguous memory, which vectorises without reassociating a sum. Returns false if m is not
/// positive definite.
NEXTBLOCK_VECTOR_CLONES
static bool banded_cholesky(double* m, std::size_t n, std::size_t bw) {
  for (std::size_t j = 0; j < n; ++j) {
    double* row = m + j * n;
    if (!(row[j] > 0.0)) return false;
    const double ujj = std::sqrt(row[j]);
    row[j] = ujj;
    const std::size_t end = std::min(n, j + bw + 1);
    const double inv = 1.0 / ujj;
    for (std::size_t i = j + 1; i < end; ++i) row[i] *= inv;
    for (std::size_t k = j + 1; k < end; ++k) {
      const double ujk = row[k];
      double* __restrict target = m + k * n;
      const double* __restrict source = row;
      for (std::size_t i = k; i < end; ++i) target[i] -= ujk * source[i];
    }
  }
  return true;
}

/// Solve U^T U x = b in place (b becomes x) for the factor banded_cholesky left in m.
NEXTBLOCK_VECTOR_CLONES
static void banded_cholesky_solve(const double* m, std::size_t n, std::size_t bw, double* b) {
  for (std::size_t j = 0; j < n; ++j) {  // U^T y = b, column by column: an axpy along row j of U
    const double* row = m + j * n;
    const double yj = b[j] / row[j];
    b[j] = yj;
    const std::size_t end = std::min(n, j + bw + 1);
    for (std::size_t i = j + 1; i < end; ++i) b[i] -= row[i] * yj;
  }
  for (std::size_t ii = n; ii-- > 0;) {  // U x = y: a dot product along row ii of U
    const double* row = m + ii * n;
    const std::size_t end = std::min(n, ii + bw + 1);
    b[ii] = (b[ii] - dot_lanes(row + ii + 1, b + ii + 1, end - ii - 1)) / row[ii];
  }
}

/// Solve T x = b for the n x n symmetric positive definite Toeplitz matrix with first column t
/// (Levinson's algorithm, Golub & Van Loan 4.7.3: about 4 n^2 flops against Cholesky's n^3 / 3).
/// `x` receives the solution, `y` (n) is scratch. Returns false if T is not (numerically)
/// positive definite (a reflection coefficient reached 1 or a pivot turned non-positive).
NEXTBLOCK_VECTOR_CLONES
static bool levinson_solve(const double* t, std::size_t n, const double* b, double* x, double* y) {
  if (!(t[0] > 0.0)) return false;
  const double inv0 = 1.0 / t[0];
  // r = t / t0 (unit diagonal), read through inv0 on the fly
  x[0] = b[0] * inv0;
  if (n == 1) return true;
  double beta = 1.0, alpha = -t[1] * inv0;
  y[0] = alpha;
  for (std::size_t k = 1; k < n; ++k) {
    beta *= (1.0 - alpha) * (1.0 + alpha);
    if (!(beta > 0.0)) return false;
    double rx = 0.0;  // r(1..k) . x(k-1..0)
    for (std::size_t i = 0; i < k; ++i) rx += t[i + 1] * x[k - 1 - i];
    const double mu = (b[k] * inv0 - rx * inv0) / beta;
    for (std::size_t i = 0; i < k; ++i) x[i] += mu * y[k - 1 - i];
    x[k] = mu;
    if (k + 1 < n) {
      double ry = 0.0;  // r(1..k) . y(k-1..0)
      for (std::size_t i = 0; i < k; ++i) ry += t[i + 1] * y[k - 1 - i];
      alpha = -(t[k + 1] * inv0 + ry * inv0) / beta;
      for (std::size_t i = 0, j = k - 1; i < j; ++i, --j) {  // y <- y + alpha * reverse(y), in place
        const double yi = y[i], yj = y[j];
        y[i] = yi + alpha * yj;
        y[j] = yj + alpha * yi;
      }
      if (k % 2 == 1) y[k / 2] *= 1.0 + alpha;
      y[k] = alpha;
    }
  }
  return true;
}

/// Fill the `gap` samples between `past` (n_past samples, newest last) and `future` (n_future
/// samples right after the gap) into `out`; see the file comment. `prior` (gap samples) may be
/// null; `prior_weight` scales its weight (0: plain LSAR), `prior_fade` (0..1) how much of it fades out
/// towards the gap's end. `blend_only` skips the interpolation: the blend (then the forward guess)
/// alone, the classical forward/backward baseline. `levinson` allows the Levinson solve where the
/// equations are Toeplitz (~2.5x faster, refined, but on tonal music up to ~0.15 dB below the
/// Cholesky's solution): the live fast path asks for it, the baselines and the tables do not.
/// The model is Burg's of `scratch.order`
/// on the last scratch.fit_samples of the past (n_past >= fit_samples > order). Requires
/// 1 <= gap <= scratch.max_gap and 1 <= n_future <= scratch.max_future.
inline GapFill lsar_fill_row(const float* past, std::size_t n_past, const float* future, std::size_t n_future,
                             std::size_t gap, const float* prior, double prior_weight, double prior_fade,
                             double silence_mean_square, float* out, LsarScratch& scratch, bool blend_only = false,
                             bool levinson = false) {
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
  const bool fitted =
      ms_fit > silence_mean_square && burg_coefficients(fit, scratch.fit_samples, p, a, scratch.burg.errors.data(),
                                                        fwd32, fwd32 + scratch.burg.stride32);
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
      const std::size_t m = std::min<std::size_t>(128, scratch.fit_samples - P);
      double* tail = scratch.tail.data();  // the last m + p samples of the fit, in double
      for (std::size_t i = 0; i < m + P; ++i) tail[i] = double(fit[scratch.fit_samples - m - P + i]);
      double* errors = scratch.residual.data();
      prediction_errors(scratch.rev_a.data(), P + 1, tail, m, errors);  // the error at tail[t + p]
      const double err = dot_lanes(errors, errors, m);
      const double sig = dot_lanes(tail + P, tail + P, m);
      lambda = prior_weight * (sig > 0.0 ? err / sig : 1.0);
    }
    // prediction error with the unknowns at zero, t = P .. P + G + F - 1 of seg
    for (std::size_t i = 0; i < G; ++i) seg[P + i] = 0.0;
    double* known = scratch.known.data();
    prediction_errors(scratch.rev_a.data(), P + 1, seg, G + F, known);
    // the prior's weight fades from lambda at the gap's start to (1 - prior_fade) lambda at its end,
    // where the future decides (a raised cosine; the table is made once per gap size)
    double* fade = scratch.fade.data();
    if (scratch.fade_gap != G) {
      for (std::size_t i = 0; i < G; ++i)
        fade[i] = 0.5 + 0.5 * std::cos(3.14159265358979323846 * (double(i) + 0.5) / double(G));
      scratch.fade_gap = G;
    }
    double* rhs = scratch.rhs.data();
    for (std::size_t i = 0; i < G; ++i) {
      // -sum_t a_{t - i} known[t], t from i to min(i + p, G + F - 1)
      const std::size_t t_end = std::min(i + P, G + F - 1);
      rhs[i] = -dot_lanes(a, known + i, t_end - i + 1);
    }
    const std::size_t bw = std::min(G - 1, P);
    // With at least p future samples every error term that involves the gap is in the sum, so
    // entry (i, k) of A_u^T A_u is the coefficients' autocorrelation at lag k - i: the normal
    // equations are Toeplitz, and with a constant prior weight a Levinson solve (~4 G^2 flops)
    // may replace the Cholesky (G^3 / 3) where the caller allows it (`levinson`).
    const bool toeplitz = levinson && F >= P && (lambda == 0.0 || prior_fade == 0.0);
    bool solved = false;
    if (!blend_only && toeplitz) {
      double* col = scratch.toeplitz.data();
      for (std::size_t d = 0; d < G; ++d) col[d] = d <= bw ? dot_lanes(a, a + d, P + 1 - d) : 0.0;
      col[0] += lambda + kRidge * col[0] + 1e-300;
      for (std::size_t i = 0; i < G; ++i) rhs[i] += lambda * fwd[i];
      double* x = scratch.normal.data();  // the solution (the dense path's matrix is not needed)
      double* y = scratch.lev_y.data();
      if (levinson_solve(col, G, rhs, x, y)) {
        // Levinson is only weakly stable, and these equations are ill-conditioned on tonal sound
        // (1e11-1e12): refine against the residual in the same algorithm until it stops shrinking
        // (validation music, LSAR(128): 8.84 dB without refinement, 9.33 with it, the Cholesky 9.35)
        double* r = scratch.lev_r.data();
        double* d = scratch.lev_d.data();
        double* sym = scratch.lev_sym.data();  // (T x)_i = sum_j sym[G - 1 - i + j] x_j: contiguous
        for (std::size_t k = 0; k < G; ++k) sym[G - 1 + k] = sym[G - 1 - k] = col[k];
        double previous = HUGE_VAL;
        for (int step = 0; step < kRefineSteps; ++step) {
          double norm = 0.0;
          for (std::size_t i = 0; i < G; ++i) {
            r[i] = rhs[i] - dot_lanes(sym + (G - 1 - i), x, G);
            norm += r[i] * r[i];
          }
          if (!(norm < previous) || !levinson_solve(col, G, r, d, y)) break;
          previous = norm;
          for (std::size_t i = 0; i < G; ++i) x[i] += d[i];
        }
        for (std::size_t i = 0; i < G; ++i) rhs[i] = x[i];
        solved = true;
      }
    } else if (!blend_only) {
      // normal equations: entry (i, k), i <= k, = sum_{s=0}^{S} a_s a_{s+d}, d = k - i, S = min(p - d, G + F - 1 - k),
      // read from the running sums of each lag's products (p^2 / 2 multiply-adds, not G p^2 / 2)
      double* nm = scratch.normal.data();
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
          nm[i * G + k] = lagged[d * (P + 1) + std::min(P - d, G + F - 1 - k)];  // upper triangle: row i, column k
        }
        diag_max = std::max(diag_max, nm[k * G + k]);
      }
      for (std::size_t i = 0; i < G; ++i) {
        const double lambda_i = lambda * ((1.0 - prior_fade) + prior_fade * fade[i]);
        rhs[i] += lambda_i * fwd[i];
        nm[i * G + i] += lambda_i + kRidge * diag_max + 1e-300;
      }
      if (banded_cholesky(nm, G, bw)) {
        banded_cholesky_solve(nm, G, bw, rhs);
        solved = true;
      }
    }
    if (solved) {
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
    double* rev = scratch.reversed.data();      // rev[0..p) = the p samples after the gap, reversed
    for (std::size_t j = 0; j < P; ++j) rev[j] = seg[P + G + P - 1 - j];
    ar_run(a, p, rev, G);
    double* bwd = scratch.backward.data();
    for (std::size_t i = 0; i < G; ++i) bwd[i] = rev[P + G - 1 - i];
    double* blend = scratch.rhs.data();
    for (std::size_t i = 0; i < G; ++i) { blend[i] = fade[i] * fwd[i] + (1.0 - fade[i]) * bwd[i]; }
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
