"""The update-strategy axes every strategy-wide test covers: (level, arch_data, order)."""

STRATEGY_AXES = [
    ("single", "split", "first"),
    ("bi", "split", "first"),
    ("bi", "same", "first"),
    ("bi", "split", "second"),
]
