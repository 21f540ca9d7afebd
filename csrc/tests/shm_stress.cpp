// Stress test of the shared-memory protocol, meant to run under AddressSanitizer/UBSan and
// ThreadSanitizer (tests/test_shm_stress.py builds it with -fsanitize=address,undefined and with
// -fsanitize=thread and runs it).
//
//   shm_stress [BLOCKS]                 race: producer vs consumer
//   shm_stress hostile BLOCKS [SEED]    producer vs a process scribbling over the whole segment
//   shm_stress threads BLOCKS           the producer on two threads, as in JackTrip, vs a consumer
//
// race: a forked producer publishes blocks as fast as it can (lapping the ring on purpose) and
// takes replacements; the parent consumer reads every block by index and hammers the replacement
// slots. Checks: a block read as Ok is never torn (every sample encodes the block's seq), indices
// are read in order without duplicates, a replacement taken as Ok is never torn and is for the
// seq asked for.
// threads: the producer's receive thread publishes blocks (5 % lost) while its audio thread, in
// step behind it, takes the replacement for each lost one, posts its event and the play-out clock
// under a lock (wake-ups deferred, as in JackTrip's buffers) and flushes the wake-ups after it; a
// forked consumer sleeps on both futex words so that both threads issue FUTEX_WAKEs. Checks (and
// ThreadSanitizer's): every replacement taken is the one posted for its seq, wakes were issued on
// both words, the consumer read blocks untorn.
// hostile: a forked child maps the segment read-write and writes random bytes at random offsets
// (header, rings, control page, replacement slots) while the producer publishes, posts events and
// takes replacements. Checks: no crash or sanitizer report, every replacement taken is finite and
// within [-1, 1]. Exit code 0 on success; prints counts.
#include <sys/wait.h>

#include <atomic>
#include <mutex>
#include <string>
#include <thread>

#include <cmath>
#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "nextblock/shm_consumer.hpp"
#include "nextblock/shm_producer.hpp"

using namespace nextblock;

static float sample_value(uint64_t seq, uint32_t frame, uint32_t ch) {
  return float(seq % 4096) + float(frame) / 1024.0f + float(ch) / 8.0f / 1024.0f;
}

// a replacement sample in [-1, 1], exact in float32
static float replacement_value(uint64_t seq, uint32_t i) { return (float(seq % 4096) + float(i % 7) / 8.0f) / 8192.0f; }

