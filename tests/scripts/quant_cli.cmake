# `optiq convert` / `optiq eval` end to end on dhara-tiny (static method: no calibration forwards,
# so this stays fast; the measured path is covered by tests/quant/convert_test.cpp).
set(QUANT_CLI_FIXTURE ${CMAKE_SOURCE_DIR}/../shared/fixtures/dhara-tiny)
set(QUANT_CLI_OUT ${CMAKE_BINARY_DIR}/quant_cli_out)
add_test(NAME quant_cli_convert_static
  COMMAND optiq convert ${QUANT_CLI_FIXTURE} -o ${QUANT_CLI_OUT} --method static --quiet --threads 1)
set_tests_properties(quant_cli_convert_static PROPERTIES PASS_REGULAR_EXPRESSION "wrote .*static_mixed")
add_test(NAME quant_cli_eval_kl
  COMMAND optiq eval ${QUANT_CLI_OUT}/static_mixed --task kl --reference ${QUANT_CLI_FIXTURE}
          --baseline ${QUANT_CLI_OUT}/uniform_4bit --n-samples 1 --seq-len 64 --threads 1 --quiet)
set_tests_properties(quant_cli_eval_kl PROPERTIES DEPENDS quant_cli_convert_static
  PASS_REGULAR_EXPRESSION "causal mean.*\n.*static_mixed +[0-9.]+ +[0-9.]+ +[0-9.]+ +[0-9.]+\n.*uniform_4bit")
add_test(NAME quant_cli_eval_perplexity
  COMMAND optiq eval ${QUANT_CLI_OUT}/static_mixed --task perplexity --reference ${QUANT_CLI_FIXTURE}
          --max-windows 1 --seq-len 128 --threads 1 --quiet)
set_tests_properties(quant_cli_eval_perplexity PROPERTIES DEPENDS quant_cli_convert_static
  PASS_REGULAR_EXPRESSION "perplexity +nll/token")
add_test(NAME quant_cli_convert_rejects_bad_bits
  COMMAND optiq convert ${QUANT_CLI_FIXTURE} -o ${QUANT_CLI_OUT}/bad --candidate-bits 4,7 --quiet)
set_tests_properties(quant_cli_convert_rejects_bad_bits PROPERTIES WILL_FAIL TRUE)
