// io/detail/atomic_file.hpp: the leftovers of a killed writer are removed (and only those), and
// the fault-injection pause of ARCNET_TEST_CHECKPOINT_DELAY_MS (tests/programs/crash_safety.sh).
#include "test_util.hpp"

#include <chrono>
#include <cstdlib>

#include <arcnet/io/detail/atomic_file.hpp>

using namespace arcnet;

TEST_CASE("remove_stale_temporaries: removes a dead writer's temporary files, nothing else", "[io]") {
  auto dir = testing::scratch_dir("atomic_stale");
  std::string const own = std::to_string(static_cast<long>(::getpid()));
  // 999999999 is above any pid_max (at most 2^22): no such process.
  for (std::string name : std::vector<std::string>{"latest.safetensors.tmp-999999999", "epoch_3.safetensors.tmp-999999998",
                           "best.safetensors.tmp-" + own, "gallery.safetensors.tmp-1", "notes.tmp-abc", "x.tmp-",
                           "latest.safetensors", "log.jsonl"})
    testing::write_bytes(dir / name, "data");
  auto removed = detail::remove_stale_temporaries(dir.string());
  std::sort(removed.begin(), removed.end());
  CHECK(removed == std::vector<std::string>{"epoch_3.safetensors.tmp-999999998", "latest.safetensors.tmp-999999999"});
  for (std::string kept : std::vector<std::string>{"best.safetensors.tmp-" + own, "gallery.safetensors.tmp-1", "notes.tmp-abc", "x.tmp-",
                           "latest.safetensors", "log.jsonl"})
    CHECK(std::filesystem::exists(dir / kept));  // ours, a live process's (init), not ours to judge
  CHECK(detail::remove_stale_temporaries((dir / "no_such_dir").string()).empty());
}

TEST_CASE("io_atomic_writer: ARCNET_TEST_CHECKPOINT_DELAY_MS pauses before the rename, with the temporary file there",
          "[io]") {
  auto dir = testing::scratch_dir("atomic_delay");
  auto const path = (dir / "f.bin").string();
  ::setenv("ARCNET_TEST_CHECKPOINT_DELAY_MS", "120", 1);
  auto t0 = std::chrono::steady_clock::now();
  {
    detail::io_atomic_writer w(path, "test");
    w.write("hello");
    CHECK(std::filesystem::exists(w.temp_path()));
    w.commit();
    CHECK_FALSE(std::filesystem::exists(w.temp_path()));
  }
  double const paused = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  ::unsetenv("ARCNET_TEST_CHECKPOINT_DELAY_MS");
  CHECK(paused >= 0.12);
  CHECK(testing::read_bytes(path) == "hello");
  t0 = std::chrono::steady_clock::now();
  {
    detail::io_atomic_writer w(path, "test");
    w.write("again");
    w.commit();
  }
  CHECK(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count() < 0.12);  // unset: no pause
  CHECK(testing::read_bytes(path) == "again");
}
