// Stress test of the shared-memory protocol, meant to run under AddressSanitizer/UBSan
// (tests/test_shm_stress.py builds it with -fsanitize=address,undefined and runs it).
//
// A forked producer publishes blocks as fast as it can (lapping the ring on purpose) and takes
// replacements; the parent consumer reads every block by index and hammers the replacement slots.
// Checks: a block read as Ok is never torn (every sample encodes the block's seq), indices are
// read in order without duplicates, a replacement taken as Ok is never torn and is for the seq
// asked for. Exit code 0 on success; prints counts.
#include <sys/wait.h>

#include <cstdio>
#include <cstdlib>
#include <vector>

#include "nextblock/shm_protocol.hpp"

using namespace nextblock;

static float sample_value(uint64_t seq, uint32_t frame, uint32_t ch) {
  return float(seq % 4096) + float(frame) / 1024.0f + float(ch) / 8.0f / 1024.0f;
}

int main(int argc, char** argv) {
  const uint64_t blocks = argc > 1 ? std::strtoull(argv[1], nullptr, 10) : 200000;
  const std::string name = "/nextblock-stress-" + std::to_string(getpid());
  SegmentConfig cfg{48000, 128, 2, 64, 64, 4};
  const uint32_t F = cfg.frames_per_block, C = cfg.channels;

  int ready[2];
  if (pipe(ready) != 0) return 2;
  pid_t child = fork();
  if (child == 0) {
    std::string why;
    auto p = Producer::create(name, cfg, &why);
    if (!p) {
      std::fprintf(stderr, "producer: %s\n", why.c_str());
      _exit(3);
    }
    char c = 1;
    if (write(ready[1], &c, 1) != 1) _exit(4);
    std::vector<float> block(F * C), rep(2 * F * C);
    uint64_t torn = 0, used = 0;
    for (uint64_t seq = 0; seq < blocks; ++seq) {
      for (uint32_t f = 0; f < F; ++f)
        for (uint32_t ch = 0; ch < C; ++ch) block[f * C + ch] = sample_value(seq, f, ch);
      p->publish_block(seq, block.data(), monotonic_ns(), 0);
      if (p->take_replacement(seq, rep.data())) {
        ++used;
        for (uint32_t i = 0; i < 2 * F * C; ++i)
          if (rep[i] != float(seq % 4096) + float(i % 7)) ++torn;
        p->post_event(EventKind::Underrun, seq, Outcome::Replacement);
      }
    }
    std::printf("producer: %llu blocks, %llu replacements used, %llu torn\n", (unsigned long long)blocks,
                (unsigned long long)used, (unsigned long long)torn);
    std::fflush(stdout);
    // Give the consumer a moment, then exit (destructor unlinks).
    usleep(200000);
    _exit(torn == 0 ? 0 : 5);
  }
  char c;
  if (read(ready[0], &c, 1) != 1) return 6;
  std::string why;
  auto cons = Consumer::attach(name, true, &why);
  if (!cons) {
    std::fprintf(stderr, "consumer: %s\n", why.c_str());
    return 7;
  }
  std::vector<float> block(F * C), rep(2 * F * C);
  uint64_t next = 0, ok = 0, overwritten = 0, torn = 0, posted = 0, last_seq = 0;
  bool have_last = false;
  while (next < blocks) {
    uint64_t written = cons->wait_for_blocks(next, 100000000ULL);
    if (written <= next) {
      if (cons->producer_closed()) break;
      continue;
    }
    // post replacements for the next few seqs (hammering the slots the producer reads)
    for (uint64_t s = written; s < written + 3; ++s) {
      for (uint32_t i = 0; i < 2 * F * C; ++i) rep[i] = float(s % 4096) + float(i % 7);
      cons->post_replacement(s, rep.data());
      ++posted;
    }
    for (; next < written; ++next) {
      uint64_t seq = 0, arr = 0, gap = 0;
      ReadResult r = cons->read_block(next, &seq, &arr, &gap, block.data());
      if (r == ReadResult::Overwritten) {
        ++overwritten;
        continue;
      }
      if (r != ReadResult::Ok) break;
      ++ok;
      if (seq != next || (have_last && seq <= last_seq)) ++torn;
      last_seq = seq;
      have_last = true;
      for (uint32_t f = 0; f < F; ++f)
        for (uint32_t ch = 0; ch < C; ++ch)
          if (block[f * C + ch] != sample_value(seq, f, ch)) ++torn;
    }
  }
  int status = 0;
  waitpid(child, &status, 0);
  std::printf("consumer: %llu read ok, %llu overwritten (lapped), %llu torn, %llu replacements posted\n",
              (unsigned long long)ok, (unsigned long long)overwritten, (unsigned long long)torn,
              (unsigned long long)posted);
  if (torn) return 8;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 9;
  if (ok == 0) return 10;
  std::printf("OK\n");
  return 0;
}
