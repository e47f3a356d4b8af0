// Bit allocation (specs/mlx-format.md §10–§11): OptIQ's greedy knapsack with structural guards,
// and the static (structural-priority) scores for `--method static`.
//
// Greedy: start every layer at the lowest candidate; protected layers (outputs/embeddings, anything
// outside a `layers.N` block, routers, shared experts, the first and last n_protect blocks) have
// their KL ×100; per block the n_floor_per_block most sensitive components (attention projections
// first: 2 reserved slots with full q/k/v/o attention, else 1; blocks without full attention
// floor at most 1) start at the second-lowest candidate; then a max-heap on
// ΔKL / (Δbits · params) upgrades one tier at a time while nominal BPW (Σ bits·params / Σ params
// over the scored layers) is below the target, so the target is a floor. Finally the low-bit run
// guard: in a run of more than max_low_bit_run consecutive blocks with over half their components
// at the lowest width, every 3rd block of the run gets its most sensitive lowest-width component
// raised one tier.
#pragma once

#include <map>
#include <string>
#include <vector>

#include "quant/sensitivity.h"

namespace optiq {

struct AllocationOptions {
  double target_bpw = 4.5;
  std::vector<int> candidate_bits{4, 8};  // may include 16 (keep float)
  int n_protect = 1;
  int n_floor_per_block = 2;
  int max_low_bit_run = 3;
};

struct Allocation {
  std::map<std::string, int> bits;  // every scored layer
  double achieved_bpw = 0;          // nominal, after the run guard
  int n_floor_raised = 0, n_greedy_upgrades = 0, n_guard_raised = 0;
};

// Bit widths for `layers` (each must have a KL for every candidate). InvalidArgument on an empty
// candidate set or a missing KL.
Result<Allocation> allocate_bits(const std::vector<LayerSensitivity>& layers, const AllocationOptions& opts);

// §11 structural priorities p ∈ (0, 1], encoded as kl[b] = p·(hi − b)/(hi − lo) for the given
// layers (names and parameter counts), so allocate_bits can use them.
std::vector<LayerSensitivity> static_sensitivity(const std::vector<QuantCandidate>& layers,
                                                 const std::vector<int>& candidate_bits);

// The `layers.N` block index of a module path, or -1 outside any block.
int block_index(const std::string& name);
// Protected by name (§10.2; the first/last block rule needs the block count and is applied by
// allocate_bits).
bool protected_by_name(const std::string& name);

}  // namespace optiq
