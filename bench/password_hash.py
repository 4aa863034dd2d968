"""argon2id hashing time with the gateway's parameters (t=2, m=19 MiB, p=1).

    .venv/bin/python -m bench.password_hash --hashes 20
"""

from __future__ import annotations

import argparse
import time

from bench._common import machine, percentiles, save
from web_security import passwords


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--hashes", type=int, default=20)
    args = parser.parse_args()
    timings = []
    for _ in range(args.hashes):
        start = time.perf_counter()
        passwords.hash_password("violet-harbour-27")
        timings.append((time.perf_counter() - start) * 1000)
    save("password_hash", {"machine": machine(), "hash_ms": percentiles(timings)})


if __name__ == "__main__":
    main()
