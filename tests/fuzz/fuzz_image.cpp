// libFuzzer target: data::decode_image (JPEG through TurboJPEG, PNG through libpng, PGM / PPM)
// on arbitrary bytes, at full size and, for JPEG, with a size hint (TurboJPEG's scaled decoding).
// Expected: an RGB image whose pixel count matches its size, or an io_error. scripts/fuzz.sh
// builds it with ARCNET_MAX_IMAGE_PIXELS = 2^22: a valid PNG can expand a thousandfold (a 1-bit
// one 8000-fold), so at the library's limit (179 M pixels) a legitimate input could take longer
// than the 1 s per input that marks a hang.
#include <arcnet/data/decode.hpp>

#include "fuzz_util.hpp"

namespace {
void check(arcnet::data::image const& img) {
  if (img.channels != 3 || img.width <= 0 || img.height <= 0 ||
      img.pixels.size() != static_cast<std::size_t>(img.width) * static_cast<std::size_t>(img.height) * 3)
    std::abort();  // a decoder returned an inconsistent image: a finding
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  try {
    check(arcnet::data::decode_image(data, size, "fuzz input"));
    if (size >= 2 && data[0] == 0xFF && data[1] == 0xD8) check(arcnet::data::decode_image(data, size, "fuzz input", 16, 16));
  } catch (arcnet::error const&) {
  }
  return 0;
}
