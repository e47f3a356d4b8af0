# optiq serve integration tests: start `optiq serve` on a free loopback port with the bundled model and
# drive it with the official OpenAI and Anthropic SDKs from npm (pinned in tests/scripts/serve/), a
# corpus of malformed requests, `optiq generate` comparisons per decoding mode, and a bounded load test.
# Registered only when node and npm exist; the SDKs are installed into the build tree by a setup test.
find_program(OPTIQ_SERVE_NODE node)
find_program(OPTIQ_SERVE_NPM npm)
if(OPTIQ_SERVE_NODE AND OPTIQ_SERVE_NPM)
  set(_serve_dir ${CMAKE_SOURCE_DIR}/tests/scripts/serve)
  set(_serve_args --optiq $<TARGET_FILE:optiq> --model ${CMAKE_SOURCE_DIR}/models/dhara-brown-tiny)
  add_test(NAME serve_npm_install
           COMMAND bash ${CMAKE_SOURCE_DIR}/scripts/setup_serve_npm.sh ${CMAKE_BINARY_DIR}/serve-npm)
  set_tests_properties(serve_npm_install PROPERTIES FIXTURES_SETUP serve_npm TIMEOUT 300)
  add_test(NAME serve_sdk COMMAND ${OPTIQ_SERVE_NODE} ${_serve_dir}/sdk.mjs ${_serve_args}
           --node-modules ${CMAKE_BINARY_DIR}/serve-npm/node_modules)
  set_tests_properties(serve_sdk PROPERTIES FIXTURES_REQUIRED serve_npm TIMEOUT 300)
  add_test(NAME serve_malformed COMMAND ${OPTIQ_SERVE_NODE} ${_serve_dir}/malformed.mjs ${_serve_args})
  set_tests_properties(serve_malformed PROPERTIES TIMEOUT 300)
  add_test(NAME serve_equal_generate COMMAND ${OPTIQ_SERVE_NODE} ${_serve_dir}/equal_generate.mjs ${_serve_args})
  set_tests_properties(serve_equal_generate PROPERTIES TIMEOUT 300)
  # A canvas-diffusion model (dgemma-tiny + the synthetic tokenizer) with text and image requests.
  add_test(NAME serve_canvas
           COMMAND ${OPTIQ_SERVE_NODE} ${_serve_dir}/canvas.mjs --optiq $<TARGET_FILE:optiq>
                   --model ${CMAKE_SOURCE_DIR}/../shared/fixtures/dgemma-tiny
                   --tokenizer ${CMAKE_SOURCE_DIR}/tests/serve/data/dgemma-tiny-tokenizer
                   --node-modules ${CMAKE_BINARY_DIR}/serve-npm/node_modules)
  set_tests_properties(serve_canvas PROPERTIES FIXTURES_REQUIRED serve_npm TIMEOUT 300)
  # LoRA adapters mounted on dhara-tiny, chosen per request through the SDKs.
  add_test(NAME serve_adapters
           COMMAND ${OPTIQ_SERVE_NODE} ${_serve_dir}/adapters.mjs --optiq $<TARGET_FILE:optiq>
                   --model ${CMAKE_SOURCE_DIR}/../shared/fixtures/dhara-tiny
                   --node-modules ${CMAKE_BINARY_DIR}/serve-npm/node_modules)
  set_tests_properties(serve_adapters PROPERTIES FIXTURES_REQUIRED serve_npm TIMEOUT 300)
  # 32 concurrent streaming clients × 20 requests with random disconnects; short outputs keep it CI-sized.
  add_test(NAME serve_load COMMAND ${OPTIQ_SERVE_NODE} ${_serve_dir}/load.mjs ${_serve_args}
           --clients 32 --requests 20 --max-tokens 24 --disconnect 0.3)
  set_tests_properties(serve_load PROPERTIES TIMEOUT 300)
else()
  message(STATUS "node/npm not found: the optiq serve integration tests are not registered")
endif()
