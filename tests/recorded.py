"""What two runs of the same cell must agree on."""


def numbers(row: dict) -> dict:
    """A row's metrics without its timings and cache hits, which differ between runs of one cell."""
    return {k: v for k, v in row["metrics"].items() if not k.startswith(("seconds_", "cache_hit"))}
