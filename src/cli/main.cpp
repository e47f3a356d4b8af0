// optiq: command dispatcher. Subcommands live in src/cli/cmd_*.cpp.
#include <cstdio>
#include <cstring>
#include <string>

#include "cli/commands.h"

namespace {

struct Command {
  const char* name;
  int (*fn)(int, char**);
  const char* help;
};

const Command kCommands[] = {
    {"generate", optiq::cli::cmd_generate, "generate text (AR, block diffusion, self-speculation)"},
    {"bench", optiq::cli::cmd_bench, "measure tok/s per decoding mode and weight bandwidth"},
    {"init-random", optiq::cli::cmd_init_random, "write a random-weight checkpoint for a config"},
    {"tokenize", optiq::cli::cmd_tokenize, "show the token ids of a text (tokenizer.json)"},
    {"serve", optiq::cli::cmd_serve, "OpenAI- and Anthropic-compatible HTTP server"},
    {"chat-template", optiq::cli::cmd_chat_template, "render a conversation with the model's chat template"},
    {"convert", optiq::cli::cmd_convert, "quantize to MLX affine mixed precision (OptIQ sensitivity)"},
    {"eval", optiq::cli::cmd_eval, "KL against a reference model and held-out perplexity"},
    {"lora", optiq::cli::cmd_lora, "LoRA adapters: train, info, fuse"},
    {"train", optiq::cli::cmd_train, "train every parameter of a model (from random or existing weights)"},
};

void usage() {
  std::fprintf(stderr, "usage: optiq <command> [options]\n\ncommands:\n");
  for (const auto& c : kCommands) std::fprintf(stderr, "  %-14s %s\n", c.name, c.help);
  std::fprintf(stderr, "\n`optiq <command> --help` describes a command's options.\n");
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 2 || !std::strcmp(argv[1], "--help") || !std::strcmp(argv[1], "-h")) {
    usage();
    return argc < 2 ? 2 : 0;
  }
  for (const auto& c : kCommands)
    if (!std::strcmp(argv[1], c.name)) return c.fn(argc - 1, argv + 1);
  std::fprintf(stderr, "optiq: unknown command '%s'\n", argv[1]);
  usage();
  return 2;
}
