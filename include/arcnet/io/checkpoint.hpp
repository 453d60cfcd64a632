#pragma once
// Checkpoints of any module (anything with for_each_parameter / for_each_buffer): its state
// dict in PyTorch's layouts, strict or lenient loading with every problem reported at once,
// key mapping for torchvision and mmpretrain checkpoints, and files (.safetensors, .pth).
#include <algorithm>
#include <set>
#include <sstream>
#include <string>
#include <type_traits>
#include <vector>

#include "arcnet/io/pth.hpp"
#include "arcnet/io/safetensors.hpp"
#include "arcnet/io/state_dict.hpp"
#include "arcnet/nn/layer.hpp"
#include "arcnet/ops/conv2d.hpp"

namespace arcnet::detail {
template <class T, class D>
tensor<float, cpu> to_host_float(tensor<T, D> const& t) {
  tensor<T, cpu> h;
  if constexpr (std::is_same_v<D, cpu>) h = t;
  else h = t.template to<cpu>();
  if constexpr (std::is_same_v<T, float>) return h.clone();
  else return h.template cast<float>();
}
template <class T, class D>
void assign_from_host_float(tensor<T, D>& dst, tensor<float, cpu> const& src) {
  tensor<T, cpu> h;
  if constexpr (std::is_same_v<T, float>) h = src;
  else h = src.template cast<T>();
  if constexpr (std::is_same_v<D, cpu>) dst.copy_from(h);
  else dst.copy_from(h.template to<D>());
}
/// The shape a parameter has in PyTorch's layout.
inline shape torch_shape(shape const& s, nn::param_layout layout) {
  if (layout == nn::param_layout::conv_hwio) return shape{s[3], s[2], s[0], s[1]};
  return s;
}
}  // namespace arcnet::detail

