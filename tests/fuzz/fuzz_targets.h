// Fuzz entry points shared by the libFuzzer targets (tests/fuzz/*_fuzz.cpp, clang + -DOPTIQ_FUZZ=ON) and the
// corpus replay test that runs in every build (tests/fuzz/fuzz_replay_test.cpp). Each must never crash, leak
// or hit undefined behaviour, whatever the bytes; OPTIQ_CHECK marks what they assert about accepted input.
// Defined once in fuzz_targets.cpp, so each fuzz binary compiles only its own small main file.
#pragma once

#include <cstddef>
#include <cstdint>

namespace optiq::fuzz {

// Bytes as tokenizer.json text: load, then encode/decode a few strings (including the input itself).
void tokenizer_json(const uint8_t* data, size_t size);

// Bytes as a chat template, optionally followed by "\x00" and a JSON object of variables; rendered
// against a fixed conversation merged with those variables.
void jinja_template(const uint8_t* data, size_t size);

// Bytes as a safetensors file, parsed in memory with the loader's full header validation; every
// tensor view it accepts is read end to end (ASan flags a view leaving the buffer) and checked
// against its shape and dtype.
void safetensors(const uint8_t* data, size_t size);

// Bytes as config.json, optionally followed by "\0" and generation_config.json: the checks
// ModelDir::open makes, then load_model with no tensors (each architecture parses and validates its
// whole config before it looks for a weight), eos ids and the canvas sampler defaults.
void model_config(const uint8_t* data, size_t size);

// Bytes as an HTTP request body for each API the server speaks (OpenAI chat, completions and
// responses, Anthropic messages); whatever parses is resolved against a block-diffusion and a canvas
// model and formatted back through the API's response writer, streaming and not.
void request_body(const uint8_t* data, size_t size);

// Bytes as an image file: decode (stb_image sniffs the format) up to kImageMaxPixels, then the vision
// preprocessing (target size and antialiased resize). The cap keeps each run fast: a 100-byte RLE TGA
// may claim 40 megapixels, which decode_image accepts by design but takes seconds under ASan.
inline constexpr int64_t kImageMaxPixels = int64_t{1} << 16;
void image_decode(const uint8_t* data, size_t size);

}  // namespace optiq::fuzz
