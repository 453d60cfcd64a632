// Program options: config files, command-line overrides, and the errors a user sees for an
// unknown key, a bad value or a value out of range.
#include <catch2/catch.hpp>

#include <fstream>
#include <vector>

#include <arcnet/engine/options.hpp>

#include "test_util.hpp"

using namespace arcnet;

namespace {
bool parse(std::vector<std::string> args, engine::train_options& o) {
  args.insert(args.begin(), "arcnet-train");
  std::vector<char const*> argv;
  for (auto& a : args) argv.push_back(a.c_str());
  return engine::parse_train_options(static_cast<int>(argv.size()), argv.data(), o);
}
/// Parses into a fresh set of options (Program_options binds defaults to the struct it fills).
void parse_fresh(std::vector<std::string> args) {
  engine::train_options o;
  parse(std::move(args), o);
}
std::string write_config(std::string const& name, std::string const& text) {
  auto path = (testing::scratch_dir("engine_options") / name).string();
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("train options: the config file sets values, the command line overrides them", "[engine]") {
  auto cfg = write_config("a.cfg",
                          "epochs = 7\nwork-dir = w\n[data]\nkind = idx\nroot = /tmp\nbatch-size = 64\n"
                          "[optim]\ntype = adamw\nlr = 0.001\n[model]\narch = cifar_resnet20\n");
  engine::train_options o;
  REQUIRE(parse({"--config", cfg, "--data.batch-size", "32", "--seed", "5"}, o));
  CHECK(o.epochs == 7);
  CHECK(o.work_dir == "w");
  CHECK(o.data.kind == "idx");
  CHECK(o.data.batch_size == 32);  // the command line wins
  CHECK(o.seed == 5);
  CHECK(o.optim.type == "adamw");
  CHECK(o.optim.lr == Approx(0.001));
  CHECK(o.model.arch == "cifar_resnet20");
  CHECK(o.head.scale == 64);  // defaults: mmpretrain's recipe
  CHECK(o.optim.warmup_epochs == 5);
}

TEST_CASE("train options: errors name the key, the value and the file", "[engine]") {
  auto unknown = write_config("unknown.cfg", "work-dir = w\n[data]\nroot = /tmp\nbatch-sise = 8\n");
  CHECK_THROWS_MATCHES(parse_fresh({"--config", unknown}), config_error,
                       testing::message_contains("data.batch-sise") && testing::message_contains("unknown.cfg"));
  auto bad = write_config("bad.cfg", "work-dir = w\n[data]\nroot = /tmp\nbatch-size = eight\n");
  CHECK_THROWS_MATCHES(parse_fresh({"--config", bad}), config_error, testing::message_contains("eight"));
  CHECK_THROWS_MATCHES(parse_fresh({"--config", "/no/such.cfg"}), config_error, testing::message_contains("/no/such.cfg"));
  CHECK_THROWS_MATCHES(parse_fresh({"--data.root", "/tmp", "--work-dir", "w", "--optim.type", "adam"}), config_error,
                       testing::message_contains("optim.type") && testing::message_contains("adamw"));
  CHECK_THROWS_MATCHES(parse_fresh({"--data.root", "/tmp", "--work-dir", "w", "--head.margin", "2"}), config_error,
                       testing::message_contains("head.margin"));
  CHECK_THROWS_MATCHES(parse_fresh({"--data.root", "/tmp", "--work-dir", "w", "--epochs", "2", "--optim.warmup-epochs", "3"}),
                       config_error, testing::message_contains("warmup-epochs"));
  CHECK_THROWS_MATCHES(parse_fresh({"--data.root", "/tmp"}), config_error, testing::message_contains("work-dir"));
  CHECK_THROWS_MATCHES(parse_fresh({"--data.root", "/tmp", "--work-dir", "w", "--data.train-classes", "3-1"}),
                       config_error, testing::message_contains("data.train-classes"));
}

TEST_CASE("class lists: ranges and single labels", "[engine]") {
  CHECK(engine::parse_class_list("0-6", "k") == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6});
  CHECK(engine::parse_class_list("9,1,3-4,3", "k") == std::vector<std::int64_t>{1, 3, 4, 9});
  CHECK_THROWS_AS(engine::parse_class_list("a-b", "k"), config_error);
  CHECK_THROWS_AS(engine::parse_class_list("-1", "k"), config_error);
}

TEST_CASE("test options accept a training config and ignore its training keys", "[engine]") {
  auto cfg = write_config("train.cfg",
                          "epochs = 3\nseed = 1\n[data]\nkind = idx\nroot = /tmp\ntrain-pipeline = flip=0.5\n"
                          "[optim]\nlr = 0.1\n[head]\nscale = 16\n[eval]\nprotocol = leave-one-out\n");
  engine::test_options o;
  std::vector<char const*> argv{"arcnet-test", "--config", cfg.c_str(), "--checkpoint", "c.safetensors"};
  REQUIRE(engine::parse_test_options(static_cast<int>(argv.size()), argv.data(), o));
  CHECK(o.data.kind == "idx");
  CHECK(o.eval.protocol == "leave-one-out");
  CHECK(o.checkpoint == "c.safetensors");
  std::vector<char const*> missing{"arcnet-test", "--config", cfg.c_str()};
  CHECK_THROWS_MATCHES(engine::parse_test_options(3, missing.data(), o), config_error, testing::message_contains("checkpoint"));
}

TEST_CASE("retrieve options: positional queries", "[engine]") {
  engine::retrieve_options o;
  std::vector<char const*> argv{"arcnet-retrieve", "--checkpoint", "c", "--prototype", "g", "q1.jpg", "q2.jpg", "--topk", "3"};
  REQUIRE(engine::parse_retrieve_options(static_cast<int>(argv.size()), argv.data(), o));
  CHECK(o.queries == std::vector<std::string>{"q1.jpg", "q2.jpg"});
  CHECK(o.topk == 3);
  std::vector<char const*> none{"arcnet-retrieve", "--checkpoint", "c", "--prototype", "g"};
  engine::retrieve_options fresh;
  CHECK_THROWS_MATCHES(engine::parse_retrieve_options(5, none.data(), fresh), config_error, testing::message_contains("query"));
}

TEST_CASE("the shipped configs parse and validate", "[engine]") {
  namespace fs = std::filesystem;
  fs::path dir = fs::path(ARCNET_TEST_DATA_DIR) / ".." / ".." / "examples" / "configs";
  int seen = 0;
  for (auto const& e : fs::directory_iterator(dir)) {
    if (e.path().extension() != ".cfg") continue;
    INFO(e.path().string());
    engine::train_options o;
    CHECK(parse({"--config", e.path().string(), "--work-dir", "w", "--data.root", "/tmp"}, o));
    ++seen;
  }
  CHECK(seen >= 3);
}

TEST_CASE("train options: optim.skip-nonfinite is off unless asked, from a file or the command line", "[engine]") {
  engine::train_options off;
  REQUIRE(parse({"--data.root", "/tmp", "--work-dir", "w"}, off));
  CHECK_FALSE(off.optim.skip_nonfinite);  // a NaN stops training by default
  auto cfg = write_config("skip.cfg", "work-dir = w\n[data]\nroot = /tmp\n[optim]\nskip-nonfinite = true\n");
  engine::train_options on;
  REQUIRE(parse({"--config", cfg}, on));
  CHECK(on.optim.skip_nonfinite);
  engine::train_options cli;
  REQUIRE(parse({"--config", cfg, "--optim.skip-nonfinite", "false"}, cli));
  CHECK_FALSE(cli.optim.skip_nonfinite);  // the command line wins
  CHECK_THROWS_MATCHES(parse_fresh({"--data.root", "/tmp", "--work-dir", "w", "--optim.skip-nonfinite", "sometimes"}),
                       config_error, testing::message_contains("optim.skip-nonfinite") && testing::message_contains("sometimes"));
}

// Found by fuzzing the config parser (tests/fuzz/fuzz_config.cpp): Program_options fills its
// messages by replacing "%value%" until none is left, so a value holding it looped forever.
TEST_CASE("options: '%value%' in a key or value gives a config_error, not an endless message", "[engine]") {
  auto cfg = write_config("pct.cfg", "epochs = %value%\n");
  CHECK_THROWS_MATCHES(parse_fresh({"--config", cfg, "--work-dir", "w"}), config_error,
                       testing::message_contains("the argument ('\xef\xbc\x85value\xef\xbc\x85') for option 'epochs' is invalid"));
  CHECK_THROWS_MATCHES(parse_fresh({"--epochs", "%value%", "--work-dir", "w"}), config_error,
                       testing::message_contains("\xef\xbc\x85value\xef\xbc\x85"));
}

TEST_CASE("class lists: labels below 2^20, overlapping ranges merged", "[engine]") {
  CHECK(engine::parse_class_list("2-5,0-3,4-8,7", "k") == std::vector<std::int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8});
  CHECK_THROWS_MATCHES(engine::parse_class_list("0-99999999", "data.train-classes"), config_error,
                       testing::message_contains("label 99999999 in '0-99999999' is too large (labels are below 1048576)"));
  std::string many;
  for (int i = 0; i < 400; ++i) many += "0-1048575,";
  CHECK(engine::parse_class_list(many + "5", "k").size() == 1048576);
}