static int hostile(uint64_t blocks, uint64_t seed) {
  const std::string name = "/nextblock-hostile-" + std::to_string(getpid());
  SegmentConfig cfg{48000, 128, 2, 64, 64, 4};
  std::string why;
  auto p = Producer::create(name, cfg, &why);
  if (!p) {
    std::fprintf(stderr, "producer: %s\n", why.c_str());
    return 3;
  }
  const uint64_t bytes = p->layout().total_bytes;
  pid_t child = fork();
  if (child == 0) {  // the hostile writer: its own mapping, random bytes anywhere, until killed
    int fd = shm_open(name.c_str(), O_RDWR, 0);
    if (fd < 0) _exit(2);
    auto* m = static_cast<uint8_t*>(mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    if (m == MAP_FAILED) _exit(2);
    const Layout l = p->layout();
    const uint64_t n = 2 * uint64_t(cfg.frames_per_block) * cfg.channels;
    const float poison[] = {NAN, INFINITY, -INFINITY, 1e9f, -1.5f, 1e-40f};
    uint64_t x = seed | 1;
    auto next = [&x] {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      return x;
    };  // xorshift64
    for (;;) {
      if (next() % 2) {  // random bytes anywhere
        const uint64_t off = (x >> 8) % bytes;
        const uint64_t len = 1 + (x & 15);
        for (uint64_t k = 0; k < len && off + k < bytes; ++k) m[off + k] = uint8_t(x >> (8 * (k & 7)));
        continue;
      }
      // a well-formed replacement for a seq about to be taken, sometimes with poison in it
      uint64_t seq;
      std::memcpy(&seq, m + offsetof(SegmentHeader, blocks_written), sizeof seq);
      seq += next() % 4;
      auto* slot = reinterpret_cast<ReplacementSlotHeader*>(m + l.replacement_offset +
                                                            (seq % cfg.replacement_slots) * l.replacement_slot_bytes);
      auto* samples = reinterpret_cast<float*>(slot + 1);
      const uint64_t v = (slot->version.load() + 1) | 1;
      slot->version.store(v);
      slot->seq = seq;
      for (uint64_t i = 0; i < n; ++i) samples[i] = float(int64_t(next() % 2001) - 1000) / 1000.0f;
      if (next() % 2) samples[next() % n] = poison[next() % 6];
      slot->version.store(v + 1);
    }
  }
  std::vector<float> block(cfg.frames_per_block * cfg.channels, 0.25f), rep(2 * block.size());
  uint64_t taken = 0, bad = 0, refused = 0;
  for (uint64_t seq = 0; seq < blocks; ++seq) {
    p->publish_block(seq, block.data(), monotonic_ns(), 0);
    const Take t = p->take_replacement(seq, rep.data());
    if (t == Take::Taken) {
      ++taken;
      for (float v : rep)
        if (!(v >= -1.0f && v <= 1.0f)) ++bad;
    } else if (t == Take::Refused) {
      ++refused;
    }
    p->post_event(EventKind::Underrun, seq, t == Take::Taken ? Outcome::Replacement : Outcome::Fallback);
    (void)p->consumer_alive(monotonic_ns());
    if (seq % 8 == 0) usleep(10);  // let the writer keep up with the seqs being taken
  }
  kill(child, SIGKILL);
  waitpid(child, nullptr, 0);
  std::printf("hostile: %llu blocks, %llu replacements taken, %llu refused, %llu bad samples played\n",
              (unsigned long long)blocks, (unsigned long long)taken, (unsigned long long)refused,
              (unsigned long long)bad);
  if (bad) return 11;
  std::printf("OK\n");
  return 0;
}

static bool lost_seq(uint64_t seq) { return ((seq * 2654435761u) >> 8) % 20 == 0; }

static int threads(uint64_t blocks) {
  const std::string name = "/nextblock-threads-" + std::to_string(getpid());
  SegmentConfig cfg{48000, 128, 2, 64, 64, 8};
  const uint32_t F = cfg.frames_per_block, C = cfg.channels;
  int stop[2];
  if (pipe(stop) != 0) return 2;
  pid_t child = fork();  // the consumer, before any thread exists
  if (child == 0) {
    close(stop[1]);
    fcntl(stop[0], F_SETFL, O_NONBLOCK);
    auto stopped = [&] {
      char c;
      return read(stop[0], &c, 1) == 0;
    };
    std::unique_ptr<Consumer> cons;
    std::string why;
    while (!cons && !stopped()) {
      cons = Consumer::attach(name, true, &why);
      if (!cons) usleep(1000);
    }
    if (!cons) _exit(20);
    cons->set_missing_lookahead(1);
    std::vector<float> block(F * C), rep(2 * F * C);
    uint64_t next = 0, ok = 0, torn = 0, round = 0;
    while (!cons->producer_closed() && !stopped()) {
      if (++round % 8 == 0) {  // the audio thread's wake: a looked-ahead block is missing
        const uint64_t now = monotonic_ns();
        cons->register_missing_wake(now, now + 2000000ULL);
        const uint32_t word = cons->missing_word()->load(std::memory_order_seq_cst);
        timespec ts{0, 1000000L};
        futex_wait_shared(cons->missing_word(), word, &ts);
      }
      const uint64_t written = cons->wait_for_blocks(next, 20000000ULL);  // the receive thread's wake
      for (; next < written; ++next) {
        uint64_t seq = 0;
        if (cons->read_block(next, &seq, nullptr, nullptr, block.data()) != ReadResult::Ok) continue;
        ++ok;
        for (uint32_t f = 0; f < F; ++f)
          for (uint32_t ch = 0; ch < C; ++ch)
            if (block[f * C + ch] != sample_value(seq, f, ch)) ++torn;
        for (uint64_t s = seq + 1; s <= seq + 3; ++s) {
          for (uint32_t i = 0; i < 2 * F * C; ++i) rep[i] = replacement_value(s, i);
          cons->post_replacement(s, rep.data());
        }
      }
    }
    const SegmentHeader& h = cons->header();
    std::printf("consumer: %llu read ok, %llu torn, %llu wakes, %llu missing wakes\n", (unsigned long long)ok,
                (unsigned long long)torn, (unsigned long long)h.wakes_issued.load(),
                (unsigned long long)cons->missing_wakes_issued());
    std::fflush(stdout);
    _exit(torn ? 21 : ok == 0 ? 22 : h.wakes_issued.load() == 0 || cons->missing_wakes_issued() == 0 ? 23 : 0);
  }
  close(stop[0]);
  std::string why;
  auto p = Producer::create(name, cfg, &why);
  if (!p) {
    std::fprintf(stderr, "producer: %s\n", why.c_str());
    return 3;
  }
  p->defer_wakes(true);  // the audio thread's calls run under a lock (JackTrip's buffers)
  std::mutex buffer_lock;
  std::atomic<uint64_t> rx_upto{0};
  std::thread receive([&] {
    std::vector<float> block(F * C);
    for (uint64_t seq = 0; seq < blocks; ++seq) {
      if (!lost_seq(seq)) {
        for (uint32_t f = 0; f < F; ++f)
          for (uint32_t ch = 0; ch < C; ++ch) block[f * C + ch] = sample_value(seq, f, ch);
        p->publish_block(seq, block.data(), monotonic_ns(), 0);
      }
      rx_upto.store(seq + 1, std::memory_order_release);
      usleep(200);
    }
  });
  uint64_t taken = 0, wrong = 0, concealed = 0;
  std::thread audio([&] {
    std::vector<float> rep(2 * F * C);
    for (uint64_t seq = 0; seq < blocks; ++seq) {
      while (rx_upto.load(std::memory_order_acquire) < std::min<uint64_t>(seq + 3, blocks)) usleep(20);
      {
        std::lock_guard<std::mutex> g(buffer_lock);
        if (lost_seq(seq)) {
          ++concealed;
          const Take t = p->take_replacement(seq, rep.data());
          if (t == Take::Taken) {
            ++taken;
            for (uint32_t i = 0; i < 2 * F * C; ++i)
              if (rep[i] != replacement_value(seq, i)) ++wrong;
          }
          p->post_event(EventKind::Underrun, seq, t == Take::Taken ? Outcome::Replacement : Outcome::Fallback);
        }
        p->note_playout(seq, monotonic_ns(), 2);
      }
      p->flush_wakes();  // the lock released
    }
  });
  receive.join();
  audio.join();
  usleep(100000);
  const uint64_t wakes = p->wakes_issued();
  p.reset();  // closed: the consumer stops
  close(stop[1]);
  int status = 0;
  waitpid(child, &status, 0);
  std::printf("threads: %llu blocks, %llu concealed, %llu replacements taken, %llu wrong, %llu wakes\n",
              (unsigned long long)blocks, (unsigned long long)concealed, (unsigned long long)taken,
              (unsigned long long)wrong, (unsigned long long)wakes);
  if (wrong) return 11;
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) return 12;
  if (taken == 0) return 13;
  std::printf("OK\n");
  return 0;
}

int main(int argc, char** argv) {
  if (argc > 1 && std::string(argv[1]) == "threads")
    return threads(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 4000);
  if (argc > 1 && std::string(argv[1]) == "hostile")
    return hostile(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 200000,
                   argc > 3 ? std::strtoull(argv[3], nullptr, 10) : 1);
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
      if (p->take_replacement(seq, rep.data()) == Take::Taken) {
        ++used;
        for (uint32_t i = 0; i < 2 * F * C; ++i)
          if (rep[i] != replacement_value(seq, i)) ++torn;
        p->post_event(EventKind::Underrun, seq, Outcome::Replacement);
      }
    }
    std::printf("producer: %llu blocks, %llu replacements used, %llu torn\n", (unsigned long long)blocks,
                (unsigned long long)used, (unsigned long long)torn);
    std::fflush(stdout);
    // Give the consumer a moment, then close the segment (the destructor unlinks it: _exit would skip it).
    usleep(200000);
    p.reset();
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
      for (uint32_t i = 0; i < 2 * F * C; ++i) rep[i] = replacement_value(s, i);
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
