# optiq bench smoke tests: the JSON carries the keys the issues name (numbers are not asserted).
add_test(NAME cli_bench_dhara
  COMMAND optiq bench --prompt-len 8 --gen-len 8 --repeats 1 --no-bandwidth --threads 1 --json)
set_tests_properties(cli_bench_dhara PROPERTIES
  PASS_REGULAR_EXPRESSION "\"ar_tok_s\".*\"ar_weight_bytes_per_token\".*\"block_forward_ms\".*\"diffusion_tok_s\".*\"forwards_per_token\".*\"selfspec_tok_s\"")
add_test(NAME cli_bench_canvas
  COMMAND optiq bench --model ${CMAKE_SOURCE_DIR}/../shared/fixtures/dgemma-tiny --prompt-len 8 --gen-len 16
          --repeats 1 --threads 1 --json)
set_tests_properties(cli_bench_canvas PROPERTIES
  PASS_REGULAR_EXPRESSION "\"confidence-threshold\".*\"steps_per_canvas\".*\"tok_s\".*\"tokens_per_forward\".*\"confidence_over_entropy_speed\"")
# With the bandwidth probe (1 GiB): the weight-only and whole-roofline fractions are reported.
add_test(NAME cli_bench_dhara_bandwidth
  COMMAND optiq bench --prompt-len 8 --gen-len 8 --repeats 1 --threads 1 --json)
set_tests_properties(cli_bench_dhara_bandwidth PROPERTIES
  PASS_REGULAR_EXPRESSION "\"ar_bandwidth_fraction\".*\"ar_roofline_bytes_per_forward\".*\"ar_roofline_fraction\".*\"measured_read_gbps\"")
