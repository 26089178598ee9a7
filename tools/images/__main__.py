"""`python -m tools.images [NAME ...]`: build images (or take them from the cache); print them."""

from __future__ import annotations

import argparse
import sys

from tools.localcluster.layout import REPO_ROOT

from .build import Builder
from .store import BuildError, Store, cache_root


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    parser = argparse.ArgumentParser(prog="python -m tools.images", description=__doc__)
    parser.add_argument("names", nargs="*", help="images to build (default: all)")
    parser.add_argument("--compress", action="store_true", help="gzip the archives' layers")
    args = parser.parse_args(argv)
    builder = Builder(Store(cache_root()), REPO_ROOT, compress=args.compress)
    try:
        for name in args.names or list(builder.recipes):
            image = builder.ensure(name)
            how = f"built in {image.built_seconds:.0f}s" if image.built_seconds else "cached"
            size = image.archive.stat().st_size / 2**20
            print(f"{image.ref:<48} {size:8.0f} MiB  {how}  {image.archive}", flush=True)
    except (BuildError, KeyError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
