#pragma once
// JSON helpers for the safetensors header (nlohmann::json): strict parsing that rejects
// duplicate keys, which nlohmann would otherwise resolve silently.
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "arcnet/io/detail/binary.hpp"

namespace arcnet::detail {

/// Parses `text` as JSON; throws io_error through `f` on a syntax error or a duplicate key.
inline nlohmann::json io_parse_json(std::string const& text, io_file const& f, char const* what) {
  std::vector<std::set<std::string>> keys;  // one set per open object
  auto check = [&](int, nlohmann::json::parse_event_t event, nlohmann::json& parsed) {
    using ev = nlohmann::json::parse_event_t;
    if (event == ev::object_start) {
      keys.emplace_back();
    } else if (event == ev::object_end) {
      keys.pop_back();
    } else if (event == ev::key && !keys.empty()) {
      auto const& key = parsed.get_ref<std::string const&>();
      if (!keys.back().insert(key).second) f.fail(what, ": duplicate key '", key, "'");
    }
    return true;
  };
  try {
    return nlohmann::json::parse(text, check);
  } catch (nlohmann::json::exception const& e) {
    f.fail(what, " is not valid JSON: ", e.what());
  }
}

/// Short name of a JSON value's type, for messages.
inline char const* io_json_type(nlohmann::json const& j) { return j.type_name(); }

}  // namespace arcnet::detail
