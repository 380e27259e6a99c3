// Byte shuffle (posttrain §7.1 step 2): groups the bytes of a serialised artifact by offset modulo a stride
// (the high and low bytes of fp16 values apart), which helps the entropy coder that follows.
#pragma once

#include <string>

namespace pgolf {

// "BSHF" + one stride byte + the bytes at offsets 0, s, 2s, … then 1, 1+s, … up to lane s−1. stride 1..255.
std::string byte_shuffle(const std::string& raw, int stride = 2);

// Inverse of byte_shuffle. Input that does not begin with "BSHF" is returned unchanged; a malformed header
// (no stride byte, stride 0) throws std::runtime_error.
std::string byte_unshuffle(const std::string& data);

// What a compressor hands its codec: byte_shuffle(raw, 2) when `shuffle`; otherwise raw itself, unless raw
// happens to begin with "BSHF" — then it is escaped as a stride-1 shuffle (the identity plus a header), so
// that byte_unshuffle(shuffle_for_codec(raw, any)) == raw for every input.
std::string shuffle_for_codec(const std::string& raw, bool shuffle);

}  // namespace pgolf