namespace arcnet::io {

/// Every parameter and buffer of `m` as float32 CPU tensors in PyTorch's layouts (OIHW convs).
template <class Module>
state_dict get_state_dict(Module& m) {
  state_dict sd;
  m.for_each_parameter([&](std::string const& name, auto& p, nn::param_layout layout) {
    auto h = detail::to_host_float(p.value());
    sd[name] = layout == nn::param_layout::conv_hwio ? ops::conv_weight_to_oihw(h) : h;
  });
  m.for_each_buffer([&](std::string const& name, auto& b) { sd[name] = detail::to_host_float(b); });
  return sd;
}

/// What a load found: keys the module wanted but the file lacked, keys the file had but the
/// module does not, and shape mismatches ("name: file (..) vs model (..)").
struct load_result {
  std::vector<std::string> missing, unexpected, mismatched;
  std::size_t loaded = 0;
  bool ok() const { return missing.empty() && unexpected.empty() && mismatched.empty(); }
  std::string str() const {
    std::ostringstream os;
    auto list = [&](char const* what, std::vector<std::string> const& v) {
      if (v.empty()) return;
      os << "\n  " << v.size() << ' ' << what << ':';
      for (auto const& k : v) os << "\n    " << k;
    };
    list("missing keys", missing);
    list("unexpected keys", unexpected);
    list("shape mismatches", mismatched);
    return os.str();
  }
};

/// Names of every parameter and buffer of m.
template <class Module>
std::vector<std::string> state_names(Module& m) {
  std::vector<std::string> names;
  m.for_each_parameter([&](std::string const& n, auto&, nn::param_layout) { names.push_back(n); });
  m.for_each_buffer([&](std::string const& n, auto&) { names.push_back(n); });
  return names;
}

/// Renames the keys of a checkpoint written by another tool to this model's names, choosing the
/// mapping that matches most keys: as is; without "module." (DataParallel); mmpretrain's
/// "image_encoder.0." as "backbone."; a bare backbone (torchvision) under "backbone."; or
/// "backbone." removed (an mmpretrain classifier loaded into a bare backbone).
inline state_dict adapt_keys(state_dict const& sd, std::vector<std::string> const& wanted) {
  std::set<std::string> want(wanted.begin(), wanted.end());
  using fn = std::string (*)(std::string const&);
  static fn const candidates[] = {
      [](std::string const& k) { return k; },
      [](std::string const& k) { return k.rfind("module.", 0) == 0 ? k.substr(7) : k; },
      [](std::string const& k) { return k.rfind("image_encoder.0.", 0) == 0 ? "backbone." + k.substr(16) : k; },
      [](std::string const& k) { return k.rfind("backbone.", 0) == 0 || k.rfind("head.", 0) == 0 ? k : "backbone." + k; },
      [](std::string const& k) { return k.rfind("backbone.", 0) == 0 ? k.substr(9) : k; },
  };
  std::size_t best_hits = 0;
  fn best = candidates[0];
  for (fn f : candidates) {
    std::size_t hits = 0;
    for (auto const& [k, v] : sd) hits += want.count(f(k));
    if (hits > best_hits) best_hits = hits, best = f;
  }
  state_dict out;
  for (auto const& [k, v] : sd) out[best(k)] = v;
  return out;
}

/// Copies the tensors of `sd` (PyTorch layouts) into m's parameters and buffers. strict: any
/// missing or unexpected key or shape mismatch throws io_error listing all of them, and
/// nothing is changed. Not strict: loads what fits and returns the rest.
template <class Module>
load_result load_state_dict(Module& m, state_dict const& sd, bool strict = true) {
  load_result r;
  std::set<std::string> seen;
  auto check = [&](std::string const& name, shape const& want) -> tensor<float, cpu> const* {
    seen.insert(name);
    auto it = sd.find(name);
    if (it == sd.end()) {
      r.missing.push_back(name);
      return nullptr;
    }
    if (it->second.shape() != want) {
      r.mismatched.push_back(detail::concat(name, ": checkpoint ", it->second.shape(), " vs model ", want));
      return nullptr;
    }
    return &it->second;
  };
  // First pass: only check, so that a strict failure changes nothing.
  m.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout l) { check(n, detail::torch_shape(p.shape(), l)); });
  m.for_each_buffer([&](std::string const& n, auto& b) { check(n, b.shape()); });
  for (auto const& [k, v] : sd)
    if (!seen.count(k)) r.unexpected.push_back(k);
  if (strict && !r.ok()) detail::raise<io_error>("load_state_dict: the checkpoint does not fit the model:", r.str());
  m.for_each_parameter([&](std::string const& n, auto& p, nn::param_layout l) {
    auto it = sd.find(n);
    if (it == sd.end() || it->second.shape() != detail::torch_shape(p.shape(), l)) return;
    detail::assign_from_host_float(p.value_mut(), l == nn::param_layout::conv_hwio ? ops::conv_weight_from_oihw(it->second)
                                                                                  : it->second);
    ++r.loaded;
  });
  m.for_each_buffer([&](std::string const& n, auto& b) {
    auto it = sd.find(n);
    if (it == sd.end() || it->second.shape() != b.shape()) return;
    detail::assign_from_host_float(b, it->second);
    ++r.loaded;
  });
  return r;
}

/// Writes m's state dict as safetensors (atomically: an existing file is replaced only by a complete one).
template <class Module>
void save_checkpoint(std::string const& path, Module& m, std::map<std::string, std::string> const& metadata = {}) {
  save_safetensors(path, get_state_dict(m), metadata);
}

/// Reads a .safetensors or a PyTorch .pth/.pt file into m, mapping torchvision / mmpretrain key
/// names (see adapt_keys).
template <class Module>
load_result load_checkpoint(std::string const& path, Module& m, bool strict = true) {
  auto ends_with = [&](std::string const& s) {
    return path.size() >= s.size() && path.compare(path.size() - s.size(), s.size(), s) == 0;
  };
  state_dict sd = ends_with(".pth") || ends_with(".pt") || ends_with(".ckpt") ? load_pth(path) : load_safetensors(path);
  return load_state_dict(m, adapt_keys(sd, state_names(m)), strict);
}

}  // namespace arcnet::io
