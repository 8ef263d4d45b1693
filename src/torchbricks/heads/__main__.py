"""`python -m torchbricks.heads`: rewrites the packaged head configs from the head kinds."""

from __future__ import annotations

from torchbricks.heads._configs import write_head_configs

if __name__ == "__main__":
    for path in write_head_configs():
        print(path)
