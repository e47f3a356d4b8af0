# optiq init-random for every registered architecture (through the registry, no per-type code in the
# CLI), then optiq bench on the random DiffusionGemma checkpoint.
set(INIT_RANDOM_OUT ${CMAKE_BINARY_DIR}/init_random_out)
add_test(NAME cli_init_random_dhara
  COMMAND optiq init-random --config ${CMAKE_SOURCE_DIR}/../shared/fixtures/dhara-tiny/config.json
          -o ${INIT_RANDOM_OUT}/dhara --seed 3)
set_tests_properties(cli_init_random_dhara PROPERTIES PASS_REGULAR_EXPRESSION "wrote .*init_random_out/dhara")
add_test(NAME cli_init_random_dgemma
  COMMAND optiq init-random --config ${CMAKE_SOURCE_DIR}/bench/configs/diffusion-gemma-tiny.json
          -o ${INIT_RANDOM_OUT}/dgemma --dtype f32)
set_tests_properties(cli_init_random_dgemma PROPERTIES PASS_REGULAR_EXPRESSION "wrote .*init_random_out/dgemma")
add_test(NAME cli_bench_random_dhara
  COMMAND optiq bench --model ${INIT_RANDOM_OUT}/dhara --prompt-len 8 --gen-len 8 --repeats 1 --no-bandwidth
          --threads 1 --json)
set_tests_properties(cli_bench_random_dhara PROPERTIES DEPENDS cli_init_random_dhara
  PASS_REGULAR_EXPRESSION "\"ar_tok_s\".*\"model_type\": \"dhara_ar\"")
add_test(NAME cli_bench_random_dgemma
  COMMAND optiq bench --model ${INIT_RANDOM_OUT}/dgemma --prompt-len 8 --gen-len 16 --repeats 1 --threads 1 --json)
set_tests_properties(cli_bench_random_dgemma PROPERTIES DEPENDS cli_init_random_dgemma
  PASS_REGULAR_EXPRESSION "\"confidence-threshold\".*\"model_type\": \"diffusion_gemma\"")
# A config without model_type: the error names the file and lists the registered types.
add_test(NAME cli_init_random_rejects_unknown_type
  COMMAND optiq init-random --config ${CMAKE_SOURCE_DIR}/tests/serve/data/dgemma-tiny-tokenizer/tokenizer_config.json
          -o ${INIT_RANDOM_OUT}/none)
set_tests_properties(cli_init_random_rejects_unknown_type PROPERTIES
  PASS_REGULAR_EXPRESSION "tokenizer_config.json: config: missing string field model_type \\(known: dhara_ar, diffusion_gemma\\)")
