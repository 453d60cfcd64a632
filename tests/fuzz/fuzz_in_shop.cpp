// libFuzzer target: the In-Shop partition file (data::in_shop reads ROOT/Eval/list_eval_partition.txt)
// for each split, and the same bytes as a list file (data::list_file). Expected: a dataset whose
// labels lie in [0, num_classes()) (query targets inside the gallery), or an arcnet::error.
#include <filesystem>

#include <arcnet/data/dataset.hpp>

#include "fuzz_util.hpp"

namespace {
void check_labels(arcnet::data::file_dataset const& d) {
  for (arcnet::index_t i = 0; i < d.size(); ++i)
    if (d.label(i) < 0 || d.label(i) >= d.num_classes()) std::abort();
  (void)d.class_counts();
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  static bool const made = [] {
    std::filesystem::create_directories(arcnet::fuzz::scratch() / "inshop" / "Eval");
    return true;
  }();
  (void)made;
  auto const path = arcnet::fuzz::write_input("inshop/Eval/list_eval_partition.txt", data, size);
  auto const root = (arcnet::fuzz::scratch() / "inshop").string();
  arcnet::index_t gallery_size = -1;
  for (auto split : {arcnet::data::in_shop_split::train, arcnet::data::in_shop_split::gallery,
                     arcnet::data::in_shop_split::query}) {
    try {
      arcnet::data::in_shop d(root, split);
      check_labels(d);
      for (arcnet::index_t i = 0; i < d.size(); ++i) (void)d.item_id(i);
      if (split == arcnet::data::in_shop_split::gallery) gallery_size = d.size();
      if (split == arcnet::data::in_shop_split::query)
        for (auto const& targets : d.query_targets())
          for (auto g : targets)
            if (targets.empty() || g < 0 || (gallery_size >= 0 && g >= gallery_size)) std::abort();
    } catch (arcnet::error const&) {
    }
  }
  try {
    arcnet::data::list_file d(path, root);
    check_labels(d);
  } catch (arcnet::error const&) {
  }
  return 0;
}
