// Hugging Face model ids (ORG/NAME[@REVISION]) resolved to a local directory through the Hub's cache
// layout, downloading what is missing over the Hub HTTP API. The layout is huggingface_hub's, so a cache
// it filled serves optiq and the other way round:
//   <cache>/models--ORG--NAME/refs/<revision>         the commit sha a branch or tag points at
//   <cache>/models--ORG--NAME/blobs/<etag>            file contents, named by the Hub's ETag
//   <cache>/models--ORG--NAME/snapshots/<sha>/<file>  relative symlinks into blobs/
// docs/models.md describes ids, the cache, the environment variables and offline use.
#pragma once

#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#include "core/status.h"

namespace optiq {

struct HubRepoId {
  std::string org, name;
  std::string revision = "main";  // a branch, tag or 40-hex commit sha
  std::string repo() const { return org + "/" + name; }
};

// "ORG/NAME" or "ORG/NAME@REV": exactly one '/', names of [A-Za-z0-9._-] not starting with '.' or '-'
// and without "..". Anything else (an absolute or ./ path, a/b/c) is not an id: InvalidArgument.
Result<HubRepoId> parse_hub_repo_id(const std::string& s);

struct HubOptions {
  std::string cache_dir;  // the hub cache (the directory holding models--ORG--NAME)
  std::string endpoint;   // scheme://host[:port][/prefix], no trailing '/'
  std::string token;      // sent as "Authorization: Bearer" to the endpoint's host only; empty: none
  bool offline = false;   // no network: the cache must hold the snapshot
  std::FILE* progress = stderr;  // a bar per file on a TTY, else one summary line per file; nullptr: silent
  int retries = 2;               // resumed attempts after a dropped connection, per file
  int timeout_s = 60;            // connect and read timeout
};

// The options the environment asks for: cache from $HF_HUB_CACHE, else $HF_HOME/hub, else
// $XDG_CACHE_HOME/huggingface/hub, else ~/.cache/huggingface/hub; endpoint from $HF_ENDPOINT, else
// https://huggingface.co; token from $HF_TOKEN, else the file $HF_TOKEN_PATH, else $HF_HOME/token;
// offline when $HF_HUB_OFFLINE is 1/true/yes/on.
HubOptions hub_options_from_env();

// Whether a Hub file is one a model needs (the download filter; docs/models.md): top-level files only,
// config.json, generation_config.json, *.safetensors, *.safetensors.index.json, tokenizer.json,
// tokenizer_config.json, special_tokens_map.json, chat_template.jinja/.json, preprocessor_config.json,
// processor_config.json, adapter_config.json.
bool hub_file_wanted(const std::string& rfilename);

// `model` as a directory: an existing local directory as given (it always wins over an id); an id's
// snapshot directory in the cache, downloading missing files unless offline; anything else unchanged,
// for the loader to report. Errors name the repo, the file and what to do (token, offline, resume).
Result<std::string> resolve_model_path(const std::string& model, const HubOptions& opts);

// The snapshot directory of `id` in `opts.cache_dir` when it is complete, without network; NotFound
// naming what is missing (the ref, the snapshot, config.json, a weight shard, a dangling blob) otherwise.
Result<std::string> cached_snapshot(const HubRepoId& id, const HubOptions& opts);

}  // namespace optiq
