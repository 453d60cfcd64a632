#pragma once
// JPEG through libjpeg-turbo's TurboJPEG API. TurboJPEG catches libjpeg's error_exit (its own
// setjmp) and returns -1 with a message, so no longjmp crosses our frames.
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include <turbojpeg.h>

#include "arcnet/core/error.hpp"
#include "arcnet/data/detail/image_file.hpp"
#include "arcnet/data/image.hpp"

namespace arcnet::detail {

/// Owns a tjhandle.
class data_tj_handle {
 public:
  explicit data_tj_handle(bool compress) : handle_(compress ? tjInitCompress() : tjInitDecompress()) {}
  data_tj_handle(data_tj_handle const&) = delete;
  data_tj_handle& operator=(data_tj_handle const&) = delete;
  ~data_tj_handle() {
    if (handle_) tjDestroy(handle_);
  }
  tjhandle get() const { return handle_; }
  /// Replaces the handle by a fresh decompressor.
  void reset_decompressor() {
    if (handle_) tjDestroy(handle_);
    handle_ = tjInitDecompress();
  }

 private:
  tjhandle handle_;
};

/// This thread's decompressor: creating one per image would cost an allocation and libjpeg setup.
inline data_tj_handle& data_tj_decompressor_slot() {
  thread_local data_tj_handle handle(false);
  return handle;
}
inline tjhandle data_tj_decompressor() {
  data_tj_handle& handle = data_tj_decompressor_slot();
  if (!handle.get()) handle.reset_decompressor();  // a previous reset may have failed
  if (!handle.get()) raise<io_error>("TurboJPEG: cannot create a decompressor: ", tjGetErrorStr2(nullptr));
  return handle.get();
}

/// Replaces this thread's decompressor when a decode fails (on scope exit, unless ok is set).
/// TurboJPEG 2.1 can leave a handle mid-header after an error (tjDecompressHeader3 returns
/// without aborting libjpeg's state): the next, valid, image then read as 0x0 or as garbage
/// tables, so one bad file broke every later JPEG of that loader thread. Found by fuzzing.
struct data_tj_reset_on_failure {
  bool ok = false;
  data_tj_reset_on_failure() = default;
  data_tj_reset_on_failure(data_tj_reset_on_failure const&) = delete;
  data_tj_reset_on_failure& operator=(data_tj_reset_on_failure const&) = delete;
  ~data_tj_reset_on_failure() {
    if (!ok) data_tj_decompressor_slot().reset_decompressor();
  }
};

/// The scale (1/1, 1/2, 1/4 or 1/8) whose output is smallest while still at least
/// min_width x min_height; 1/1 when no hint (both <= 0) or the image is not large enough.
inline tjscalingfactor data_jpeg_scale_for(int width, int height, int min_width, int min_height) {
  tjscalingfactor best{1, 1};
  if (min_width <= 0 && min_height <= 0) return best;
  for (int denom : {2, 4, 8}) {
    tjscalingfactor f{1, denom};
    if (TJSCALED(width, f) >= min_width && TJSCALED(height, f) >= min_height) best = f;
  }
  return best;
}

/// Decodes a JPEG to RGB; grey becomes R = G = B, CMYK (Adobe, stored inverted) is converted as
/// Pillow's convert("RGB") does. `name` only for messages.
inline data::image data_decode_jpeg(std::uint8_t const* bytes, std::size_t size, std::string const& name,
                                    int min_width = 0, int min_height = 0) {
  tjhandle tj = data_tj_decompressor();
  data_tj_reset_on_failure guard;
  int width = 0, height = 0, subsamp = 0, colorspace = 0;
  if (tjDecompressHeader3(tj, bytes, static_cast<unsigned long>(size), &width, &height, &subsamp, &colorspace) != 0)
    raise<io_error>("cannot decode image '", name, "': corrupt JPEG header (", tjGetErrorStr2(tj), ")");
  if (width <= 0 || height <= 0 ||
      static_cast<std::size_t>(width) * static_cast<std::size_t>(height) > data_max_image_pixels)
    raise<io_error>("cannot decode image '", name, "': JPEG of ", width, "x", height,
                    " pixels is empty or larger than the limit of ", data_max_image_pixels, " pixels");
  // Every 8x8 block of a Huffman-coded JPEG (baseline or progressive) costs at least one bit (its
  // DC code), and the components together have at least one block per 128 pixels (sampling
  // factors 4x1 and 1x4), so a complete file holds at least one byte per 1024 pixels. A header
  // that claims more is truncated or corrupt; libjpeg would still decode (and allocate) it all,
  // painting the missing part grey: seconds and gigabytes for a few bytes. Up to 2^20 pixels
  // always go through (cheap; an arithmetic-coded flat image may compress further).
  std::size_t const pixels = static_cast<std::size_t>(width) * static_cast<std::size_t>(height);
  if (pixels > (std::size_t(1) << 20) && pixels / 1024 > size)
    raise<io_error>("cannot decode image '", name, "': truncated or corrupt JPEG: the header says ", width, "x",
                    height, " pixels, which need more than the ", size, " bytes of the file");
  tjscalingfactor const f = data_jpeg_scale_for(width, height, min_width, min_height);
  int const w = TJSCALED(width, f), h = TJSCALED(height, f);
  bool const cmyk = colorspace == TJCS_CMYK || colorspace == TJCS_YCCK;
  int const pixel_format = cmyk ? TJPF_CMYK : TJPF_RGB;
  int const pixel_size = cmyk ? 4 : 3;
  std::vector<std::uint8_t> buffer(static_cast<std::size_t>(w) * static_cast<std::size_t>(h) * pixel_size);
  // Flags 0: accurate integer IDCT and fancy upsampling, libjpeg's defaults, as Pillow decodes.
  int const rc = tjDecompress2(tj, bytes, static_cast<unsigned long>(size), buffer.data(), w, w * pixel_size, h,
                               pixel_format, 0);
  if (rc != 0) {
    char const* message = tjGetErrorStr2(tj);
    // A warning leaves a complete image. libjpeg warns about truncated data ("Premature end of
    // JPEG file", the rest painted grey): that is an error, as Pillow's "image file is truncated".
    // Other warnings (e.g. extraneous bytes before a marker) are tolerated, as in Pillow.
    bool const truncated = std::strstr(message, "Premature end") != nullptr;
    if (tjGetErrorCode(tj) != TJERR_WARNING || truncated)
      raise<io_error>("cannot decode image '", name, "': ", truncated ? "truncated" : "corrupt", " JPEG (", message,
                      ")");
  }
  guard.ok = rc == 0;  // after a tolerated warning too, the next image starts with a fresh handle
  if (!cmyk) return data::image{w, h, 3, std::move(buffer)};
  data::image out{w, h, 3, std::vector<std::uint8_t>(static_cast<std::size_t>(w) * h * 3)};
  auto muldiv255 = [](int a, int b) {
    int t = a * b + 128;
    return ((t >> 8) + t) >> 8;
  };
  std::size_t const n = static_cast<std::size_t>(w) * h;
  for (std::size_t i = 0; i < n; ++i) {
    int const nk = buffer[4 * i + 3];  // inverted storage: the byte is 255 - K
    for (int c = 0; c < 3; ++c) {
      int const v = nk - muldiv255(255 - buffer[4 * i + c], nk);
      out.pixels[3 * i + c] = static_cast<std::uint8_t>(v < 0 ? 0 : v);
    }
  }
  return out;
}

/// A JPEG of img (1 channel: greyscale; 3: RGB with 4:2:0 chroma, Pillow's default) at `quality` 1..100.
inline std::vector<std::uint8_t> data_encode_jpeg(data::image const& img, int quality, char const* op) {
  data_check_image(img, op);
  if (img.channels == 4) raise<shape_error>(op, ": JPEG has no alpha channel; got an image with 4 channels");
  if (img.empty()) raise<shape_error>(op, ": cannot write an empty ", img.width, "x", img.height, " image as JPEG");
  if (quality < 1 || quality > 100) raise<config_error>(op, ": JPEG quality must be in 1..100, got ", quality);
  data_tj_handle tj(true);
  if (!tj.get()) raise<io_error>(op, ": cannot create a TurboJPEG compressor: ", tjGetErrorStr2(nullptr));
  unsigned char* jpeg = nullptr;
  unsigned long jpeg_size = 0;
  bool const grey = img.channels == 1;
  int const rc = tjCompress2(tj.get(), img.pixels.data(), img.width, static_cast<int>(img.stride()), img.height,
                             grey ? TJPF_GRAY : TJPF_RGB, &jpeg, &jpeg_size, grey ? TJSAMP_GRAY : TJSAMP_420,
                             quality, 0);
  if (rc != 0) {
    std::string message = tjGetErrorStr2(tj.get());
    if (jpeg) tjFree(jpeg);
    raise<io_error>(op, ": JPEG compression failed: ", message);
  }
  std::vector<std::uint8_t> out(jpeg, jpeg + jpeg_size);
  tjFree(jpeg);
  return out;
}

}  // namespace arcnet::detail
