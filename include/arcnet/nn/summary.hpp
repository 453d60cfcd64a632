#pragma once
// A parameter and FLOP counter for any composed network: one row per layer (name, type,
// output shape, parameters, multiply-accumulates) and the totals.
#include <cstdio>
#include <iomanip>
#include <ostream>
#include <sstream>
#include <string>
#include <vector>

#include "arcnet/nn/layer.hpp"

namespace arcnet::nn {

struct summary {
  std::vector<layer_info> layers;
  shape output;
  index_t total_params = 0;  // every parameter of the module, counted by its visitor
  double total_macs = 0;

  /// A table of the layers with parameters or MACs (or all, with all_layers), then the totals.
  void print(std::ostream& os, bool all_layers = false) const {
    os << std::left << std::setw(34) << "layer" << std::setw(22) << "type" << std::setw(22) << "output"
       << std::right << std::setw(12) << "params" << std::setw(14) << "MMAC" << '\n';
    for (auto const& l : layers) {
      if (!all_layers && l.params == 0 && l.macs == 0) continue;
      os << std::left << std::setw(34) << l.name << std::setw(22) << l.type << std::setw(22) << l.output.str()
         << std::right << std::setw(12) << l.params << std::setw(14) << std::fixed << std::setprecision(2)
         << l.macs / 1e6 << '\n';
    }
    os << "total: " << total_params << " parameters (" << std::setprecision(2) << total_params / 1e6 << " M), "
       << std::setprecision(3) << total_macs / 1e9 << " GMAC, output " << output.str() << '\n';
  }
  std::string str(bool all_layers = false) const {
    std::ostringstream os;
    print(os, all_layers);
    return os.str();
  }
};

/// Walks `m` for an input of shape `in` (NHWC, batch included) without running it.
template <class Module>
summary summarize(Module const& m, shape const& in) {
  summary s;
  s.output = m.describe(in, "", s.layers);
  for (auto const& l : s.layers) s.total_macs += l.macs;
  s.total_params = count_parameters(const_cast<Module&>(m));
  return s;
}

}  // namespace arcnet::nn
