#include "quant/allocation.h"

#include <algorithm>
#include <cmath>
#include <queue>
#include <regex>
#include <set>

namespace optiq {

namespace {

const char* const kAttnNames[] = {"q_proj",    "k_proj",    "v_proj",   "o_proj",   "in_proj_qkv",
                                  "in_proj_a", "in_proj_b", "in_proj_z", "out_proj", "qkv_proj",
                                  "wqkv",      "Wqkv",      "attn_qkv"};

std::string last_component(const std::string& name) {
  const size_t dot = name.rfind('.');
  return dot == std::string::npos ? name : name.substr(dot + 1);
}

bool is_attention(const std::string& name) {
  const std::string last = last_component(name);
  for (const char* a : kAttnNames)
    if (last == a) return true;
  return false;
}

bool has_segment(const std::string& name, const std::string& seg) {
  size_t pos = 0;
  while ((pos = name.find(seg, pos)) != std::string::npos) {
    const bool left = pos == 0 || name[pos - 1] == '.';
    const bool right = pos + seg.size() == name.size() || name[pos + seg.size()] == '.';
    if (left && right) return true;
    pos += 1;
  }
  return false;
}

}  // namespace

int block_index(const std::string& name) {
  static const std::regex re(R"((^|\.)layers\.(\d+)(\.|$))");
  std::smatch m;
  if (!std::regex_search(name, m, re)) return -1;
  return std::stoi(m[2].str());
}

bool protected_by_name(const std::string& name) {
  for (const char* out : {"lm_head", "embed_tokens", "wte", "wpe", "output_proj", "embed_out", "head"})
    if (has_segment(name, out)) return true;
  if (block_index(name) < 0) return true;
  // MoE routers and shared experts.
  if (name.size() >= 9 && name.compare(name.size() - 9, 9, ".mlp.gate") == 0) return true;
  if (has_segment(name, "router")) return true;
  if (name.find(".shared_expert") != std::string::npos) return true;  // .shared_expert(s).
  return false;
}

Result<Allocation> allocate_bits(const std::vector<LayerSensitivity>& layers, const AllocationOptions& opts) {
  std::vector<int> cand = opts.candidate_bits;
  std::sort(cand.begin(), cand.end());
  cand.erase(std::unique(cand.begin(), cand.end()), cand.end());
  if (cand.empty()) return Status::InvalidArgument("allocation: no candidate bits");
  const size_t n_tiers = cand.size();
  struct Item {
    const LayerSensitivity* l;
    std::vector<double> kl;  // per tier, protection applied
    int block;
    size_t tier = 0;
  };
  std::vector<Item> items;
  int n_blocks = 0;
  for (const auto& l : layers) {
    Item it{&l, {}, block_index(l.name)};
    for (int b : cand) {
      auto k = l.kl.find(b);
      if (k == l.kl.end())
        return Status::InvalidArgument("allocation: layer " + l.name + " has no KL for " + std::to_string(b) + " bits");
      it.kl.push_back(k->second);
    }
    n_blocks = std::max(n_blocks, it.block + 1);
    items.push_back(std::move(it));
  }
  for (auto& it : items) {
    const bool edge = it.block >= 0 && (it.block < opts.n_protect || it.block >= n_blocks - opts.n_protect);
    if (protected_by_name(it.l->name) || edge)
      for (double& k : it.kl) k *= 100;
  }
  Allocation out;
  // Block-aware floor.
  if (n_tiers >= 2) {
    std::map<int, std::vector<Item*>> blocks;
    for (auto& it : items)
      if (it.block >= 0) blocks[it.block].push_back(&it);
    for (auto& [b, comps] : blocks) {
      std::set<std::string> lasts;
      for (Item* c : comps) lasts.insert(last_component(c->l->name));
      const bool full_attn = (lasts.count("q_proj") && lasts.count("k_proj") && lasts.count("v_proj") &&
                              lasts.count("o_proj")) ||
                             lasts.count("qkv_proj") || lasts.count("wqkv") || lasts.count("Wqkv") ||
                             lasts.count("attn_qkv");
      const int floor_n = full_attn ? opts.n_floor_per_block : std::min(opts.n_floor_per_block, 1);
      auto by_kl = [](const Item* a, const Item* b) { return a->kl[0] > b->kl[0]; };
      std::vector<Item*> attn, rest;
      for (Item* c : comps) (is_attention(c->l->name) ? attn : rest).push_back(c);
      std::stable_sort(attn.begin(), attn.end(), by_kl);
      const int reserved = std::min(floor_n, attn.empty() ? 0 : (full_attn ? 2 : 1));
      std::vector<Item*> chosen(attn.begin(), attn.begin() + std::min<size_t>(reserved, attn.size()));
      for (size_t i = chosen.size(); i < attn.size(); ++i) rest.push_back(attn[i]);
      std::stable_sort(rest.begin(), rest.end(), by_kl);
      for (Item* c : rest) {
        if (static_cast<int>(chosen.size()) >= floor_n) break;
        chosen.push_back(c);
      }
      for (Item* c : chosen) {
        c->tier = 1;
        ++out.n_floor_raised;
      }
    }
  }
  double total_params = 0, bit_params = 0;
  for (auto& it : items) {
    total_params += static_cast<double>(it.l->params);
    bit_params += static_cast<double>(it.l->params) * cand[it.tier];
  }
  auto bpw = [&] { return total_params > 0 ? bit_params / total_params : 0.0; };
  // Greedy upgrades, one tier at a time.
  using Entry = std::pair<double, size_t>;  // efficiency, item
  std::priority_queue<Entry> heap;
  auto push = [&](size_t i) {
    const Item& it = items[i];
    if (it.tier + 1 >= n_tiers) return;
    const double dkl = it.kl[it.tier] - it.kl[it.tier + 1];
    const double cost = static_cast<double>(cand[it.tier + 1] - cand[it.tier]) * static_cast<double>(it.l->params);
    heap.push({cost > 0 ? dkl / cost : 0.0, i});
  };
  for (size_t i = 0; i < items.size(); ++i) push(i);
  while (bpw() < opts.target_bpw && !heap.empty()) {
    const size_t i = heap.top().second;
    heap.pop();
    Item& it = items[i];
    bit_params += static_cast<double>(it.l->params) * (cand[it.tier + 1] - cand[it.tier]);
    ++it.tier;
    ++out.n_greedy_upgrades;
    push(i);
  }
  // Low-bit run guard.
  if (n_tiers >= 2 && n_blocks > 0) {
    std::vector<bool> low(static_cast<size_t>(n_blocks), false);
    for (int b = 0; b < n_blocks; ++b) {
      int n = 0, at_low = 0;
      for (auto& it : items)
        if (it.block == b) {
          ++n;
          at_low += it.tier == 0;
        }
      low[b] = n > 0 && 2 * at_low > n;
    }
    for (int b = 0; b < n_blocks;) {
      if (!low[b]) {
        ++b;
        continue;
      }
      int e = b;
      while (e < n_blocks && low[e]) ++e;
      if (e - b > opts.max_low_bit_run) {
        for (int k = b; k < e; ++k) {
          if ((k - b + 1) % 3 != 0) continue;
          Item* best = nullptr;
          for (auto& it : items)
            if (it.block == k && it.tier == 0 && (!best || it.kl[0] > best->kl[0])) best = &it;
          if (best) {
            bit_params += static_cast<double>(best->l->params) * (cand[1] - cand[0]);
            best->tier = 1;
            ++out.n_guard_raised;
          }
        }
      }
      b = e;
    }
  }
  for (auto& it : items) out.bits[it.l->name] = cand[it.tier];
  out.achieved_bpw = bpw();
  return out;
}

std::vector<LayerSensitivity> static_sensitivity(const std::vector<QuantCandidate>& layers,
                                                 const std::vector<int>& candidate_bits) {
  int n_blocks = 0;
  for (auto& l : layers) n_blocks = std::max(n_blocks, block_index(l.module) + 1);
  const int lo = *std::min_element(candidate_bits.begin(), candidate_bits.end());
  const int hi = *std::max_element(candidate_bits.begin(), candidate_bits.end());
  std::vector<LayerSensitivity> out;
  for (auto& l : layers) {
    const int b = block_index(l.module);
    const std::string last = last_component(l.module);
    double p;
    if (b < 0 || has_segment(l.module, "lm_head") || l.embedding) {
      p = 1.0;
    } else {
      const int edge_dist = std::min(b, n_blocks - 1 - b);
      if (edge_dist == 0) {
        p = 0.9;
      } else if (edge_dist == 1) {
        p = 0.65;
      } else {
        // Middle blocks taper from 0.45 next to the edges down to 0.30 at the centre.
        const double centre = (n_blocks - 1) / 2.0;
        const double span = std::max(centre - 2.0, 1.0);
        p = 0.30 + 0.15 * std::clamp(std::fabs(b - centre) / span, 0.0, 1.0);
      }
      if (is_attention(l.module)) p += 0.30;
      if (has_segment(l.module, "router") ||
          (l.module.size() >= 9 && l.module.compare(l.module.size() - 9, 9, ".mlp.gate") == 0))
        p += 0.40;
      if (l.module.find("experts") != std::string::npos && l.module.find("shared_expert") == std::string::npos)
        p -= 0.10;
      p = std::clamp(p, 0.01, 1.0);
    }
    LayerSensitivity s;
    s.name = l.module;
    s.params = l.params();
    for (int c : candidate_bits) s.kl[c] = hi == lo ? 0.0 : p * (hi - c) / static_cast<double>(hi - lo);
    out.push_back(std::move(s));
  }
  return out;
}

}  // namespace optiq
