#!/usr/bin/env python3
"""Builds data/calibration/default.jsonl, optiq convert's bundled calibration mix.

Schema (specs/mlx-format.md §12), one JSON object per line:
  {"domain": "prose", "text": ...}
  {"domain": "thought" | "code" | "agent" | "instruction", "messages": [...]}
  {"domain": "tool", "messages": [...], "tools": [...]}

Prose: paragraphs of the Brown corpus (shared/data/brown.txt) taken from the training split only
(everything but the last 200,000 bytes, which evaluation holds out), picked deterministically.
Chat samples: written for this file, covering thinking traces, code reasoning, agent loops, tool
calling and constraint-bearing instructions.

Usage: scripts/build_calibration.py [BROWN_TXT] [OUT_JSONL]
"""
import json
import sys

HELDOUT_BYTES = 200_000
N_PROSE = 40

CHAT = [
    ("thought", [
        {"role": "user", "content": "A train leaves at 9:40 and the trip takes 2 hours and 35 minutes. When does it arrive?"},
        {"role": "assistant", "content": "<think>Start at 9:40. Adding 2 hours gives 11:40. Adding 35 minutes to 11:40: 11:40 + 20 = 12:00, and 15 more minutes gives 12:15. So the arrival is 12:15.</think>\nThe train arrives at 12:15."},
    ]),
    ("thought", [
        {"role": "user", "content": "If three pencils cost 45 cents, how much do eight pencils cost?"},
        {"role": "assistant", "content": "<think>One pencil costs 45 / 3 = 15 cents. Eight pencils cost 8 x 15 = 120 cents, which is one dollar and twenty cents. Check: 3 pencils at 15 cents is 45 cents, consistent.</think>\nEight pencils cost $1.20."},
    ]),
    ("thought", [
        {"role": "user", "content": "Is 221 a prime number?"},
        {"role": "assistant", "content": "<think>The square root of 221 is a little under 15, so I only need to try primes up to 13. 221 is odd, so not divisible by 2. Digit sum 5, so not by 3. It does not end in 0 or 5. 7 x 31 = 217, remainder 4. 11 x 20 = 220, remainder 1. 13 x 17 = 221. So it is composite.</think>\nNo. 221 = 13 x 17."},
    ]),
    ("thought", [
        {"role": "user", "content": "My meeting is at 3 pm in London. What time is that in New York?"},
        {"role": "assistant", "content": "<think>New York is usually five hours behind London. Both cities shift for daylight saving, though on slightly different dates, so for most of the year the gap is five hours. 3 pm minus five hours is 10 am.</think>\nIt is 10 am in New York (except for a few weeks in spring and autumn when the gap is four hours, making it 11 am)."},
    ]),
    ("code", [
        {"role": "user", "content": "Why does this Python function return None?\n\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += x\n"},
        {"role": "assistant", "content": "The function never returns anything, and a Python function without a return statement returns None. Add the return after the loop:\n\ndef total(xs):\n    s = 0\n    for x in xs:\n        s += x\n    return s\n\nMake sure the return is not indented inside the loop, or it would stop after the first element."},
    ]),
    ("code", [
        {"role": "user", "content": "Write a C function that reverses a string in place."},
        {"role": "assistant", "content": "#include <string.h>\n\nvoid reverse(char *s) {\n    size_t n = strlen(s);\n    if (n < 2) return;\n    for (size_t i = 0, j = n - 1; i < j; i++, j--) {\n        char t = s[i];\n        s[i] = s[j];\n        s[j] = t;\n    }\n}\n\nTwo indices walk toward each other and swap characters until they meet, so the loop runs n/2 times and needs no extra memory. The early return avoids computing n - 1 when the string is empty."},
    ]),
    ("code", [
        {"role": "user", "content": "What is the time complexity of binary search, and why?"},
        {"role": "assistant", "content": "O(log n). Each comparison halves the range that can still contain the target: after k steps at most n / 2^k elements remain, and the search stops when that reaches one, which takes about log2(n) steps. It requires the array to be sorted; on an unsorted array the halving argument fails."},
    ]),
    ("code", [
        {"role": "user", "content": "In SQL, how do I count orders per customer and keep only customers with more than five orders?"},
        {"role": "assistant", "content": "SELECT customer_id, COUNT(*) AS n_orders\nFROM orders\nGROUP BY customer_id\nHAVING COUNT(*) > 5\nORDER BY n_orders DESC;\n\nWHERE filters rows before grouping, HAVING filters the groups after aggregation, which is why the count condition belongs in HAVING."},
    ]),
    ("agent", [
        {"role": "system", "content": "You are an agent that works in a shell. Think, then give exactly one command per turn."},
        {"role": "user", "content": "Find out which directory under /var/log uses the most disk space."},
        {"role": "assistant", "content": "I will measure each subdirectory and sort by size.\nCOMMAND: du -sh /var/log/* | sort -h | tail -n 5"},
        {"role": "user", "content": "OUTPUT:\n12M /var/log/apt\n48M /var/log/installer\n310M /var/log/journal"},
        {"role": "assistant", "content": "The journal directory is the largest at 310M. I can shrink it with journalctl --vacuum-size=100M if you want me to."},
    ]),
    ("agent", [
        {"role": "system", "content": "You are a coding agent. Plan, act, observe, repeat."},
        {"role": "user", "content": "The unit test test_parse_date fails. Fix it."},
        {"role": "assistant", "content": "Plan: run the failing test to read the error, open the parser, fix it, rerun.\nACTION: run_tests(\"test_parse_date\")"},
        {"role": "user", "content": "OBSERVATION: AssertionError: expected month 2, got 1 for input '2024-02-10'"},
        {"role": "assistant", "content": "The month is off by one, which suggests the parser subtracts one as if months were zero-based.\nACTION: open_file(\"dates.py\")"},
        {"role": "user", "content": "OBSERVATION: month = int(parts[1]) - 1"},
        {"role": "assistant", "content": "ACTION: edit_file(\"dates.py\", \"month = int(parts[1]) - 1\", \"month = int(parts[1])\")\nThen I will rerun the test to confirm."},
    ]),
    ("agent", [
        {"role": "user", "content": "Book a table for two at an Italian restaurant near the station tomorrow at 7 pm."},
        {"role": "assistant", "content": "Step 1: search restaurants near the station with cuisine Italian. Step 2: check availability for two people tomorrow at 19:00. Step 3: book the first one with a free table and report back the name and confirmation number."},
    ]),
    ("tool", [
        {"role": "user", "content": "What's the weather in Lisbon right now?"},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "get_weather", "arguments": {"city": "Lisbon", "unit": "celsius"}}}]},
        {"role": "tool", "content": "{\"temperature\": 19, \"condition\": \"partly cloudy\", \"wind_kph\": 14}"},
        {"role": "assistant", "content": "It is 19 degrees Celsius and partly cloudy in Lisbon, with a light wind of 14 km/h."},
    ], [{"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["celsius", "fahrenheit"]}}, "required": ["city"]}}}]),
    ("tool", [
        {"role": "user", "content": "Convert 250 US dollars to euros."},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "convert_currency", "arguments": {"amount": 250, "from": "USD", "to": "EUR"}}}]},
        {"role": "tool", "content": "{\"amount\": 231.75, \"rate\": 0.927}"},
        {"role": "assistant", "content": "250 US dollars is about 231.75 euros at a rate of 0.927."},
    ], [{"type": "function", "function": {"name": "convert_currency", "description": "Convert an amount between currencies",
        "parameters": {"type": "object", "properties": {"amount": {"type": "number"}, "from": {"type": "string"}, "to": {"type": "string"}}, "required": ["amount", "from", "to"]}}}]),
    ("tool", [
        {"role": "user", "content": "Add a reminder to call the dentist on Friday at 10."},
        {"role": "assistant", "content": "", "tool_calls": [{"type": "function", "function": {"name": "create_reminder", "arguments": {"text": "Call the dentist", "when": "Friday 10:00"}}}]},
        {"role": "tool", "content": "{\"id\": 4812, \"status\": \"created\"}"},
        {"role": "assistant", "content": "Done: I set a reminder to call the dentist on Friday at 10:00."},
    ], [{"type": "function", "function": {"name": "create_reminder", "description": "Create a reminder",
        "parameters": {"type": "object", "properties": {"text": {"type": "string"}, "when": {"type": "string"}}, "required": ["text", "when"]}}}]),
    ("instruction", [
        {"role": "user", "content": "Describe the water cycle in exactly three sentences, and do not use the word 'rain'."},
        {"role": "assistant", "content": "The sun warms oceans and lakes, and water rises into the air as vapor. High in the sky the vapor cools and condenses into clouds made of tiny droplets. When the droplets grow heavy they fall back to the ground as precipitation and flow again toward the sea."},
    ]),
    ("instruction", [
        {"role": "user", "content": "List four European capitals in alphabetical order, one per line, with no other text."},
        {"role": "assistant", "content": "Berlin\nLisbon\nMadrid\nVienna"},
    ]),
    ("instruction", [
        {"role": "user", "content": "Answer in JSON with keys \"answer\" and \"confidence\": what is the boiling point of water at sea level in Fahrenheit?"},
        {"role": "assistant", "content": "{\"answer\": 212, \"confidence\": \"high\"}"},
    ]),
    ("instruction", [
        {"role": "user", "content": "Write a haiku about autumn. Every line must start with a capital letter and the poem must not mention leaves."},
        {"role": "assistant", "content": "Cold wind at the door\nGeese stitch the grey sky southward\nSmoke curls from the hearth"},
    ]),
    ("instruction", [
        {"role": "user", "content": "Summarize the following in under twenty words: The committee met on Tuesday and, after a long debate about costs, voted to postpone the new library until next spring."},
        {"role": "assistant", "content": "After debating costs, the committee voted Tuesday to delay the new library until spring."},
    ]),
]


def main():
    brown = sys.argv[1] if len(sys.argv) > 1 else "../shared/data/brown.txt"
    out = sys.argv[2] if len(sys.argv) > 2 else "data/calibration/default.jsonl"
    data = open(brown, "rb").read()
    train = data[: len(data) - HELDOUT_BYTES].decode("utf-8", errors="replace")
    paras = [p.strip() for p in train.split("\n") if 600 <= len(p.strip()) <= 1600]
    step = max(1, len(paras) // N_PROSE)
    prose = paras[::step][:N_PROSE]
    with open(out, "w", encoding="utf-8") as f:
        for p in prose:
            f.write(json.dumps({"domain": "prose", "text": p}, ensure_ascii=False) + "\n")
        for item in CHAT:
            rec = {"domain": item[0], "messages": item[1]}
            if len(item) > 2:
                rec["tools"] = item[2]
            f.write(json.dumps(rec, ensure_ascii=False) + "\n")
    print(f"{out}: {len(prose)} prose + {len(CHAT)} chat samples")


if __name__ == "__main__":
    main()
