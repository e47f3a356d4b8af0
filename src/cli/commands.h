// Subcommands of the `optiq` binary. Each parses its own flags and calls the library.
// Returns the process exit code.
#pragma once

namespace optiq::cli {

int cmd_generate(int argc, char** argv);
int cmd_bench(int argc, char** argv);
int cmd_init_random(int argc, char** argv);
int cmd_tokenize(int, char**);
int cmd_chat_template(int, char**);
int cmd_serve(int, char**);
int cmd_convert(int argc, char** argv);
int cmd_eval(int argc, char** argv);
// optiq lora: dispatches train / info / fuse (cmd_lora.cpp).
int cmd_lora(int argc, char** argv);
// optiq lora train (cmd_lora_train.cpp); argv[0] is "train".
int cmd_lora_train(int argc, char** argv);
int cmd_train(int argc, char** argv);

}  // namespace optiq::cli
