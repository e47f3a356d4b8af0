# Differential tokenizer test against @lenml/tokenizers (npm, pinned 3.7.2): 5,000 lines of brown.txt plus
# generated adversarial strings, with and without special tokens, for the three fixture tokenizers.
# Registered only when node and npm exist; the npm package is installed into the build tree by a setup test.
find_program(OPTIQ_NODE node)
find_program(OPTIQ_NPM npm)
if(OPTIQ_NODE AND OPTIQ_NPM)
  add_test(NAME tokenizer_diff_npm_install
           COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/setup_npm.sh ${CMAKE_BINARY_DIR}/npm)
  set_tests_properties(tokenizer_diff_npm_install PROPERTIES FIXTURES_SETUP tokenizer_npm TIMEOUT 300)
  add_test(NAME tokenizer_diff
           COMMAND ${OPTIQ_NODE} ${CMAKE_SOURCE_DIR}/tests/scripts/tokenizer_diff/diff.cjs
                   --optiq $<TARGET_FILE:optiq>
                   --node-modules ${CMAKE_BINARY_DIR}/npm/node_modules
                   --brown ${CMAKE_SOURCE_DIR}/../shared/data/brown.txt
                   --lines 5000 --adversarial 1500
                   --work ${CMAKE_BINARY_DIR}/tokenizer_diff
                   ${CMAKE_SOURCE_DIR}/../shared/fixtures/tokenizers/llama3
                   ${CMAKE_SOURCE_DIR}/../shared/fixtures/tokenizers/qwen3
                   ${CMAKE_SOURCE_DIR}/../shared/fixtures/tokenizers/gemma3)
  set_tests_properties(tokenizer_diff PROPERTIES FIXTURES_REQUIRED tokenizer_npm TIMEOUT 600)
else()
  message(STATUS "node/npm not found: the tokenizer_diff test is not registered")
endif()

# The inspection commands (no npm needed).
set(OPTIQ_DHARA ${CMAKE_SOURCE_DIR}/../shared/fixtures/dhara-tiny)
add_test(NAME cli_tokenize_ids
         COMMAND $<TARGET_FILE:optiq> tokenize --model ${OPTIQ_DHARA} --text "Hi<|im_end|>" --ids)
set_tests_properties(cli_tokenize_ids PROPERTIES PASS_REGULAR_EXPRESSION "^72 105 258\n$")
add_test(NAME cli_chat_template
         COMMAND $<TARGET_FILE:optiq> chat-template --model ${OPTIQ_DHARA} --messages "[{\"role\": \"user\", \"content\": \"hi\"}]")
set_tests_properties(cli_chat_template PROPERTIES
                     PASS_REGULAR_EXPRESSION "^<\\|im_start\\|>user\nhi<\\|im_end\\|>\n<\\|im_start\\|>assistant\n$")
add_test(NAME cli_chat_template_error
         COMMAND $<TARGET_FILE:optiq> chat-template --model ${CMAKE_SOURCE_DIR}/../shared/fixtures/tokenizers/gemma3
                 --messages "[{\"role\": \"user\", \"content\": \"a\"}, {\"role\": \"user\", \"content\": \"b\"}]")
set_tests_properties(cli_chat_template_error PROPERTIES WILL_FAIL TRUE)
